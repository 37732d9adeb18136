"""How repetitive a feature's prompts are: exact repeats (same normalised prompt hash) and
near-duplicates (MinHash over word 3-shingles, candidates found by LSH banding).

A feature whose prompts mostly share a template is a task a small model can learn from its
own traffic; one whose every prompt is new is not (or not yet). MinHash needs no model and
runs at tens of thousands of prompts a second in numpy, so ranking reads it from the pairs at
analysis time instead of storing a signature per captured pair.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from costwarden.distill.conversation import normalise

_PERMUTATIONS = 64
_BANDS = 16  # 16 bands of 4 rows: pairs above ~0.5 Jaccard meet in some band
_ROWS = _PERMUTATIONS // _BANDS
_SHINGLE_WORDS = 3
_MAX_COMPARED = 32  # per prompt and bucket: the first near-duplicate found is enough
# Odd 64-bit constants (splitmix64) and one seed per permutation, fixed so signatures are
# stable between runs.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SEEDS = (np.arange(1, _PERMUTATIONS + 1, dtype=np.uint64) * _GOLDEN)[:, None]

Signature = npt.NDArray[np.uint64]


@dataclass(frozen=True, slots=True)
class Repetitiveness:
    prompts: int
    exact_repeat_share: float  # prompts whose normalised prompt occurs more than once
    near_duplicate_share: float  # prompts with a neighbour at >= the Jaccard threshold

    def to_dict(self) -> dict[str, float | int]:
        return {
            "prompts": self.prompts,
            "exact_repeat_share": round(self.exact_repeat_share, 4),
            "near_duplicate_share": round(self.near_duplicate_share, 4),
        }


def shingles(text: str) -> set[str]:
    words = normalise(text).split()
    if len(words) <= _SHINGLE_WORDS:
        return {" ".join(words)}
    return {" ".join(words[i : i + _SHINGLE_WORDS]) for i in range(len(words) - 2)}


def _mix(values: Signature) -> Signature:
    # splitmix64's finaliser: uint64 arithmetic wraps in numpy, as the algorithm wants.
    z = values + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    mixed: Signature = z ^ (z >> np.uint64(31))
    return mixed


def signature(text: str) -> Signature:
    """The MinHash signature of ``text``'s shingles (``_PERMUTATIONS`` uint64 values)."""
    hashed = [
        int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")
        for s in shingles(text)
    ]
    base = np.array(hashed, dtype=np.uint64)[None, :]
    minimum: Signature = _mix(base ^ _SEEDS).min(axis=1)
    return minimum


def near_duplicates(signatures: Signature, threshold: float) -> npt.NDArray[np.bool_]:
    """For each row of ``signatures`` (n × permutations): has it a near-duplicate?"""
    count = len(signatures)
    found = np.zeros(count, dtype=bool)
    for band in range(_BANDS):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        block = np.ascontiguousarray(signatures[:, band * _ROWS : (band + 1) * _ROWS])
        for index in range(count):
            buckets[block[index].tobytes()].append(index)
        for members in buckets.values():
            if len(members) > 1:
                _mark_bucket(signatures, members, threshold, found)
    return found


def _mark_bucket(
    signatures: Signature, members: list[int], threshold: float, found: npt.NDArray[np.bool_]
) -> None:
    rows = np.array(members)
    for position, index in enumerate(members):
        if found[index]:
            continue
        others = np.concatenate((rows[:position], rows[position + 1 :]))[:_MAX_COMPARED]
        agreement = (signatures[others] == signatures[index]).mean(axis=1)
        close = others[agreement >= threshold]
        if len(close):
            found[index] = True
            found[close] = True


def repetitiveness(
    prompts: Sequence[str], hashes: Sequence[str], threshold: float
) -> Repetitiveness:
    """Exact and near-duplicate shares of a feature's prompts (``hashes``: their
    ``prompt_hash``, in the same order)."""
    if not prompts:
        return Repetitiveness(0, 0.0, 0.0)
    counts = Counter(hashes)
    exact = sum(1 for h in hashes if counts[h] > 1) / len(hashes)
    signatures = np.stack([signature(p) for p in prompts])
    near = float(near_duplicates(signatures, threshold).mean())
    return Repetitiveness(len(prompts), exact, max(near, exact))
