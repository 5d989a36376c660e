"""The layers of the code base, enforced: a module imports only its own layer and the
layers below it (walked with `ast`, so lazy imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: layer -> the module prefixes it holds; the first matching prefix (longest) wins
LAYERS: dict[str, tuple[str, ...]] = {
    "ingest": ("ingest",),
    "kernel": ("replay.kernel",),
    "base": ("replay.progress", "replay.output", "replay.dataset", "replay.errors",
             "replay.atomic", "replay.workers", "replay.signals"),
    "query": ("replay.queries", "replay.database", "replay.stat", "replay.info",
              "replay.ingestion"),
    "engine": ("replay.engine",),
    "record": ("replay.tracefs", "replay.spool", "replay.snapshots", "replay.capture",
               "replay.record"),
    "report": ("replay.report",),
    "fleet": ("replay.fleet",),
    "serve": ("replay.serve",),
    "cli": ("replay.cli", "replay.__main__"),
}

#: layer -> the layers it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "ingest": set(),
    "kernel": {"ingest"},
    "base": {"ingest"},
    "query": {"ingest", "kernel", "base"},
    "engine": {"ingest", "kernel", "base"},
    "record": {"ingest", "kernel", "base", "query"},
    "report": {"ingest", "kernel", "base", "query", "engine"},
    "fleet": {"ingest", "kernel", "base", "query", "engine", "report"},
    "serve": {"ingest", "kernel", "base", "query", "engine", "report", "fleet"},
    "cli": set(LAYERS),
}


def layer_of(module: str) -> str | None:
    best = None
    for layer, prefixes in LAYERS.items():
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (
                    best is None or len(p) > len(best[1])):
                best = (layer, p)
    return best[0] if best else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) of every import in a file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    pkg = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" \
        else module_name(path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


SOURCES = sorted(p for d in ("ingest", "replay") for p in (ROOT / d).rglob("*.py")
                 if p.name != "__init__.py" or p.parent.name != "replay")


def test_every_module_has_a_layer() -> None:
    missing = [module_name(p) for p in SOURCES if layer_of(module_name(p)) is None]
    assert not missing, f"modules outside every layer (add them to LAYERS): {missing}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_upward_import(path: Path) -> None:
    mine = layer_of(module_name(path))
    bad = []
    for line, mod in imports(path):
        theirs = layer_of(mod)
        if theirs is not None and theirs != mine and theirs not in ALLOWED[mine]:
            bad.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {mod} ({theirs})")
    assert not bad, "\n".join(bad)


def test_layer_test_catches_an_upward_import(tmp_path: Path) -> None:
    """The walk sees a lazy import inside a function."""
    f = ROOT / "ingest" / "_probe_layers.py"
    f.write_text("def f():\n    from replay.report import make\n")
    try:
        mods = [m for _, m in imports(f)]
        assert "replay.report.make" in mods
        assert layer_of("replay.report.make") not in ALLOWED["ingest"]
    finally:
        f.unlink()
