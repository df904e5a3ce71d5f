"""Mergeable summary primitives: row keys, bottom-k samples, moments, KLL and Misra–Gries.

Each primitive has a *merge* that combines the summaries of two disjoint sets
of rows into the summary of their union, so a window can be summarised in
pieces (by several collectors, or chunk by chunk) and the pieces combined:

- :func:`row_keys` / :func:`bottom_k`: a bounded uniform sample whose merge
  equals the sample of the concatenation exactly (bottom-k, or priority,
  sampling: Cohen & Kaplan, "Summarizing data using bottom-k sketches",
  PODC 2007).
- :func:`moments` / :func:`merge_moments`: count, mean and the sum of squared
  deviations ``M2``, combined with the parallel update of Chan, Golub &
  LeVeque, "Updating formulae and a pairwise algorithm for computing sample
  variances" (Stanford CS tech. report STAN-CS-79-773, 1979).
- :func:`kll_sketch` / :func:`kll_merge` / :func:`kll_quantiles`: the KLL
  quantile sketch (Karnin, Lang & Liberty, "Optimal quantile approximation
  in streams", FOCS 2016) from the ``datasketches`` package.
- :func:`misra_gries`: bounded frequent-label counts (Misra & Gries, "Finding
  repeated elements", 1982) with the merge of Agarwal et al., "Mergeable
  summaries", PODS 2012.
- :func:`label_buckets`: label counts hashed into a fixed number of buckets
  (the hashing trick of Weinberger et al., "Feature hashing for large scale
  multitask learning", ICML 2009); merged by adding.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping

import numpy as np
from datasketches import kll_doubles_sketch
from numpy.typing import ArrayLike

#: Increment of the SplitMix64 generator (2**64 / golden ratio, odd).
GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)

#: Magnitude above which moments are computed on values divided by a power of
#: two, so that squares cannot overflow float64 (max ~1.8e308).
_SCALE_ABOVE = 2.0**500


# --------------------------------------------------------------------------- row keys and samples


def row_keys(row_ids: ArrayLike, seed: int = 0) -> np.ndarray:
    """64-bit sampling keys for rows, one per row id.

    ``key(r) = mix64(seed + (r + 1) * GAMMA) mod 2**64``: the ``(r + 1)``-th
    output of the SplitMix64 generator seeded with ``seed`` (Steele, Lea &
    Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014),
    computed for all rows at once. For a fixed seed the map from row id to key
    is a bijection of the 64-bit integers (multiplying by the odd ``GAMMA``,
    adding and the mix function are each invertible), so distinct row ids
    always get distinct keys.

    Args:
        row_ids: integer array, shape ``(n,)``; int64 values are read as their
            two's-complement uint64 bit pattern.
        seed: any integer; reduced modulo 2**64.

    Returns:
        uint64 array, shape ``(n,)``.

    Raises:
        ValueError: ``row_ids`` is not a 1-D integer array.
    """
    ids = np.asarray(row_ids)
    if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or ids.size == 0):
        raise ValueError(f"row_ids must be a 1-D integer array, got dtype {ids.dtype} and shape {ids.shape}")
    z = ids.astype(np.int64, copy=False).view(np.uint64) if ids.dtype.kind == "i" else ids.astype(np.uint64)
    # uint64 array arithmetic wraps modulo 2**64, which is what SplitMix64 needs.
    z = np.uint64(seed % 2**64) + (z + np.uint64(1)) * GOLDEN_GAMMA
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def sample_candidates(keys: np.ndarray, k: int) -> np.ndarray | None:
    """The rows of a frame's bottom-k sample in key order, or None when keys repeat.

    With distinct keys, :func:`bottom_k` of any column without missing or infinite values is
    that column's values at these rows, so a frame orders its keys once instead of once per
    column. Repeated keys (repeated row ids) need the per-column tie-break by value: None.

    Args:
        keys: uint64 array, shape ``(n,)``.
        k: sample size, >= 1.

    Returns:
        int64 indices, shape ``(min(n, k),)``, ascending by key; or None.
    """
    idx = np.argpartition(keys, k - 1)[:k] if keys.size > k else np.arange(keys.size)
    idx = idx[np.argsort(keys[idx], kind="stable")]
    chosen = keys[idx]
    if np.any(chosen[1:] == chosen[:-1]) or (keys.size > k and np.count_nonzero(keys == chosen[-1]) > 1):
        return None
    return idx


def bottom_k(keys: np.ndarray, values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows with the smallest keys, ordered by (key, value).

    Because every row's key is a fixed function of its row id, the bottom-k
    of a union is the bottom-k of the union of the parts' bottom-k, so
    ``bottom_k(concat(a, b)) == bottom_k(concat(bottom_k(a), bottom_k(b)))``
    exactly. Equal keys (repeated row ids) are ordered by value, which keeps
    this identity.

    Args:
        keys: uint64 array, shape ``(n,)``.
        values: float64 array, shape ``(n,)``.
        k: sample size, >= 1.

    Returns:
        ``(keys, values)``, each of shape ``(min(n, k),)``.
    """
    if keys.size > k:
        # Everything up to the k-th smallest key, ties included; the lexsort
        # below then picks exactly k.
        kth = np.partition(keys, k - 1)[k - 1]
        chosen = keys <= kth
        keys, values = keys[chosen], values[chosen]
    order = np.lexsort((values, keys))[:k]
    return keys[order], values[order]


