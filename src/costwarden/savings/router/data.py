"""Routing data: prompts with, per prompt, whether the weak and the strong model got it right.

The layout is RouteLLM's: a CSV with a ``prompt`` column and one score column per model, each
``True``/``False`` or a number in [0, 1]. A folder stands for all its CSVs (MMLU ships one per
subject); the file's stem becomes the row's ``group`` (the subject), which the per-group prior
baseline uses. Prompts listed as ``eval_prompt`` in a ``contaminated_prompts.jsonl`` beside the
CSVs (or one folder up) are dropped, as the upstream evaluator does.

The train/eval split is a pure function of the prompt text and a seed (a hash), so it is the same
on every machine and every run, and a prompt repeated in several files always lands on one side.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
GPT4 = "gpt-4-1106-preview"
CONTAMINATION_FILE = "contaminated_prompts.jsonl"
_TRUE = {"true", "yes"}
_FALSE = {"false", "no"}

# A CSV cell can exceed the default 128 KiB limit for long prompts.
csv.field_size_limit(1 << 24)

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class RoutingData:
    """Aligned columns: ``prompts[i]`` scored ``weak[i]`` / ``strong[i]`` (each in [0, 1])."""

    prompts: tuple[str, ...]
    groups: tuple[str, ...]
    weak: Floats
    strong: Floats

    def __len__(self) -> int:
        return len(self.prompts)

    def take(self, mask: Bools) -> RoutingData:
        index = np.flatnonzero(mask)
        return RoutingData(
            prompts=tuple(self.prompts[i] for i in index),
            groups=tuple(self.groups[i] for i in index),
            weak=self.weak[index],
            strong=self.strong[index],
        )


def parse_score(cell: str) -> float:
    """``True``/``False`` (any case) or a number in [0, 1]."""
    text = cell.strip().lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"score {cell!r} is outside [0, 1]")
    return value


def csv_files(source: Path) -> list[Path]:
    """A CSV file, or every CSV under a folder (sorted, so the row order is stable)."""
    if source.is_file():
        return [source]
    files = sorted(source.rglob("*.csv"))
    if not files:
        raise ValueError(f"no CSV files under {source}")
    return files


def contaminated_prompts(source: Path) -> frozenset[str]:
    """The ``eval_prompt`` values of a contamination list found at or above ``source``."""
    folder = source if source.is_dir() else source.parent
    for candidate in (folder / CONTAMINATION_FILE, folder.parent / CONTAMINATION_FILE):
        if candidate.is_file():
            with candidate.open(encoding="utf-8") as handle:
                rows = [json.loads(line) for line in handle if line.strip()]
            return frozenset(str(row["eval_prompt"]) for row in rows)
    return frozenset()


def _read_csv(path: Path, weak: str, strong: str) -> Iterable[tuple[str, str, float, float]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        missing = {"prompt", weak, strong} - columns
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; has {sorted(columns)}")
        for row in reader:
            yield row["prompt"], path.stem, parse_score(row[weak]), parse_score(row[strong])


def load_routing_csv(
    source: Path, weak: str = MIXTRAL, strong: str = GPT4, *, drop: frozenset[str] | None = None
) -> RoutingData:
    """Load one CSV or a folder of them; ``drop`` defaults to the contamination list found."""
    dropped = contaminated_prompts(source) if drop is None else drop
    rows = [
        row
        for path in csv_files(source)
        for row in _read_csv(path, weak, strong)
        if row[0] not in dropped
    ]
    if not rows:
        raise ValueError(f"no rows in {source}")
    return RoutingData(
        prompts=tuple(r[0] for r in rows),
        groups=tuple(r[1] for r in rows),
        weak=np.asarray([r[2] for r in rows], dtype=np.float64),
        strong=np.asarray([r[3] for r in rows], dtype=np.float64),
    )


def split_mask(prompts: Sequence[str], seed: int = 0, eval_share: float = 0.3) -> Bools:
    """True for evaluation rows: sha256(seed, prompt) below ``eval_share`` of the hash range."""
    cut = int(eval_share * (1 << 64))
    salt = f"{seed}:".encode()
    values = [
        int.from_bytes(hashlib.sha256(salt + p.encode("utf-8")).digest()[:8], "big")
        for p in prompts
    ]
    return np.asarray([v < cut for v in values], dtype=np.bool_)


def split(
    data: RoutingData, seed: int = 0, eval_share: float = 0.3
) -> tuple[RoutingData, RoutingData]:
    """(train, eval) by hash of prompt; see ``split_mask``."""
    mask = split_mask(data.prompts, seed, eval_share)
    return data.take(~mask), data.take(mask)
