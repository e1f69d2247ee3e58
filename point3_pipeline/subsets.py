"""Which of some amounts add up to a target: the roll-forward's search for the cancellations
(and untimed sales) whose effects explain a balance change to the won.

Subset sum over the sums reachable so far, each kept with its fewest values (pseudo-polynomial:
amounts that repeat, as prices do, reach few distinct sums). Values are taken in the given
order, and only sums from which the remaining values can still reach the target are kept (the
sum of the remaining negatives and positives brackets that). The answer has the fewest values
of any subset (ties: the one found first, so earlier values are preferred): when amounts
repeat, several subsets fit, and the smallest is the likeliest. The work is bounded: a step is
one reachable sum tried with one value; at the bound the search stops and says so rather than
answer late or never. Ints only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

SEARCH_STEPS = 200_000  # per search, unless the caller gives fewer (about 0.1 s of CPU)

Chain = tuple[int, "Chain"] | None  # the indices taken, last first


@dataclass(frozen=True)
class Found:
    indices: tuple[int, ...] | None  # of the values that add up to the target; None: none found
    cut_short: bool  # the step bound was reached: a subset may exist that was not looked at
    steps: int  # the steps taken


def subset_summing_to(target: int, values: Sequence[int], steps: int = SEARCH_STEPS) -> Found:
    """The smallest non-empty subset of `values` adding up to `target`, as increasing indices.
    A target of 0 has no answer (nothing needs explaining)."""
    if target == 0:
        return Found(None, False, 0)
    # lows[k] / highs[k]: the sum of the negative / positive values from index k on
    lows = [*accumulate((min(v, 0) for v in reversed(values)), initial=0)][::-1]
    highs = [*accumulate((max(v, 0) for v in reversed(values)), initial=0)][::-1]
    live: dict[int, tuple[int, Chain]] = {0: (0, None)} if lows[0] <= target <= highs[0] else {}
    best: tuple[int, Chain] | None = None
    used = 0
    for k, value in enumerate(values):
        if not live:
            break
        if used + len(live) > steps:
            return Found(None, True, used)
        used += len(live)
        for total, (count, chain) in list(live.items()):
            new, way = total + value, (count + 1, (k, chain))
            if new == target:
                best = way if best is None or way[0] < best[0] else best
            elif new in live and live[new][0] <= way[0]:
                continue
            elif new != 0 and lows[k + 1] <= target - new <= highs[k + 1]:
                live[new] = way
        live = {t: w for t, w in live.items() if lows[k + 1] <= target - t <= highs[k + 1]
                and (best is None or w[0] + 1 < best[0])}  # fmt: skip
    return Found(None if best is None else _indices(best[1]), False, used)


def _indices(chain: Chain) -> tuple[int, ...]:
    out = []
    while chain is not None:
        k, chain = chain
        out.append(k)
    return tuple(reversed(out))
