"""Packaging: a plain `pip install .` (the README's first command) carries every package.

The tests run from an editable install, which finds any package in the source tree, so a
subpackage missing from pyproject.toml would only show on a user's machine.
"""

from __future__ import annotations

import tomllib

from setuptools import find_packages

from tests.conftest import ROOT


def test_every_package_is_installed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    installed = set(find_packages(str(ROOT), **config["packages"]["find"]))
    in_tree = {".".join(p.parent.relative_to(ROOT).parts)
               for top in ("replay", "ingest", "queries")
               for p in (ROOT / top).rglob("__init__.py")}
    assert in_tree <= installed, in_tree - installed
    assert {"replay.engine", "replay.report"} <= installed


def test_named_queries_ship_as_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-data"]["queries"] == ["*.sql"]
    assert any((ROOT / "queries").glob("*.sql"))
