"""Tracepoint `format` texts parsed into field tables, and the gfp flag names of a print fmt.

trace.dat and perf.data both embed each event's tracefs `format` file (docs/formats.md §1); a
binary reader decodes records only through these tables, never through hard-coded offsets.

API (stable; the perf.data and `replay record` readers use it):

- `parse_format(text, system="", fields=True) -> EventFormat`: one event's format text
  (`fields=False`: name and ID only, for events that are merely counted). `EventFormat`
  has `system`, `name`, `id` (the `ID:` line = `common_type` of its records), `fields`
  (dict name -> `Field`, common fields first, in file order), `print_fmt` (the text after
  `print fmt: `) and `field(name)` (None when absent). Raises `FormatError`.
- `Field`: `name`, `type` (C type text), `offset`, `size`, `signed`, `count` (elements of a
  fixed array, 1 for a scalar, 0 for a dynamic array), `dynamic` (None, "__data_loc" or
  "__rel_loc"); `elem_size` is the size of one element.
- `parse_header_page(text) -> HeaderPage`: the ring-buffer sub-buffer header description:
  `timestamp_offset`, `commit_offset`, `commit_size` (the authoritative kernel long size),
  `data_offset`, `data_size` (`data_offset + data_size` = sub-buffer size).
- `flag_table(print_fmt, field="gfp_flags") -> FlagTable | None`: the `{VAL, "NAME"}` table
  of `__print_flags(REC-><field>, "<delim>", ...)`, VALs evaluated as C constant
  expressions; None when the print fmt has no such call. `FlagTable.render(value) -> str`
  renders like the kernel's `trace_print_flags_seq` / libtraceevent's TEP_PRINT_FLAGS, and
  `render_many(values: np.ndarray) -> list[str]` renders each distinct value once.
- `eval_c_constant(text) -> int | None`: the tiny constant-expression evaluator.
"""

from __future__ import annotations

import functools
import operator
import re
from dataclasses import dataclass, field

import numpy as np


class FormatError(ValueError):
    """A format text that does not have the tracefs layout; the message says what is wrong."""


@dataclass(frozen=True)
class Field:
    """One field of an event record: where it is and how to read it."""

    name: str
    type: str
    offset: int
    size: int
    signed: bool
    count: int = 1  # elements of a fixed array; 1 = scalar; 0 = dynamic (__data_loc)
    dynamic: str | None = None  # "__data_loc" or "__rel_loc"

    @property
    def elem_size(self) -> int:
        """Bytes of one element (the whole field for a scalar)."""
        return self.size // self.count if self.count > 1 else self.size


@dataclass
class EventFormat:
    """One tracepoint's record layout and print format."""

    system: str
    name: str
    id: int
    fields: dict[str, Field]
    print_fmt: str = ""

    def field(self, name: str) -> Field | None:
        """The field called `name`, or None when this event (version) lacks it."""
        return self.fields.get(name)


_FIELD_LINE = re.compile(
    r"field:\s*(?P<decl>[^;]*);\s*offset:\s*(?P<offset>\d+);\s*size:\s*(?P<size>\d+);"
    r"(?:\s*signed:\s*(?P<signed>\d+);)?"
)
_DECL = re.compile(r"^(?P<type>.*?)\s*(?P<name>[A-Za-z_]\w*)\s*(?:\[(?P<array>[^\]]*)\])?\s*$")


def _parse_field(m: re.Match) -> Field:
    decl = m["decl"].strip()
    d = _DECL.match(decl)
    if d is None:
        raise FormatError(f"bad field declaration {decl!r}")
    ctype, name, array = d["type"].strip(), d["name"], d["array"]
    offset, size = int(m["offset"]), int(m["size"])
    dynamic = next((k for k in ("__data_loc", "__rel_loc") if ctype.startswith(k)), None)
    if m["signed"] is not None:
        signed = m["signed"] == "1"
    else:  # very old kernels (2.6.31-ish) print no `signed:`; trust the type
        signed = not ctype.startswith("unsigned") and ctype in ("int", "long", "short", "char",
                                                                "s8", "s16", "s32", "s64")
    count = 1
    if dynamic:
        count = 0
    elif array is not None:
        count = int(array) if array.strip().isdigit() and int(array) > 0 else 1
    return Field(name, ctype, offset, size, signed, count, dynamic)


def parse_format(text: str, system: str = "", fields: bool = True) -> EventFormat:
    """Parse one tracefs event `format` text (name, ID, fields, print fmt).

    With `fields=False` only the name and ID are read (for events whose records are only
    counted, never decoded): `fields` is then empty and `print_fmt` "".
    """
    name_m = re.search(r"^name:\s*(\S+)", text, re.M)
    id_m = re.search(r"^ID:\s*(\d+)", text, re.M)
    if name_m is None or id_m is None:
        raise FormatError("event format without name: or ID: line")
    if not fields:
        return EventFormat(system, name_m.group(1), int(id_m.group(1)), {}, "")
    table: dict[str, Field] = {}
    for m in _FIELD_LINE.finditer(text):
        f = _parse_field(m)
        table[f.name] = f
    pm = re.search(r"^print fmt:\s*(.*)$", text, re.M | re.S)
    print_fmt = pm.group(1).strip() if pm else ""
    return EventFormat(system, name_m.group(1), int(id_m.group(1)), table, print_fmt)


