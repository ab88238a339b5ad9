"""configs/runners/*.yaml (#27 item 5) as far as this machine allows: the flags parse into Beam's options,
the swe-curate graph builds under them and serializes to a Runner-API pipeline proto (small: the sources are
spec elements, not data), and Flink's job server resolves its jar offline (named, or pre-staged in the cache)."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.options import pipeline_options as po
from apache_beam.runners.portability.flink_runner import FlinkJarJobServer

from crucible.pipelines.beam_options import pipeline_args, pipeline_options
from crucible.pipelines.config import load_config
from crucible.pipelines.swe.graph import build
from tests.support import portable_swe as ps

STAGES = ("Sources", "InjectMineCrawl", "SkipFinishedRows", "Validate", "Curate", "Commit", "CommittedKeys")


def _cfg(name: str, tmp_path):
    return load_config(f"configs/runners/{name}.yaml", [f"run.out_dir={tmp_path / 'out'}"])


def test_flink_flags_parse_offline_and_external():
    o = pipeline_options(load_config("configs/runners/flink.yaml").run)
    assert o.view_as(po.StandardOptions).runner == "FlinkRunner"
    f, p = o.view_as(po.FlinkRunnerOptions), o.view_as(po.PortableOptions)
    assert f.flink_job_server_jar.endswith("beam-runners-flink-1.20-job-server-2.77.0.jar")
    assert f.flink_version == "1.20" and o.view_as(po.JobServerOptions).jar_cache_dir == "/opt/beam/jars"
    assert (p.environment_type, p.environment_config) == ("EXTERNAL", "localhost:50000")


def test_dataflow_flags_parse_runner_v2_with_a_container():
    o = pipeline_options(load_config("configs/runners/dataflow.yaml").run)
    assert o.view_as(po.StandardOptions).runner == "DataflowRunner"
    assert "use_runner_v2" in o.view_as(po.DebugOptions).experiments
    assert o.view_as(po.WorkerOptions).sdk_container_image.endswith("crucible-beam-worker:2.77.0")
    g = o.view_as(po.GoogleCloudOptions)
    assert g.temp_location.startswith("gs://") and g.staging_location.startswith("gs://")
    assert o.view_as(po.WorkerOptions).element_processing_timeout_minutes == 25


@pytest.mark.parametrize("name", ["flink", "dataflow"])
def test_the_graph_builds_and_serializes_small_under_each_runner_config(tmp_path, name):
    cfg = _cfg(name, tmp_path).to_dict()
    # the runner is not contacted: the graph is built on a runner-less pipeline with the config's options
    opts = po.PipelineOptions([a for a in pipeline_args(cfg["run"]) if not a.startswith("--runner")])
    p = beam.Pipeline(options=opts)
    build(p, cfg, "r", "internal", None)
    proto = p.to_runner_api()
    labels = {t.unique_name for t in proto.components.transforms.values()}
    assert set(STAGES) <= labels
    assert {"Validate/ValidateEnvs/GroupByEnv", "Validate/Reshuffle", "Sources/Reshuffle"} <= labels
    assert len(proto.SerializeToString()) < 1_000_000  # Dataflow refuses job graphs of ~10 MB


def test_graph_size_does_not_grow_with_the_rows_of_an_instances_file(tmp_path):
    sizes = []
    for n in (1, 2000):
        f = ps.write_rows(tmp_path / f"rows{n}.jsonl", [ps.swebench_row(i) for i in range(n)])
        p = beam.Pipeline(options=po.PipelineOptions([]))
        build(p, ps.small_config(str(tmp_path / "out"), f).to_dict(), "r", "none", None)
        sizes.append(len(p.to_runner_api().SerializeToString()))
    assert abs(sizes[0] - sizes[1]) < 100  # only the file's path differs


def test_flink_job_server_finds_a_named_jar_or_one_prestaged_in_the_cache_without_network(tmp_path):
    jar = tmp_path / "job-server.jar"
    jar.write_bytes(b"PK")
    named = FlinkJarJobServer(po.PipelineOptions([f"--flink_job_server_jar={jar}", "--flink_version=1.20"]))
    assert str(jar) in named.subprocess_cmd_and_endpoint()[0]
    cache = tmp_path / "jars"
    cache.mkdir()
    server = FlinkJarJobServer(po.PipelineOptions(["--flink_version=1.20", f"--jar_cache_dir={cache}"]))
    staged = cache / server.path_to_jar().rsplit("/", 1)[-1]
    assert staged.name == "beam-runners-flink-1.20-job-server-2.77.0.jar"
    staged.write_bytes(b"PK")
    assert str(staged) in server.subprocess_cmd_and_endpoint()[0]
