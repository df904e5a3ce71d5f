"""The synthetic stream of the benchmarks: 25 features of known distribution, with injectable drift.

20 numeric features (float64) and 5 categorical ones (strings):

========  ==============================================  ============================
feature   distribution                                    why
========  ==============================================  ============================
num_00    normal, mean 10, sd 2                           the feature the mean shifts hit
num_01-11 normal, varied means and sds                    the bulk of a tabular model
num_12-13 lognormal (sigma 0.5, 1.0)                      right-skewed
num_14    exponential, scale 3                            skewed, bounded below
num_15    gamma, shape 0.5                                strongly skewed, mass near 0
num_16    Student t, 3 degrees of freedom                 heavy tails
num_17    Poisson(3), as float                            discrete, about 12 values
num_18    binomial(4, 0.3), as float                      discrete, 5 values
num_19    70% exact zeros, else lognormal                 zero-inflated (an atom)
cat_0     3 categories                                    low cardinality
cat_1     5 categories, shares 0.40/0.25/0.15/0.12/0.08   the category-share change
cat_2     10 categories, Zipf shares                      medium cardinality
cat_3     40 categories, Zipf shares                      high cardinality, rare labels
cat_4     "yes"/"no", 20% "yes"                           boolean-like
========  ==============================================  ============================

Drift is injected into a window only (the reference never drifts):

- ``mean_shift=d``: ``num_00`` gets ``d`` times its standard deviation (2) added;
- ``category_shift=s``: ``cat_1``'s third category (``"c"``, share 0.15) gains ``s`` of
  share, the other four categories lose it in proportion to their shares.

Every draw comes from a ``numpy.random.Generator`` the caller passes, so runs are
reproducible from one seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

N_NUMERIC = 20
N_CATEGORICAL = 5
NUMERIC = tuple(f"num_{i:02d}" for i in range(N_NUMERIC))
CATEGORICAL = tuple(f"cat_{i}" for i in range(N_CATEGORICAL))
COLUMNS = NUMERIC + CATEGORICAL

#: The numeric feature the mean shifts are injected into, its mean and its standard deviation.
SHIFT_COLUMN, SHIFT_MEAN, SHIFT_SD = "num_00", 10.0, 2.0
#: The categorical feature whose category share changes, and the category that gains share.
CATEGORY_COLUMN, CATEGORY_GAINING = "cat_1", "c"

# Means and sds of the normal features num_01 .. num_11.
_NORMAL_MEANS = (0.0, 1.0, -3.0, 50.0, 0.5, 100.0, -20.0, 7.0, 0.0, 2.5, 1000.0)
_NORMAL_SDS = (1.0, 0.1, 5.0, 10.0, 0.25, 30.0, 4.0, 1.5, 0.01, 2.0, 200.0)


def _zipf(k: int, s: float = 1.1) -> np.ndarray:
    w = 1.0 / np.arange(1, k + 1) ** s
    return w / w.sum()


def _labels(prefix: str, k: int) -> np.ndarray:
    return np.array([f"{prefix}{i}" for i in range(k)], dtype=object)


#: Categorical features: (labels, shares).
CATEGORIES: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "cat_0": (np.array(["red", "green", "blue"], dtype=object), np.array([0.5, 0.3, 0.2])),
    "cat_1": (np.array(["a", "b", "c", "d", "e"], dtype=object), np.array([0.40, 0.25, 0.15, 0.12, 0.08])),
    "cat_2": (_labels("k", 10), _zipf(10)),
    "cat_3": (_labels("city_", 40), _zipf(40)),
    "cat_4": (np.array(["yes", "no"], dtype=object), np.array([0.2, 0.8])),
}


def shifted_shares(shares: np.ndarray, gaining: int, delta: float) -> np.ndarray:
    """``shares`` with category ``gaining`` up by ``delta``, the others down in proportion.

    Raises:
        ValueError: the new share would leave ``[0, 1]``.
    """
    new = shares.astype(np.float64).copy()
    if not 0.0 <= new[gaining] + delta <= 1.0:
        raise ValueError(f"share {new[gaining]} + {delta} is outside [0, 1]")
    rest = np.ones(new.size, dtype=bool)
    rest[gaining] = False
    new[rest] *= (1.0 - new[gaining] - delta) / new[rest].sum()
    new[gaining] += delta
    return new


def _categorical(rng: np.random.Generator, labels: np.ndarray, shares: np.ndarray, n: int) -> np.ndarray:
    # Draw indices (fast), then map to labels: one object array per column.
    idx = np.searchsorted(np.cumsum(shares), rng.random(n), side="right")
    return labels[np.minimum(idx, labels.size - 1)]


def numeric_block(rng: np.random.Generator, n: int, mean_shift: float = 0.0) -> dict[str, np.ndarray]:
    """The 20 numeric features for ``n`` rows (float64 arrays), ``num_00`` shifted by ``mean_shift`` sd."""
    cols: dict[str, np.ndarray] = {}
    cols["num_00"] = rng.normal(SHIFT_MEAN + mean_shift * SHIFT_SD, SHIFT_SD, n)
    for i, (mu, sd) in enumerate(zip(_NORMAL_MEANS, _NORMAL_SDS), start=1):
        cols[f"num_{i:02d}"] = rng.normal(mu, sd, n)
    cols["num_12"] = rng.lognormal(0.0, 0.5, n)
    cols["num_13"] = rng.lognormal(1.0, 1.0, n)
    cols["num_14"] = rng.exponential(3.0, n)
    cols["num_15"] = rng.gamma(0.5, 1.0, n)
    cols["num_16"] = rng.standard_t(3, n)
    cols["num_17"] = rng.poisson(3.0, n).astype(np.float64)
    cols["num_18"] = rng.binomial(4, 0.3, n).astype(np.float64)
    cols["num_19"] = np.where(rng.random(n) < 0.7, 0.0, rng.lognormal(0.0, 1.0, n))
    return cols


def window(rng: np.random.Generator, n: int, mean_shift: float = 0.0, category_shift: float = 0.0) -> pd.DataFrame:
    """One window of ``n`` rows of the 25 features (see the module docstring for the drifts).

    Numeric columns are float64; categorical columns are pandas' default string dtype.
    """
    cols: dict[str, np.ndarray] = numeric_block(rng, n, mean_shift)
    for name, (labels, shares) in CATEGORIES.items():
        if name == CATEGORY_COLUMN and category_shift:
            gaining = int(np.flatnonzero(labels == CATEGORY_GAINING)[0])
            shares = shifted_shares(shares, gaining, category_shift)
        cols[name] = _categorical(rng, labels, shares, n)
    return pd.DataFrame(cols, columns=list(COLUMNS))