@dataclass(frozen=True)
class HeaderPage:
    """Layout of a ring-buffer sub-buffer header (tracefs `events/header_page`)."""

    timestamp_offset: int
    commit_offset: int
    commit_size: int  # = the kernel's long size (trace-cmd and perf rely on this too)
    data_offset: int
    data_size: int

    @property
    def subbuf_size(self) -> int:
        """The sub-buffer size this header describes."""
        return self.data_offset + self.data_size


def parse_header_page(text: str) -> HeaderPage:
    """Parse `header_page`: timestamp, commit (kernel long) and data fields."""
    fields = {}
    for m in _FIELD_LINE.finditer(text):
        f = _parse_field(m)
        fields.setdefault(f.name, f)
    try:
        ts, commit, data = fields["timestamp"], fields["commit"], fields["data"]
    except KeyError as e:
        raise FormatError(f"header_page without a {e.args[0]} field") from None
    if commit.size not in (4, 8):
        raise FormatError(f"header_page commit size {commit.size} (expected 4 or 8)")
    return HeaderPage(ts.offset, commit.offset, commit.size, data.offset, data.size)


# ---------------------------------------------------------------------------------------
# C constant expressions of print fmt flag tables (docs/formats.md §1)

_TOKEN = re.compile(
    r"\s*(?:(?P<num>0[xX][0-9a-fA-F]+|\d+)(?:[uUlL]*)|(?P<op><<|>>|[()|&~^+\-*])"
    r"|(?P<word>[A-Za-z_]\w*))"
)
_TYPE_WORDS = {
    "unsigned", "signed", "long", "int", "short", "char", "gfp_t", "u8", "u16", "u32", "u64",
    "s8", "s16", "s32", "s64", "size_t", "__u32", "__u64", "void", "const",
}
_MASK64 = (1 << 64) - 1


class _Unevaluable(Exception):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _Unevaluable(text[pos:])
        pos = m.end()
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
    return out


#: the binary operators, with C's precedence (higher binds tighter)
def _lshift(v: int, r: int) -> int:
    """u64 `v << r`: nothing is left of a shift by 64 or more (computed, 1 << 10**18
    is a MemoryError: found by fuzzing, docs/fuzzing.md)."""
    return v << r if r < 64 else 0


_OPERATORS = {"|": operator.or_, "^": operator.xor, "&": operator.and_, "<<": _lshift,
              ">>": operator.rshift, "+": operator.add, "-": operator.sub, "*": operator.mul}
_PRECEDENCE = {"|": 0, "^": 1, "&": 2, "<<": 3, ">>": 3, "+": 4, "-": 4, "*": 5}


