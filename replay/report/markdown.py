"""report.md: the report's tables as Markdown, for a mailing-list post or an issue."""

from __future__ import annotations

from typing import Any

from replay.report.tables import Table, all_tables, cell


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _table(t: Table) -> str:
    if not t.rows:
        return "(none in this trace)\n"
    headers = [c.header or "·" for c in t.columns]
    align = ["---" if c.kind == "text" else "---:" for c in t.columns]
    lines = ["| " + " | ".join(map(_escape, headers)) + " |", "|" + "|".join(align) + "|"]
    for r in t.rows:
        lines.append("| " + " | ".join(_escape(cell(r.get(c.key), c.kind)) for c in t.columns)
                     + " |")
    out = "\n".join(lines) + "\n"
    return out + (f"\n{t.note}\n" if t.note else "")


def render_markdown(rep: dict[str, Any]) -> str:
    """The whole report as Markdown (plots are in report.html)."""
    t = all_tables(rep)
    rec = rep["recommendation"]
    n = rec["max_order"]
    headline = ("No candidate max order meets the bar." if n is None else
                f"**Lowest max order meeting the bar: N = {n}** "
                f"(MAX_ORDER {n + 1} in 2001-era terms).")
    parts = [
        "# Can the buddy allocator's max order be lowered?\n",
        f"{rep['provenance']['title']}\n",
        headline + "\n",
        f"Bar: {rec['bar']['text']}.\n",
        "".join(f"- {e}\n" for e in rec["evidence"]),
        _table(t["verdicts"]),
        f"_{rep['max_order_readings']}_\n",
    ]
    for key in t:
        if key == "verdicts":
            continue
        parts.append(f"## {t[key].title}\n\n{_table(t[key])}")
    parts.append("## Caveats\n\n" + "".join(f"- {c}\n" for c in rep["caveats"]))
    parts.append(f"\n{rep['tool']} · generated {rep['generated']} · plots in the .html file "
                 "beside this one, every figure in the .json file\n")
    return "\n".join(parts)
