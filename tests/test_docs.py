"""The documentation holds: every doc the code cites exists with the cited section, every
option the README and docs/ show exists in that command's --help, every command and option
has help text, and docs/queries.md lists the named queries as their headers say.

`python -m tests.test_docs` rewrites the generated reference in docs/queries.md.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCS = ROOT / "docs"
QUERIES_DOC = DOCS / "queries.md"
_BEGIN = ("<!-- generated from the headers of queries/*.sql by `python -m tests.test_docs`; "
          "do not edit -->")
_END = "<!-- end of generated reference -->"

#: a citation: docs/<name>.md (or a link to <name>.md inside docs/), then an optional section
_CITE = re.compile(r"(?:docs/|\]\()(?P<doc>[a-z_]+\.md)(?:\)?\s*§(?P<sec>\d+(?:\.\d+)?)"
                   r"(?:-(?P<last>\d+(?:\.\d+)?))?|#(?P<anchor>[\w-]+))?")


def _cited_files() -> list[Path]:
    found = [ROOT / "README.md", *DOCS.glob("*.md")]
    for top in ("replay", "ingest", "queries", "tests"):
        found += [p for p in (ROOT / top).rglob("*") if p.suffix in (".py", ".sql")]
    return [p for p in found if p.name != "test_docs.py"]  # its examples cite on purpose


def _sections(doc: Path) -> set[str]:
    """A doc's section numbers (`## 6. Title` -> "6", `### 6.1 Title` -> "6.1")."""
    return {m.group(1) for m in re.finditer(r"^#{2,4} (\d+(?:\.\d+)?)\.?\s", doc.read_text(),
                                            re.M)}


def _anchors(doc: Path) -> set[str]:
    """GitHub's anchors of a doc's headings."""
    heads = re.findall(r"^#+ (.+)$", doc.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


#: packages rewritten on other branches while the docs moved into docs/: their six old
#: citations are replaced when those branches merge (then this allowance goes)
def test_no_citation_of_documents_outside_the_repository():
    stale = [f"{p.relative_to(ROOT)}:{n}" for p in _cited_files()
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"FORMATS\.md|DESIGN(\.md| §)|\.\./shared|/work/shared", line)]
    assert stale == []


def _missing_citations(text: str, in_docs: bool = False) -> list[str]:
    """The citations in `text` of a doc or section that does not exist (`in_docs`: the
    text is a doc itself, whose links name siblings without `docs/`)."""
    missing = []
    for m in _CITE.finditer(text):
        doc = DOCS / m["doc"]
        if not doc.is_file():
            if m.group(0).startswith("docs/") or in_docs:
                missing.append(m.group(0))
            continue
        secs = [s for s in (m["sec"], m["last"]) if s]
        if any(s not in _sections(doc) for s in secs):
            missing.append(m.group(0))
        if m["anchor"] and m["anchor"] not in _anchors(doc):
            missing.append(m.group(0))
    return missing


def test_every_cited_doc_and_section_exists():
    missing = [f"{path.relative_to(ROOT)}: {cite}" for path in _cited_files()
               for cite in _missing_citations(path.read_text(), path.parent == DOCS)]
    assert missing == []
    assert len(list(DOCS.glob("*.md"))) >= 5


def test_a_wrong_citation_is_found():
    text = ("see docs/formats.md §2, docs/formats.md §42, docs/design.md §6-9, "
            "docs/nope.md, [x](engine.md#1-max-order-n) and [y](engine.md#no-such)")
    assert _missing_citations(text) == ["docs/formats.md §42", "docs/design.md §6-9",
                                        "docs/nope.md", "](engine.md#no-such"]


def _shown_commands() -> list[tuple[str, set[str]]]:
    """(command, options) of every `replay COMMAND ...` line in the README's and docs'
    code blocks (continuation lines included)."""
    shown = []
    for doc in [ROOT / "README.md", *DOCS.glob("*.md")]:
        for block in re.findall(r"```sh\n(.*?)```", doc.read_text(), re.S):
            for cmd in re.split(r"\n(?! )", block.replace("\\\n", " ")):
                # comments dropped, continuation lines joined, a workload's own options cut
                line = " ".join(ln.split("#")[0] for ln in cmd.splitlines()).split(" -- ")[0]
                m = re.search(r"(?:^|\s|/)replay\s+([a-z]+)\b(.*)", line)
                if m and m[1] in _COMMANDS:
                    shown.append((m[1], set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", m[2]))))
    return shown


_COMMANDS = ("ingest", "info", "record", "simulate", "report", "sql", "query", "stat")


def _help(command: str) -> str:
    done = subprocess.run([sys.executable, "-m", "replay", command, "--help"],
                          capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_option_shown_exists_in_help():
    shown = _shown_commands()
    assert {c for c, _ in shown} >= {"ingest", "sql", "query", "simulate", "report"}
    helps = {c: _help(c) for c in {c for c, _ in shown}}
    unknown = [(c, o) for c, opts in shown for o in sorted(opts)
               if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", helps[c])]
    assert unknown == []


def test_every_command_and_option_has_help_text():
    """As datasette's test_help does: no command or option without a word of help."""
    import typer.main

    from replay.cli import app

    group = typer.main.get_command(app)
    bare = []
    for name, command in group.commands.items():
        if not (command.help or "").strip():
            bare.append(name)
        for param in command.params:
            if not (getattr(param, "help", None) or "").strip() and not getattr(
                    param, "hidden", False):
                bare.append(f"{name} {param.name}")
    assert bare == []


def _header(sql: str) -> list[str]:
    lines = []
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].removeprefix(" "))
    return lines


def render_queries_reference() -> str:
    """The named queries' reference: each query's header comment as Markdown."""
    from replay.queries import named_queries

    out = [_BEGIN, ""]
    for name, q in sorted(named_queries().items()):
        header = _header(q.sql)
        out += [f"### {name}", "", q.description, ""]
        cols = header.index("Columns:") if "Columns:" in header else len(header)
        text = [ln for ln in header[1:cols] if ln and not ln.startswith("@param")]
        if text:
            out += [" ".join(text), ""]
        if q.params:
            out += ["| parameter | type | default | meaning |", "|---|---|---|---|"]
            out += [f"| `{p.name}` | {p.type} | `{_default(p.default)}` | {_cell(p.help)} |"
                    for p in q.params]
            out.append("")
        columns = [ln.strip().split(None, 1) for ln in header[cols + 1:] if ln.strip()]
        if columns:
            out += ["| column | meaning |", "|---|---|"]
            out += [f"| `{c[0]}` | {_cell(c[1]) if len(c) > 1 else ''} |" for c in columns]
            out.append("")
    return "\n".join(out + [_END])


def _default(value: object) -> str:
    return "NULL" if value is None else str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _with_reference(doc: str) -> str:
    start, end = doc.index(_BEGIN), doc.index(_END) + len(_END)
    return doc[:start] + render_queries_reference() + doc[end:]


def test_queries_reference_is_current():
    doc = QUERIES_DOC.read_text()
    assert doc == _with_reference(doc), "run `python -m tests.test_docs` to regenerate"
    from replay.queries import named_queries

    assert all(f"### {name}\n" in doc for name in named_queries())


@pytest.mark.parametrize("name", ["README.md"])
def test_readme_is_short(name):
    assert (ROOT / name).stat().st_size <= 10 * 1024


def test_license_matches_pyproject():
    import tomllib

    license_ = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert license_ == "GPL-2.0-only"
    text = (ROOT / "LICENSE").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 2, June 1991" in text


if __name__ == "__main__":
    QUERIES_DOC.write_text(_with_reference(QUERIES_DOC.read_text()))
