"""The recommendation: the lowest candidate max order that meets a stated bar.

The bar is the seed thread's question made explicit (DESIGN §1, Q5): a memarea-style
allocator may take over the requests above max order N only if it satisfies nearly all of
them, and no request above N comes from a context that cannot wait for a slow allocator.
It is a frozen dataclass so the report prints exactly the bar it applied.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Bar:
    """What a candidate max order N must meet to be recommended."""

    #: memarea policy the slow allocator is allowed (free, reclaim or migrate).
    policy: str = "migrate"
    #: engine mode whose outcomes are judged: "simulated" (the counterfactual buddy
    #: allocator with max order N) or "observed" (the real memory state).
    mode: str = "simulated"
    #: lowest share of the requests above N that memarea must satisfy (under every search).
    min_satisfied: float = 0.99
    #: most requests above N allowed from callers that cannot sleep (atomic / no direct
    #: reclaim): a slow allocator cannot serve them.
    max_atomic_above: int = 0

    def describe(self) -> str:
        """The bar as one sentence, printed in every report."""
        atomic = ("no request above N comes from a caller that cannot sleep"
                  if self.max_atomic_above == 0 else
                  f"at most {self.max_atomic_above} requests above N come from callers "
                  "that cannot sleep")
        return (
            f"memarea ({self.policy} policy, {self.mode} mode) satisfies at least "
            f"{self.min_satisfied:.2%} of the requests above N under every search, and "
            f"{atomic}"
        )

    def as_dict(self) -> dict[str, Any]:
        """The bar's options and its sentence, for report.json."""
        return {**asdict(self), "text": self.describe()}


@dataclass(frozen=True)
class Verdict:
    """Whether one candidate max order meets the bar, with the figures that decided it."""

    max_order: int
    meets: bool
    requests_above: int
    satisfied_share: float | None
    atomic_above: int
    reasons: tuple[str, ...] = field(default_factory=tuple)


def worst_share(candidate: dict[str, Any], policy: str, mode: str) -> float | None:
    """The share of the requests above N that memarea satisfies under `policy` and `mode`,
    worst over the searches; None when a result is missing."""
    if candidate["requests_above"] == 0:
        return 1.0  # nothing above N: nothing for memarea to fail
    shares = [c["satisfied_share"] for c in candidate["configs"]
              if c["policy"] == policy and c["mode"] == mode]
    return None if not shares or None in shares else min(shares)


def judge(candidate: dict[str, Any], bar: Bar) -> Verdict:
    """Judge one candidate (an entry of the report's `candidates`) against the bar."""
    n = candidate["max_order"]
    above = candidate["requests_above"]
    atomic = candidate["atomic_above"]
    reasons = []
    share = worst_share(candidate, bar.policy, bar.mode)
    if share is None:
        reasons.append(f"no {bar.mode} results for policy {bar.policy}")
    elif share < bar.min_satisfied:
        reasons.append(f"memarea satisfies {share:.2%} < {bar.min_satisfied:.2%}")
    if atomic > bar.max_atomic_above:
        reasons.append(f"{atomic} request(s) above {n} cannot sleep")
    return Verdict(n, not reasons, above, share, atomic, tuple(reasons))


def recommend(candidates: list[dict[str, Any]], bar: Bar) -> dict[str, Any]:
    """The lowest candidate N meeting the bar, and every candidate's verdict.

    `max_order` is None when no candidate meets it. A candidate is only recommended if
    every larger candidate meets the bar too, so a recommendation never rests on a lucky
    hole in the sweep.
    """
    verdicts = sorted((judge(c, bar) for c in candidates), key=lambda v: v.max_order)
    chosen = None
    for v in reversed(verdicts):
        if not v.meets:
            break
        chosen = v.max_order
    return {
        "max_order": chosen,
        "bar": bar.as_dict(),
        "verdicts": [{**asdict(v), "reasons": list(v.reasons)} for v in verdicts],
    }
