"""report.html: one self-contained page (inline CSS and SVG; no scripts, no external files)."""

from __future__ import annotations

from html import escape
from typing import Any

from replay.report.tables import Column, Table, all_tables, cell

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1b1b1b;
background:#fff}
main{max-width:1180px;margin:0 auto;padding:18px 28px 40px}
h1{font-size:22px;margin:4px 0 2px}h2{font-size:17px;margin:26px 0 8px;
border-bottom:1px solid #ddd;padding-bottom:3px}h3{font-size:14px;margin:16px 0 6px}
.sub{color:#555;margin:0 0 12px}
.verdict{border:2px solid #4477aa;border-radius:6px;padding:12px 16px;background:#f4f8fc}
.top{display:grid;grid-template-columns:minmax(300px,1fr) minmax(300px,1fr);gap:18px}
a{color:#335}
.verdict.none{border-color:#cc3311;background:#fdf5f3}
.big{font-size:16px;font-weight:600;margin:2px 0 6px}
.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:10px 24px;align-items:start}
figure{margin:0}figure svg{width:100%;height:auto}
table{border-collapse:collapse;font-size:12.5px;margin:4px 0 6px}
th,td{padding:2px 8px;border-bottom:1px solid #e4e4e4;text-align:right;vertical-align:top}
th{background:#f3f3f3;font-weight:600}td.text,th.text{text-align:left}
td.path{font-family:ui-monospace,monospace;font-size:11.5px;text-align:left;
max-width:640px;overflow-wrap:anywhere}
.note{color:#555;font-size:12px;margin:0 0 10px}
ul.caveats li{margin:3px 0}code{font-size:12.5px}
details summary{cursor:pointer;color:#335;margin:6px 0}
footer{color:#666;font-size:12px;margin-top:28px;border-top:1px solid #ddd;padding-top:6px}
"""


def table_html(t: Table) -> str:
    """One table as HTML (its note below it); the fleet report prints its tables with it."""
    head = "".join(f'<th class="{_cls(c.kind, c.key)}">{escape(c.header)}</th>'
                   for c in t.columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="{_cls(c.kind, c.key)}">{_cell(r, c)}</td>'
                         for c in t.columns) + "</tr>"
        for r in t.rows)
    if not any(c.header for c in t.columns):
        head = ""
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" if t.rows \
        else '<p class="note">(none in this trace)</p>'
    note = f'<p class="note">{escape(t.note)}</p>' if t.note else ""
    return table + note


def _cell(row: dict[str, Any], c: Column) -> str:
    text = escape(cell(row.get(c.key), c.kind))
    url = row.get(c.key + "_url") if c.kind == "link" else None
    return f'<a href="{escape(url)}">{text}</a>' if url else text


def _cls(kind: str, key: str) -> str:
    return "path" if key == "path" else ("text" if kind in ("text", "link") else "num")


def _section(title: str, *parts: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{''.join(parts)}</section>"


def _figures(plots: dict[str, str], *keys: str) -> str:
    figs = "".join(f"<figure>{plots[k]}</figure>" for k in keys if k in plots)
    return f'<div class="grid">{figs}</div>' if figs else ""


def _headline(rep: dict[str, Any]) -> tuple[str, str]:
    rec = rep["recommendation"]
    return ("none" if rec["max_order"] is None else ""), rec["headline"]


def render_html(rep: dict[str, Any], plots: dict[str, str]) -> str:
    """The whole report page."""
    t = all_tables(rep)
    cls, headline = _headline(rep)
    rec = rep["recommendation"]
    evidence = "".join(f"<li>{escape(e)}</li>" for e in rec["notes"])
    verdict = (
        f'<div class="verdict {cls}"><div class="top"><div>'
        f'<p class="big">{escape(headline)}</p>'
        f'<p><b>Bar:</b> {escape(rec["bar"]["text"])}.</p><ul>{evidence}</ul></div>'
        f'<figure>{plots.get("success_per_policy", "")}</figure></div>'
        f'{table_html(t["verdicts"])}<h3>{escape(t["constraints"].title)}</h3>'
        f'{table_html(t["constraints"])}</div>'
    )
    caveats = "".join(f"<li>{escape(c)}</li>" for c in rep["caveats"])
    who = "".join(f"<h3>{escape(t[k].title)}</h3>{table_html(t[k])}"
                  for k in ("processes", "gfp", "call_paths") if k in t)
    body = "".join([
        f"<h1>Can the buddy allocator's max order be lowered?</h1>"
        f'<p class="sub">{escape(rep["provenance"]["title"])}</p>',
        verdict,
        f'<p class="note">{escape(rep["max_order_readings"])}</p>',
        _section("Provenance", table_html(t["provenance"])),
        _section("Demand", f'<div class="grid"><figure>{plots.get("order_histogram", "")}</figure>'
                 f'<div>{table_html(t["orders"])}</div></div>', who),
        _section("Requesters by kind", table_html(t["requesters"])),
        _section("Candidate max orders",
                 _figures(plots, "requests_above", "cost_distribution"),
                 table_html(t["candidates"]),
                 f"<h3>{escape(t['class_outcomes'].title)}</h3>{table_html(t['class_outcomes'])}",
                 "<details><summary>Every configuration (mode × policy × search)</summary>"
                 f"{table_html(t['configs'])}</details>",
                 f"<h3>{escape(t['buddy'].title)}</h3>{table_html(t['buddy'])}"),
        _section("Fragmentation",
                 _figures(plots, "fragindex_over_time", "largest_free_over_time"),
                 table_html(t["fragmentation"])),
        _section("Model fidelity", table_html(t["fidelity"]),
                 f"<h3>{escape(t['end_blocks'].title)}</h3>{table_html(t['end_blocks'])}"),
        _section("Caveats", f'<ul class="caveats">{caveats}</ul>'),
        f'<footer>{escape(rep["tool"])} · generated {escape(rep["generated"])} · '
        f'sweep: max orders {escape(_list(rep["options"]["max_orders"]))}, searches '
        f'{escape(_list(rep["options"]["searches"]))}, policies '
        f'{escape(_list(rep["options"]["policies"]))} · every figure in the .json file '
        "beside this page</footer>",
    ])
    return page(f"replay report: {rep['provenance']['title']}", body)


def page(title: str, body: str) -> str:
    """A self-contained page in the reports' style around `body` (HTML); `title` is text."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")


def _list(values: list[Any]) -> str:
    return ", ".join(map(str, values))
