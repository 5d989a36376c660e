"""Two datasets side by side: their demand and their recommendation (report.json)."""

from __future__ import annotations

from typing import Any

from replay.serve.datasets import Datasets

#: The report.json sections compared.
SECTIONS = ("demand", "recommendation")


def compare(datasets: Datasets, a: str, b: str) -> dict[str, Any]:
    """`{"a": {...}, "b": {...}}`, each the dataset's id, its recommended max order and
    the compared sections of its report."""
    out = {}
    for key, dataset in (("a", a), ("b", b)):
        report = datasets.report(dataset)
        rec = report.get("recommendation") or {}
        out[key] = {"dataset": dataset, "max_order": rec.get("max_order"),
                    **{s: report.get(s) for s in SECTIONS}}
    return out
