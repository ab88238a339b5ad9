"""Which swe instances an export keeps by their quality labels and difficulty (``crucible export
--exclude-labels``, ``--max-difficulty``, ``--difficulty-bands``): pure, the store's rows in, a yes/no out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from crucible.pipelines.swe.quality import BANDS, Defect


@dataclass(frozen=True)
class InstanceFilter:
    """Keep an instance that has none of ``exclude`` codes, a score at most ``max_score`` and a band in
    ``bands`` (None: any). An instance never assessed (a store written before the columns) is not kept: nothing
    vouches for it."""

    exclude: frozenset[str] = frozenset()
    max_score: float | None = None
    bands: frozenset[str] | None = None

    def keeps(self, row: Mapping) -> bool:
        labels, diff = row.get("quality_labels"), row.get("difficulty")
        if labels is None or diff is None:
            return False
        if any(lab.get("code") in self.exclude for lab in labels):
            return False
        if self.max_score is not None and not diff.get("score", 1.0) <= self.max_score:
            return False
        return self.bands is None or diff.get("band") in self.bands

    def __str__(self) -> str:
        parts = [f"none of {','.join(sorted(self.exclude))}"] if self.exclude else []
        parts += [f"difficulty <= {self.max_score}"] if self.max_score is not None else []
        parts += [f"band in {','.join(b for b in BANDS if b in self.bands)}"] if self.bands is not None else []
        return " and ".join(parts)


def _list(text: str, allowed: tuple[str, ...], flag: str) -> frozenset[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in items if x not in allowed]
    if bad or not items:
        raise ValueError(f"{flag} {text!r}: {'unknown ' + ', '.join(bad) if bad else 'empty'}; give a comma-separated "
                         f"list of {', '.join(allowed)}")
    return frozenset(items)


def parse_filter(exclude_labels: str | None = None, max_difficulty: str | float | None = None,
                 difficulty_bands: str | None = None) -> InstanceFilter | None:
    """The filter of the export flags (None: no flag given); a bad value is a ValueError naming the flag and
    what it takes."""
    if exclude_labels is None and max_difficulty is None and difficulty_bands is None:
        return None
    score = None
    if max_difficulty is not None:
        try:
            score = float(max_difficulty)
        except ValueError:
            score = -1.0
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"--max-difficulty {max_difficulty!r}: give a difficulty score between 0 and 1, e.g. 0.55")
    return InstanceFilter(
        exclude=_list(exclude_labels, tuple(d.value for d in Defect), "--exclude-labels") if exclude_labels is not None
        else frozenset(),
        max_score=score,
        bands=_list(difficulty_bands, BANDS, "--difficulty-bands") if difficulty_bands is not None else None)
