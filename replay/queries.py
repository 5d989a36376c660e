"""The named queries: `queries/*.sql`, each with a header comment saying what it answers.

A query file starts with comment lines: the first is its one-line description; lines
`-- @param NAME TYPE DEFAULT  text` declare its parameters (TYPE is INTEGER, DOUBLE or
VARCHAR, with `>0` appended for a number that must be positive; DEFAULT is a literal or
NULL). The SQL refers to them as `$NAME`; values are always bound by DuckDB, never
formatted into the SQL. Files starting with `_` define internal views and macros
(replay/database.py), not named queries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from ingest.errors import QueryError

_PARAM = re.compile(r"^--\s*@param\s+(\w+)\s+(INTEGER|DOUBLE|VARCHAR)(>0)?\s+(\S+)\s*(.*)$")
_CASTS = {"INTEGER": int, "DOUBLE": float, "VARCHAR": str}


@dataclass(frozen=True)
class Param:
    """A declared parameter of a named query."""

    name: str
    type: str
    default: Any
    help: str
    positive: bool = False  # declared `TYPE>0`: zero or less is refused


    def convert(self, text: str | None) -> Any:
        """The bound value for `text` (None or "NULL" binds NULL)."""
        if text is None or text.upper() == "NULL":
            return None
        try:
            value = _CASTS[self.type](text)
        except ValueError:
            raise QueryError(f"parameter {self.name}: {text!r} is not {self.type}") from None
        if self.positive and not value > 0:
            raise QueryError(f"parameter {self.name}: {text!r} is not greater than 0")
        return value


@dataclass(frozen=True)
class NamedQuery:
    """One `queries/NAME.sql` file."""

    name: str
    description: str
    params: tuple[Param, ...]
    sql: str

    def bind(self, given: dict[str, str | None]) -> dict[str, Any]:
        """Parameter values for DuckDB: given ones converted, the others defaulted."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            names = ", ".join(known) or "none"
            raise QueryError(f"query {self.name} has no parameter {unknown[0]!r} "
                             f"(parameters: {names})")
        return {name: (p.convert(given[name]) if name in given else p.default)
                for name, p in known.items()}


def _parse(name: str, sql: str) -> NamedQuery:
    header = []
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        header.append(line)
    if not header:
        raise QueryError(f"query {name} has no header comment")
    description = header[0].lstrip("-").strip()
    params = []
    for line in header:
        m = _PARAM.match(line)
        if m:
            pname, ptype, positive, default, text = m.groups()
            p = Param(pname, ptype, None, text.strip(), bool(positive))
            params.append(Param(pname, ptype, p.convert(default), text.strip(), bool(positive)))
    return NamedQuery(name, description, tuple(params), sql)


@cache
def named_queries() -> dict[str, NamedQuery]:
    """Every named query, by name, sorted."""
    found = {}
    for entry in resources.files("queries").iterdir():
        if entry.name.endswith(".sql") and not entry.name.startswith("_"):
            name = entry.name[: -len(".sql")]
            found[name] = _parse(name, entry.read_text())
    return dict(sorted(found.items()))


def named_query(name: str) -> NamedQuery:
    """The named query `name`; QueryError naming the known ones if there is none."""
    queries = named_queries()
    if name not in queries:
        raise QueryError(f"no query named {name!r} (replay query --list shows them)")
    return queries[name]