# --------------------------------------------------------------------------- moments


def moment_scale(lo: float, hi: float) -> float:
    """Power of two that moments of values in ``[lo, hi]`` are computed in units of.

    1.0 unless ``m = max(|lo|, |hi|)`` is above ``2**500`` or below ``2**-500``
    (and not 0); then the power of two just above ``m`` (at most ``2**1023``,
    the largest a double holds), so scaled values lie in ``[0.5, 2)`` in
    magnitude at the extreme: their squared deviations neither overflow (huge
    values) nor underflow to 0 (values like 1e-300, whose squares would).
    Scaling by a power of two is exact in binary floating point, so results are
    as accurate as unscaled ones.
    """
    m = max(abs(lo), abs(hi))
    if m == 0.0 or 1.0 / _SCALE_ABOVE <= m <= _SCALE_ABOVE:
        return 1.0
    return math.ldexp(1.0, min(math.frexp(m)[1], 1023))


def moments(x: np.ndarray, scale: float) -> tuple[float, float]:
    """(mean, M2) of non-empty finite ``x``, with ``M2 = sum((x - mean)**2) / scale**2``.

    Two-pass: numpy's pairwise mean, then the sum of squared deviations.
    """
    y = x / scale if scale != 1.0 else x
    mean_y = float(np.mean(y))
    m2 = float(np.sum(np.square(y - mean_y)))
    return mean_y * scale, m2


def merge_moments(
    a: tuple[int, float | None, float, float], b: tuple[int, float | None, float, float]
) -> tuple[int, float | None, float, float]:
    """Combine ``(n, mean, M2, scale)`` of two disjoint sets of values.

    Chan, Golub & LeVeque (1979), eq. 2.1b: with ``delta = mean_b - mean_a``
    and ``n = n_a + n_b``::

        mean = mean_a + delta * n_b / n
        M2   = M2_a + M2_b + delta**2 * n_a * n_b / n

    evaluated in units of the larger of the two scales (see
    :func:`moment_scale`), which is also the scale of the union. The result
    agrees with a two-pass computation over the union to a few units of
    float64 rounding relative to the spread of the values.
    """
    na, ma, m2a, sa = a
    nb, mb, m2b, sb = b
    # an empty side has no values, so its scale (1.0) says nothing: keep the other side's
    if nb == 0:
        return na, ma, m2a, sa
    if na == 0:
        return nb, mb, m2b, sb
    assert ma is not None and mb is not None
    # a side whose values are all 0 has moments 0 in any units: its scale (1.0) must not
    # decide the union's, which comes from the other side's magnitude
    if ma == 0.0 and m2a == 0.0:
        sa = sb
    if mb == 0.0 and m2b == 0.0:
        sb = sa
    s = max(sa, sb)
    n = na + nb
    delta = mb / s - ma / s
    mean = (ma / s + delta * (nb / n)) * s
    m2 = m2a * (sa / s) ** 2 + m2b * (sb / s) ** 2 + delta * delta * (na * (nb / n))
    return n, mean, m2, s