class _Parser:
    """Precedence climbing over | ^ & << >> + - * ~ unary-minus, casts and parentheses."""

    def __init__(self, toks: list[tuple[str, str]]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        t = self.peek()
        if t is None:
            raise _Unevaluable("end of expression")
        self.i += 1
        return t

    def parse(self) -> int:
        v = self.binary(0)
        if self.peek() is not None:
            raise _Unevaluable(str(self.peek()))
        return v

    def binary(self, lowest: int) -> int:
        """The operand and the operators of precedence >= `lowest` after it (left first)."""
        v = self.unary()
        while (t := self.peek()) is not None and t[0] == "op" \
                and _PRECEDENCE.get(t[1], -1) >= lowest:
            self.take()
            r = self.binary(_PRECEDENCE[t[1]] + 1)
            v = _OPERATORS[t[1]](v, r) & _MASK64
        return v

    def _is_cast(self) -> bool:
        j = self.i + 1
        seen = False
        while j < len(self.toks) and self.toks[j][0] == "word" and self.toks[j][1] in _TYPE_WORDS:
            j += 1
            seen = True
        while seen and j < len(self.toks) and self.toks[j] == ("op", "*"):
            j += 1
        return seen and j < len(self.toks) and self.toks[j] == ("op", ")")

    def unary(self) -> int:
        t = self.take()
        if t == ("op", "~"):
            return ~self.unary() & _MASK64
        if t == ("op", "-"):
            return -self.unary() & _MASK64
        if t == ("op", "+"):
            return self.unary()
        if t[0] == "num":
            return int(t[1], 0) if not t[1].startswith("0") or t[1] == "0" or t[1][1] in "xX" \
                else int(t[1], 8)
        if t == ("op", "("):
            self.i -= 1
            if self._is_cast():
                while self.take() != ("op", ")"):
                    pass
                return self.unary()  # casts to gfp_t / unsigned long keep the value
            self.i += 1
            v = self.binary(0)
            if self.take() != ("op", ")"):
                raise _Unevaluable("unbalanced parenthesis")
            return v
        raise _Unevaluable(t[1])  # an unresolved symbol (e.g. ___GFP_IO_BIT, 6.10-6.12)


def eval_c_constant(text: str) -> int | None:
    """Value of a preprocessed C constant expression (as unsigned 64-bit), or None."""
    try:
        return _Parser(_tokens(text)).parse()
    except (_Unevaluable, ValueError, IndexError, RecursionError):
        return None


# ---------------------------------------------------------------------------------------
# __print_flags tables and rendering


@dataclass
class FlagTable:
    """A `__print_flags` table: ordered (value, name) pairs, delimiter, and the zero name."""

    entries: list[tuple[int, str]]
    delim: str = "|"
    #: what the print fmt prints for 0 (the `? __print_flags(...) : "none"` branch), or None
    zero: str | None = None
    #: False when some VAL did not evaluate: user-space tools then print raw hex (6.10-6.12,
    #: "mm: enumerate all gfp flags" 772dd0342727, fixed by 60295b944ff6)
    complete: bool = True
    _cache: dict[int, str] = field(default_factory=dict, repr=False)

    def render(self, value: int) -> str:
        """The text the kernel / libtraceevent print for `value`."""
        value &= _MASK64
        got = self._cache.get(value)
        if got is not None:
            return got
        if not self.complete:
            text = f"0x{value:x}"
        elif value == 0 and self.zero is not None:
            text = self.zero
        else:
            text = self._walk(value)
        self._cache[value] = text
        return text

    def _walk(self, value: int) -> str:
        names = []
        for mask, name in self.entries:
            if value == 0 and mask == 0:  # a table entry naming 0 (pre-4.6 GFP_NOWAIT)
                return name
            if mask and value & mask == mask:
                names.append(name)
                value &= ~mask
        if value:
            names.append(f"0x{value:x}")
        return self.delim.join(names)

    def render_many(self, values: np.ndarray) -> list[str]:
        """Render each value; each distinct value is rendered once."""
        uniq, inverse = np.unique(np.asarray(values, dtype=np.uint64), return_inverse=True)
        texts = [self.render(int(v)) for v in uniq]
        return [texts[i] for i in inverse.ravel()]


def _matching(text: str, start: int, open_: str, close: str) -> int:
    """Index just past the bracket closing the one at `start` (string literals skipped)."""
    depth, i, n = 0, start, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise FormatError(f"unbalanced {open_}{close} in print fmt")


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside parentheses, braces and string literals."""
    parts, depth, cur, i = [], 0, [], 0
    while i < len(text):
        c = text[i]
        if c == '"':
            j = i + 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            cur.append(text[i : j + 1])
            i = j + 1
            continue
        if c in "({":
            depth += 1
        elif c in ")}":
            depth -= 1
        if c == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return [p.strip() for p in parts]


@functools.lru_cache(maxsize=64)
def flag_table(print_fmt: str, field: str = "gfp_flags") -> FlagTable | None:
    """The `__print_flags(REC-><field>, ...)` table of a print fmt, or None if it has none.

    Cached by print fmt: one trace's events share a table, and so do traces of one kernel.
    """
    m = re.search(r"__print_flags\s*\(\s*\(?\s*REC->" + re.escape(field) + r"\b", print_fmt)
    if m is None:
        return None
    open_at = print_fmt.index("(", m.start())
    end = _matching(print_fmt, open_at, "(", ")")
    args = _split_top(print_fmt[open_at + 1 : end - 1])
    if len(args) < 2:
        raise FormatError(f"__print_flags of {field} without a delimiter")
    delim_m = re.fullmatch(r'"(.*)"', args[1], re.S)
    delim = delim_m.group(1) if delim_m else "|"
    entries, complete = [], True
    for arg in args[2:]:
        if not (arg.startswith("{") and arg.endswith("}")):
            continue
        parts = _split_top(arg[1:-1])
        if len(parts) != 2:
            continue
        name_m = re.fullmatch(r'"(.*)"', parts[1], re.S)
        if name_m is None:  # the { 0, NULL } terminator
            continue
        value = eval_c_constant(parts[0])
        if value is None:
            complete = False
            continue
        entries.append((value, name_m.group(1)))
    # `(REC->gfp_flags) ? __print_flags(...) : "none"` (4.6+; "GFP_NOWAIT" before)
    zero = None
    tail = re.match(r'\s*:\s*"([^"]*)"', print_fmt[end:])
    head = print_fmt[: m.start()].rstrip()
    if tail and head.endswith("?"):
        zero = tail.group(1)
    return FlagTable(entries, delim, zero, complete)
