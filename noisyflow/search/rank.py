"""Rank agreement between the search objective and the truth over a search's trials."""

from __future__ import annotations

import math
from collections.abc import Sequence


def rank_correlation(objective: Sequence[float], truth: Sequence[float]) -> dict[str, float] | None:
    """Spearman's rho and Kendall's tau (tau-b, ties handled) with their two-sided p-values.

    Returns None when fewer than 3 pairs are given or either side is constant (a rank
    correlation is undefined there); otherwise {"n", "spearman", "spearman_p", "kendall",
    "kendall_p"}.
    """
    from scipy import stats

    pairs = [
        (float(a), float(b))
        for a, b in zip(objective, truth, strict=True)
        if math.isfinite(float(a)) and math.isfinite(float(b))
    ]
    if len(pairs) < 3:
        return None
    x, y = zip(*pairs, strict=True)
    if len(set(x)) < 2 or len(set(y)) < 2:
        return None
    rho = stats.spearmanr(x, y)
    tau = stats.kendalltau(x, y)
    return {
        "n": float(len(pairs)),
        "spearman": float(rho.statistic),
        "spearman_p": float(rho.pvalue),
        "kendall": float(tau.statistic),
        "kendall_p": float(tau.pvalue),
    }