# --------------------------------------------------------------------------- KLL


#: From this many sorted values on, :func:`kll_sketch` inserts one value per group (see there).
KLL_COARSEN_FROM = 1 << 16


def kll_group_size(n: int, k: int) -> int:
    """Group size ``g`` :func:`kll_sketch` uses for ``n`` sorted values: 1 below
    :data:`KLL_COARSEN_FROM`, else the largest power of two with ``g <= sqrt(n)`` and
    ``g / n <= kll_rank_error(k) / 10``."""
    if n < KLL_COARSEN_FROM:
        return 1
    limit = min(math.isqrt(n), int(n * kll_rank_error(k) / 10))
    return 1 << (max(limit, 1).bit_length() - 1)


def kll_sketch(x: np.ndarray, k: int, presorted: bool = False) -> bytes:
    """Serialised ``datasketches.kll_doubles_sketch(k)`` of the values ``x``.

    Holds every value exactly while ``len(x) <= k``; beyond that it keeps
    about ``3 * k`` values plus a few per level (``log2(n / k)`` levels) and
    answers quantile queries within a normalised rank error of
    :func:`kll_rank_error` (with 99% confidence). Compaction is randomised
    inside datasketches, so the bytes of a sketch beyond ``k`` values are not
    reproducible run to run.

    Inserting is the sketch's whole cost (about 25 ns a value), so for ``presorted`` input of
    ``n >= KLL_COARSEN_FROM`` values the sketch is built from groups: with ``g =
    kll_group_size(n, k)``, the first value of each run of ``g`` consecutive sorted values is
    inserted once and the sketch merged with copies of itself ``log2(g)`` times, so it counts
    that value ``g`` times; the last ``1..g`` values (the maximum among them) are inserted one
    by one. The sketch then counts ``n`` values, its minimum and maximum are exact, and every
    value's rank moves by less than ``g``: the rank error grows by at most ``g / n``, a tenth
    of :func:`kll_rank_error` — also after merges, since a merged sketch's shift is at most
    the sum of the parts' ``g`` over the sum of their ``n``. For 10**6 values that is about
    3,000 insertions instead of 10**6.

    Args:
        x: float64 values, shape ``(n,)``, finite; ascending when ``presorted``.
        k: the sketch's parameter, 8..65535.
        presorted: ``x`` is ascending (the grouping relies on it).
    """
    sketch = kll_doubles_sketch(k)
    n = int(x.size)
    g = kll_group_size(n, k) if presorted else 1
    if g == 1:
        if n:
            sketch.update(np.ascontiguousarray(x, dtype=np.float64))
        return bytes(sketch.serialize())
    head = (n - 1) // g * g  # full groups, leaving 1..g values (the maximum last) for one-by-one
    sketch.update(np.ascontiguousarray(x[0:head:g], dtype=np.float64))
    for _ in range(g.bit_length() - 1):
        sketch.merge(kll_doubles_sketch.deserialize(sketch.serialize()))
    sketch.update(np.ascontiguousarray(x[head:], dtype=np.float64))
    return bytes(sketch.serialize())


def kll_merge(a: bytes, b: bytes) -> bytes:
    """Serialised union of two serialised KLL sketches (datasketches ``merge``)."""
    sketch = kll_doubles_sketch.deserialize(a)
    sketch.merge(kll_doubles_sketch.deserialize(b))
    return bytes(sketch.serialize())


