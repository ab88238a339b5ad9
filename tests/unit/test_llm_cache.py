"""The run caches' folders: a bucket store keeps its response caches on the local disk, never under ``s3:/``."""

from __future__ import annotations

from pathlib import Path


def test_run_cache_dir_of_a_bucket_store_is_a_local_folder_not_s3_colon(tmp_path, monkeypatch):
    from crucible.pipelines.llm.cache import run_cache_dir

    monkeypatch.setenv("CRUCIBLE_CACHE_DIR", str(tmp_path / "cc"))
    monkeypatch.chdir(tmp_path)
    assert run_cache_dir("runs/a", "llm") == Path("runs/a/cache/llm")
    assert run_cache_dir(None, "reward") == Path("data/cache/reward")
    remote = run_cache_dir("s3://bucket/store", "llm")
    assert remote.is_relative_to(tmp_path / "cc" / "run-cache") and remote.name == "llm"
    assert run_cache_dir("s3://bucket/store/", "llm") == remote != run_cache_dir("s3://bucket/other", "llm")
    # switched off (the old Path(out_dir) / "cache"): a folder named "s3:" in the working directory
    assert str(Path("s3://bucket/store") / "cache" / "llm").startswith("s3:/bucket")


def test_client_from_config_on_a_bucket_store_writes_nothing_under_the_working_directory(tmp_path, monkeypatch):
    from crucible.pipelines.llm.client import LLMClient

    monkeypatch.setenv("CRUCIBLE_CACHE_DIR", str(tmp_path / "cc"))
    monkeypatch.chdir(tmp_path)
    c = LLMClient.from_config({"base_urls": ["http://127.0.0.1:9/v1"], "model": "m"}, out_dir="s3://bucket/store")
    assert c.stats_dir == "s3://bucket/store/stats/llm_pool"
    assert str(c.cache.dir).startswith(str(tmp_path / "cc"))
    c.close()
    assert not (tmp_path / "s3:").exists()
