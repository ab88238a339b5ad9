import pytest

from crucible.pipelines.cli import main
from crucible.pipelines.config import ConfigError, load_config


def test_shipped_defaults_load_with_schema_defaults_filled():
    cfg = load_config("defaults")
    assert cfg.run.runner == "FnApiRunner"
    assert cfg.store.commit_every_items >= 1
    assert cfg.run.limit is None  # filled from the schema default


def test_override_parses_yaml_values():
    cfg = load_config("defaults", ["llm.max_concurrency=8", "run.beam_args=[--a, --b]"])
    assert cfg.llm.max_concurrency == 8
    assert list(cfg.run.beam_args) == ["--a", "--b"]


def test_bad_value_names_file_key_path_and_allowed(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("run:\n  direct_running_mode: turbo\nstore:\n  commit_every_items: 0\n")
    with pytest.raises(ConfigError) as ei:
        load_config(str(f))
    msg = str(ei.value)
    assert str(f) in msg
    assert "run.direct_running_mode" in msg and "allowed: in_memory, multi_threading, multi_processing" in msg
    assert "store.commit_every_items" in msg and ">= 1" in msg


def test_unknown_key_lists_allowed_keys(tmp_path):
    f = tmp_path / "typo.yaml"
    f.write_text("run:\n  out_dri: x\n")
    with pytest.raises(ConfigError, match=r"run: .*'out_dri' was unexpected.*allowed keys: .*out_dir"):
        load_config(str(f))


def test_unknown_section_and_bad_yaml_and_missing_file(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("runn: {}\n")
    with pytest.raises(ConfigError, match="runn"):
        load_config(str(f))
    g = tmp_path / "y.yaml"
    g.write_text("run: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(g))
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.yaml"))


def test_extends_merges_and_detects_cycles(tmp_path):
    (tmp_path / "base.yaml").write_text("run:\n  out_dir: basedir\n  limit: 3\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nrun:\n  limit: 5\n")
    cfg = load_config(str(tmp_path / "child.yaml"))
    assert cfg.run.out_dir == "basedir" and cfg.run.limit == 5
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(str(tmp_path / "a.yaml"))


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="KEY.PATH=VALUE"):
        load_config("defaults", ["llm.max_concurrency"])


def test_cli_config_validate_exit_codes(capsys):
    assert main(["config", "validate"]) == 0
    assert main(["config", "validate", "--set", "run.direct_num_workers=0"]) == 2
    err = capsys.readouterr().err
    assert "run.direct_num_workers" in err and "minimum" in err
