"""Exporters: project stored records into the shapes trainers read as they are -- ``verl``
(:mod:`crucible.pipelines.integrations.export_verl`) and ``trl`` (:mod:`crucible.pipelines.integrations.export_trl`); which rows
go is :mod:`crucible.pipelines.integrations.export_select`, where the file may go is :mod:`crucible.pipelines.store.export`.

Selection: verl browse takes the questions of an RL split (``--split``, ``--all-splits``), optionally only
those whose pass rate lies in a band (``--pass-band``, :func:`parse_pass_band`); trl the SFT-split
trajectories (``--all-trajectories``: every split). Reference rows (split ``reference``: swe-curate's gold
replays of the reference patch) are in no export unless ``--include-reference``.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset

from crucible.pipelines.integrations.export_select import (
    REFERENCE_SPLIT,
    RL_SPLITS,
    SEMI_SPLIT,
    PassBand,
    parse_pass_band,
)
from crucible.pipelines.integrations.export_trl import trl_features, trl_rows
from crucible.pipelines.integrations.export_verl import VERL_SCHEMAS, verl_rows
from crucible.pipelines.store import fsio
from crucible.pipelines.store.export import check_dest
from crucible.pipelines.store.manifests import StoreError


class EmptyExport(StoreError):
    pass


def export(out_dir: str, fmt: str, dest: str, source: str = "browse", split: str | None = None,
           only_sft: bool = True, all_splits: bool = False, pass_band: str | PassBand | None = None,
           include_reference: bool = False, force: bool = False, include_semi: bool = False,
           instance_filter=None) -> int:
    """Write the export to ``dest`` (a .parquet file), atomically. Returns the row count; 0 rows is an
    :class:`EmptyExport` error and writes nothing (a 0-row file only fails later, in the trainer); ``dest`` must
    pass :func:`check_dest` (``force``: replace an existing file), before and after the rows are read.
    ``pass_band`` (verl browse): only questions whose pass rate lies in it (:func:`parse_pass_band`);
    ``include_reference`` (trl): also the reference rows (split ``reference``: swe-curate's gold replays);
    ``include_semi`` (trl): also the semi_resolved rows (split ``semi``), marked in column ``semi_resolved``;
    ``instance_filter`` (swe): only instances, and trajectories of instances, it keeps (quality labels,
    difficulty: :mod:`crucible.pipelines.swe.quality_select`)."""
    band = parse_pass_band(pass_band) if isinstance(pass_band, str) else pass_band
    check_dest(out_dir, dest, force)
    if instance_filter is not None and source == "browse":
        raise ValueError("--exclude-labels/--max-difficulty/--difficulty-bands select swe instances by their quality "
                         "labels and difficulty; use them with --source swe (or trl --source all)")
    if fmt == "verl":
        if source not in VERL_SCHEMAS:
            raise ValueError(f"--source {source!r}: verl exports one source per file: browse or swe")
        if include_reference:
            raise ValueError("--include-reference: reference rows are swe trajectories, which only --format trl "
                             "exports (verl exports questions and instances); drop --include-reference")
        if include_semi:
            raise ValueError("--include-semi: semi_resolved rows are swe trajectories, which only --format trl "
                             "exports (verl exports questions and instances); drop --include-semi")
        rows = verl_rows(out_dir, source, split, all_splits, band, instance_filter)
    elif fmt == "trl":
        if band is not None:
            raise ValueError("--pass-band: a band of question pass rates selects verl browse rows; "
                             "use it with --format verl --source browse")
        rows = trl_rows(out_dir, source, only_sft, include_reference, include_semi, instance_filter)
    else:
        raise ValueError(f"--format {fmt!r}: allowed formats are verl, trl")
    if not rows:
        if fmt == "verl" and source == "browse":
            inb = f" with a pass rate in {band}" if band is not None else ""
            what = (f"no questions with split {split!r}{inb}" if split else f"no questions{inb or ' at all'}"
                    if all_splits else f"no questions with an RL split ({', '.join(RL_SPLITS)}){inb}; --all-splits "
                    "exports the others too")
        elif fmt == "verl":
            what = "no swe_instances"
        else:
            what = ("no trajectories with an SFT split (sft, sft+rl); --all-trajectories exports the others too"
                    if only_sft else "no trajectories")
            what += "" if include_reference else f"; reference rows (split {REFERENCE_SPLIT}) only with --include-reference"
            what += "" if include_semi or not only_sft else f"; semi_resolved rows (split {SEMI_SPLIT}) only with --include-semi"
        what += f"; swe rows only of instances with {instance_filter}" if instance_filter is not None else ""
        raise EmptyExport(f"{out_dir}: nothing to export ({what}); no file written")
    buf = io.BytesIO()
    if fmt == "verl":
        pq.write_table(pa.Table.from_pylist(rows, schema=VERL_SCHEMAS[source]), buf)
    else:
        Dataset.from_list(rows, features=trl_features()).to_parquet(buf)
    # again: a file made meanwhile is refused too; the one atomic writer leaves no temp file on any failure
    fsio.write_bytes_atomic(str(check_dest(out_dir, dest, force)), buf.getvalue())
    return len(rows)
