"""report.md: the report's tables as Markdown, for a mailing-list post or an issue."""

from __future__ import annotations

from typing import Any

from replay.report.tables import Column, Table, all_tables, cell


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _cell(row: dict[str, Any], c: Column) -> str:
    text = _escape(cell(row.get(c.key), c.kind))
    url = row.get(c.key + "_url") if c.kind == "link" else None
    return f"[{text}]({url})" if url else text


def table_markdown(t: Table) -> str:
    """One table as Markdown (its note below it); the fleet report prints its tables with it."""
    if not t.rows:
        return "(none in this trace)\n"
    headers = [c.header or "·" for c in t.columns]
    align = ["---" if c.kind in ("text", "link") else "---:" for c in t.columns]
    lines = ["| " + " | ".join(map(_escape, headers)) + " |", "|" + "|".join(align) + "|"]
    for r in t.rows:
        lines.append("| " + " | ".join(_cell(r, c) for c in t.columns) + " |")
    out = "\n".join(lines) + "\n"
    return out + (f"\n{t.note}\n" if t.note else "")


def render_markdown(rep: dict[str, Any]) -> str:
    """The whole report as Markdown (plots are in report.html)."""
    t = all_tables(rep)
    rec = rep["recommendation"]
    parts = [
        "# Can the buddy allocator's max order be lowered?\n",
        f"{rep['provenance']['title']}\n",
        f"**{rec['headline']}**\n",
        f"Bar: {rec['bar']['text']}.\n",
        "".join(f"- {e}\n" for e in rec["notes"]),
        table_markdown(t["verdicts"]),
        f"_{rep['max_order_readings']}_\n",
    ]
    for key in t:
        if key == "verdicts":
            continue
        parts.append(f"## {t[key].title}\n\n{table_markdown(t[key])}")
    parts.append("## Caveats\n\n" + "".join(f"- {c}\n" for c in rep["caveats"]))
    parts.append(f"\n{rep['tool']} · generated {rep['generated']} · plots in the .html file "
                 "beside this one, every figure in the .json file\n")
    return "\n".join(parts)
