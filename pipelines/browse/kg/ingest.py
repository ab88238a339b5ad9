"""`crucible kg ingest`: a Wikidata JSON dump and/or a Wikipedia text dump -> a graph dir + a corpus.

One Beam job (FnApiRunner locally, any runner through ``run.beam_args``) reads every input through
:class:`NumberedRecords`, parses each record with the pure functions of
:mod:`crucible.pipelines.browse.kg.wikidata`, and writes Parquet shards per bundle (no ``num_shards``: a fixed
shard count would group every row in memory). A finalize step (DuckDB, under a memory limit) then

* keeps the first of entities (pages) sharing an id (url); each later one is a ``failures`` row;
* keeps a triple only when its object was ingested too (the rest are counted in the manifest);
* writes ``entities.parquet``, ``triples.parquet`` and, last, ``manifest.json`` (the graph dir that
  ``search.kg.extra`` lists), ``failures/failures.parquet`` (``schemas/failure.json``: file, line,
  reason of every bad line or claim) and ``corpus/pages.jsonl`` (``search.local.pages``).

Why not ``ReadFromText``/``ReadFromParquet``: neither says which line a record came from, and a bad line
must be named by file and line. A compressed dump (``.json.gz``/``.json.bz2``, as Wikidata ships it)
is not splittable anyway, so :class:`NumberedRecords` reads each file whole, in order, streaming.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io import filebasedsource
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.metrics import Metrics

from crucible.pipelines.beam_options import pipeline_options
from crucible.pipelines.browse.kg import wikidata as W
from crucible.pipelines.browse.kg.finalize import finalize
from crucible.pipelines.browse.kg.model import GraphError, write_json
from crucible.pipelines.browse.kg.staging import (
    PIPELINE,
    entity_stage_schema,
    line_failure,
    page_stage_schema,
    triple_stage_schema,
)
from crucible.pipelines.store.records import record_type
from crucible.pipelines.textio import MAX_LINE_CHARS, InputError, check_regular_file, loads

INGEST_CODE_VERSION = "ingest-1"
MAX_LINE_BYTES = MAX_LINE_CHARS  # one dump line (the longest Wikidata entities are a few MB)
ROW_GROUP_BYTES = 8 * 2**20  # per-shard Parquet buffer: bounds the writer's memory
MEMORY_LIMIT = re.compile(r"^[1-9][0-9]*(\.[0-9]+)?\s*([KMGT]i?B)$")
OUTPUTS = ("entities.parquet", "triples.parquet", "failures/failures.parquet", "corpus/pages.jsonl")


class NumberedRecords(filebasedsource.FileBasedSource):
    """``(file, line or row number from 1, record)`` of every file the pattern matches, in order.
    ``parquet``: records are row dicts; otherwise raw lines (bytes). ``.gz``/``.bz2`` are decompressed
    here, by Python's streaming readers: Beam's own decompressor inflates a whole 16 MiB compressed read
    at once (hundreds of MiB for a dump as repetitive as Wikidata's)."""

    def __init__(self, pattern: str, parquet: bool):
        super().__init__(pattern, compression_type=CompressionTypes.UNCOMPRESSED, splittable=False)
        self._parquet = parquet

    def read_records(self, file_name, range_tracker):
        if not range_tracker.try_claim(range_tracker.start_position()):
            return
        with self.open_file(file_name) as raw:
            if self._parquet:
                n = 0
                for batch in pq.ParquetFile(raw).iter_batches(batch_size=1024):
                    for row in batch.to_pylist():
                        n += 1
                        yield file_name, n, row
                return
            f = (gzip.GzipFile(fileobj=raw, mode="rb") if file_name.endswith(".gz") else
                 bz2.BZ2File(raw) if file_name.endswith(".bz2") else raw)
            with f:
                yield from ((file_name, n, line) for n, line in enumerate(_lines(f, MAX_LINE_BYTES), 1))


def _lines(f, limit: int):
    """Lines of ``f``; one longer than ``limit`` bytes is read in pieces, dropped and given as None."""
    while line := f.readline(limit + 1):
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        while (rest := f.readline(limit)) and not rest.endswith(b"\n"):
            pass
        yield None


def _decode(raw: bytes | None) -> tuple[str | None, str]:
    if raw is None:
        return None, f"a line over {MAX_LINE_BYTES:,} bytes (ingest.MAX_LINE_BYTES); not read"
    try:
        return raw.decode("utf-8"), ""
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 ({exc.reason} at byte {exc.start})"


class ParseWikidata(beam.DoFn):
    """Dump line -> entity (main), ``triples`` and ``failures`` outputs; counters per skip reason."""

    def __init__(self, mapping: W.Mapping, run_id: str):
        self.mapping, self.run_id = mapping, run_id
        self.n = {k: Metrics.counter(PIPELINE, k) for k in
                  ("entities", "triples", "failures", "frame", "not_item", "untyped")}

    def process(self, rec):
        file, line, raw = rec
        text, problem = _decode(raw)
        p = W.parse_entity_line(text, self.mapping) if text is not None else W.Parsed(problems=[("", problem)])
        if p.skipped:
            self.n[p.skipped].inc()
        if p.entity is not None:
            self.n["entities"].inc()
            yield {**p.entity, "_file": file, "_line": line}
        for t in p.triples:
            self.n["triples"].inc()
            yield beam.pvalue.TaggedOutput("triples", {**t, "_file": file, "_line": line})
        payload = (text or (raw or b"").decode("utf-8", "replace")).rstrip("\r\n")[:2000] if p.problems else None
        for path, reason in p.problems:
            self.n["failures"].inc()
            yield beam.pvalue.TaggedOutput("failures", line_failure(self.run_id, "wikidata", "kg_entities", file,
                                                                line, path, reason, payload))


class ParsePages(beam.DoFn):
    """Wikipedia record (a Parquet row dict, or a JSON line) -> page row, or a ``failures`` row."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.n = {k: Metrics.counter(PIPELINE, k) for k in ("pages", "page_failures")}

    def process(self, rec):
        file, line, row = rec
        problem = ""
        if row is None or isinstance(row, bytes):
            text, problem = _decode(row)
            if text is not None and not text.strip():
                row = None  # a blank line: nothing to read
            elif text is not None:
                try:
                    row = loads(text, f"{file}:{line}")
                except InputError as exc:  # the message starts with "file:line"; the failure adds it back
                    problem = str(exc).removeprefix(f"{file}:{line}").lstrip(",: ")[:200]
        page, why = W.page_row(row) if not problem else (None, problem)
        if page is not None:
            self.n["pages"].inc()
            yield {**page, "_file": file, "_line": line}
        elif row is not None or problem:
            self.n["page_failures"].inc()
            payload = row if isinstance(row, dict) else None
            yield beam.pvalue.TaggedOutput("failures", line_failure(self.run_id, "wikipedia", "pages", file, line, "",
                                                                why, payload))


def _write(pcoll, label: str, prefix: str, schema: pa.Schema):
    return pcoll | label >> beam.io.WriteToParquet(prefix, schema, file_name_suffix=".parquet",
                                                     row_group_buffer_size=ROW_GROUP_BYTES)


@dataclass(frozen=True)
class IngestInputs:
    wikidata: tuple[str, ...] = ()
    wikipedia: tuple[str, ...] = ()


def build_pipeline(p: beam.Pipeline, inputs: IngestInputs, mapping: W.Mapping, stage: str, run_id: str) -> None:
    """The Beam graph: read -> parse -> Parquet shards under ``stage`` (entities-, triples-, pages-,
    failures-*.parquet)."""
    schemas = {"entities": entity_stage_schema(), "triples": triple_stage_schema(),
               "pages": page_stage_schema()}
    fails = []
    for i, path in enumerate(inputs.wikidata):
        out = (p | f"ReadWikidata{i}" >> beam.io.Read(NumberedRecords(path, parquet=False))
               | f"ParseWikidata{i}" >> beam.ParDo(ParseWikidata(mapping, run_id)).with_outputs(
                   "triples", "failures", main="entities"))
        _write(out.entities, f"WriteEntities{i}", f"{stage}/entities-{i}", schemas["entities"])
        _write(out.triples, f"WriteTriples{i}", f"{stage}/triples-{i}", schemas["triples"])
        fails.append(out.failures)
    for i, path in enumerate(inputs.wikipedia):
        out = (p | f"ReadWikipedia{i}" >> beam.io.Read(NumberedRecords(path, parquet=path.endswith(".parquet")))
               | f"ParsePages{i}" >> beam.ParDo(ParsePages(run_id)).with_outputs("failures", main="pages"))
        _write(out.pages, f"WritePages{i}", f"{stage}/pages-{i}", schemas["pages"])
        fails.append(out.failures)
    if fails:
        _write(fails | "AllFailures" >> beam.Flatten(), "WriteFailures", f"{stage}/failures",
               record_type("failures").arrow_schema)


def input_key(inputs: IngestInputs, mapping: W.Mapping) -> str:
    """Content key of an ingest: code version, mapping, and each input's path, size and mtime."""
    files = []
    for p in (*inputs.wikidata, *inputs.wikipedia):
        st = os.stat(p)
        files.append([os.path.abspath(p), st.st_size, st.st_mtime_ns])
    payload = [INGEST_CODE_VERSION, repr(mapping), files]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def check_inputs(inputs: IngestInputs) -> None:
    if not inputs.wikidata and not inputs.wikipedia:
        raise GraphError("kg ingest: nothing to ingest; give --wikidata DUMP and/or --wikipedia FILE")
    for p in inputs.wikidata:
        if not p.endswith((".json", ".json.gz", ".json.bz2")):
            raise GraphError(f"{p}: a Wikidata dump is .json, .json.gz or .json.bz2 (the JSON array dump)")
    for p in inputs.wikipedia:
        if not p.endswith((".parquet", ".jsonl", ".jsonl.gz", ".jsonl.bz2")):
            raise GraphError(f"{p}: a Wikipedia dump is .parquet or .jsonl (fields title, text)")
    for p in (*inputs.wikidata, *inputs.wikipedia):
        try:
            check_regular_file(p, "dump file")
        except InputError as exc:
            raise GraphError(str(exc)) from None


def ingest(inputs: IngestInputs, mapping: W.Mapping, cards, out_dir: str | os.PathLike, run: dict,
           memory_limit: str, progress=print) -> dict:
    """Run the job and finalize ``out_dir``; returns the manifest. Refuses before reading anything when
    an input is missing or a mapped relation has no card."""
    check_inputs(inputs)
    W.check_cards(mapping, cards)
    if not MEMORY_LIMIT.match(memory_limit):
        raise GraphError(f"memory limit {memory_limit!r}: give a size such as 512MB or 2GB")
    out = Path(out_dir)
    key = input_key(inputs, mapping)
    run_id = f"kg-ingest-{key[:8]}"
    stage = out / f".ingest-{run_id}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for name in ("manifest.json", *OUTPUTS):  # the manifest first: a half-rewritten dir is never complete
        (out / name).unlink(missing_ok=True)
    t0 = time.time()
    progress(f"kg ingest: Beam job over {len(inputs.wikidata)} Wikidata and {len(inputs.wikipedia)} Wikipedia file(s)")
    with beam.Pipeline(options=pipeline_options(run)) as p:
        build_pipeline(p, inputs, mapping, str(stage), run_id)
    result = p.result
    counters = {c.key.metric.name: c.committed for c in result.metrics().query()["counters"]
                if c.key.metric.namespace == PIPELINE}
    beam_s = time.time() - t0
    progress(f"kg ingest: parsed in {beam_s:.1f} s; finalizing with DuckDB (memory limit {memory_limit})")
    manifest = finalize(stage, out, run_id, memory_limit)
    manifest.update({
        "code_version": INGEST_CODE_VERSION, "key": key, "run_id": run_id, "source": mapping.source,
        "mapping": mapping.path, "inputs": {"wikidata": list(inputs.wikidata), "wikipedia": list(inputs.wikipedia)},
        "counters": dict(sorted(counters.items())), "beam_seconds": round(beam_s, 2),
        "seconds": round(time.time() - t0, 2), "rank_filter": mapping.rank_filter,
    })
    write_json(out / "manifest.json", manifest)
    shutil.rmtree(stage, ignore_errors=True)
    return manifest