def kll_load(data: bytes) -> kll_doubles_sketch:
    """Deserialise a sketch written by :func:`kll_sketch` or :func:`kll_merge`."""
    return kll_doubles_sketch.deserialize(data)


def kll_rank_error(k: int) -> float:
    """Normalised rank error of a single quantile query on a KLL sketch with parameter ``k``.

    datasketches' ``get_normalized_rank_error(k, False)``: the returned
    quantile's rank differs from the requested one by at most this fraction
    of ``n``, with 99% confidence (0.0133 for ``k = 200``).
    """
    return float(kll_doubles_sketch.get_normalized_rank_error(k, False))


# --------------------------------------------------------------------------- Misra–Gries


def misra_gries(counts: Mapping[str, int], capacity: int) -> tuple[dict[str, int], bool]:
    """Reduce label counts to at most ``capacity`` counters (Misra–Gries).

    Agarwal et al. (2012), section 3: if there are more than ``capacity``
    counters, subtract the ``(capacity + 1)``-th largest count from every
    counter and drop those left at zero or below. Feeding the result, plus the
    counts of the next chunk, back in gives a summary of the whole stream in
    which every label with more than ``n / (capacity + 1)`` occurrences keeps a
    counter, and every counter underestimates its label's count by at most
    ``n / (capacity + 1)``.

    Args:
        counts: label -> count (> 0).
        capacity: maximum number of counters, >= 1.

    Returns:
        ``(counters, exact)``; ``exact`` is True when nothing was subtracted,
        i.e. ``counters == counts``.
    """
    if len(counts) <= capacity:
        return dict(counts), True
    values = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    cut = int(np.partition(values, len(values) - capacity - 1)[len(values) - capacity - 1])
    return {k: v - cut for k, v in counts.items() if v > cut}, False


# --------------------------------------------------------------------------- hashed label counts


def label_hashes(labels: Iterable[str]) -> np.ndarray:
    """Stable 64-bit hashes of labels: SplitMix64 of their CRC-32.

    ``h(label) = row_keys([crc32(label.encode("utf-8"))])``: CRC-32 (the
    zlib / IEEE 802.3 polynomial) is fixed by its standard, so a label hashes
    the same in every process and on every machine, unlike Python's salted
    ``hash()``. CRC is linear over GF(2), so its low bits alone would send
    structured label sets (say the IDs "0".."499" against "500".."999") to
    every bucket in the same proportion; the SplitMix64 finaliser (see
    :func:`row_keys`) mixes every bit into every other.

    Args:
        labels: strings.

    Returns:
        uint64 array, one hash per label, in order.
    """
    crcs = np.fromiter((zlib.crc32(label.encode("utf-8")) for label in labels), dtype=np.uint64)
    return row_keys(crcs)


def label_buckets(counts: Mapping[str, int], n_buckets: int) -> np.ndarray:
    """Label counts summed per hash bucket ``label_hashes(label) mod n_buckets``.

    Every label is counted and none is chosen by its frequency, so bucket
    counts of two windows drawn from one distribution are two multinomial
    samples with the same cell probabilities, whatever the number of labels.
    The buckets of the union of two disjoint row sets are the sum of their
    buckets. Each distinct label is hashed once, not each row.

    Args:
        counts: label -> count (>= 0).
        n_buckets: number of buckets, >= 1.

    Returns:
        int64 array, shape ``(n_buckets,)``, summing to ``sum(counts.values())``.

    Raises:
        ValueError: ``n_buckets < 1``.
    """
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
    index = (label_hashes(counts) % np.uint64(n_buckets)).astype(np.intp)
    weights = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    out = np.zeros(n_buckets, dtype=np.int64)
    np.add.at(out, index, weights)  # integer sums: bincount's weights would go through float64
    return out
