"""The sandbox config section: documented defaults, bounds, unknown keys rejected."""

import pytest

from crucible.pipelines.config import ConfigError, load_config
from crucible.sandbox.api import settings_from_config


def test_defaults_fill_and_settings_resolve():
    cfg = load_config("defaults", [])
    sb = cfg.sandbox
    assert sb.network == "none" and sb.reruns == 1 and sb.ca_bundle is None
    assert sb.repo_url_template == "https://github.com/{repo}.git"
    s = settings_from_config(sb, resolve_host=False)
    assert s.limits.memory_mb == 4096 and s.pythons == ("3.9", "3.11") and s.repos_dir.name == "repos"


@pytest.mark.parametrize("override,needle", [
    ("sandbox.network=host", "sandbox.network"),
    ("sandbox.memory_mb=1", "sandbox.memory_mb"),
    ("sandbox.colour=red", "colour"),
])
def test_bad_values_name_the_key(override, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config("defaults", [override])


def test_settings_read_every_value_from_the_resolved_section():
    """The schema is the one place of the defaults: overrides flow through, and a partial section (no resolved
    defaults) is refused by key instead of falling back to a second default in code."""
    cfg = load_config("defaults", ["sandbox.cpus=3", "sandbox.memory_mb=2048", "sandbox.pids=64",
                                   "sandbox.test_timeout_s=60", "sandbox.build_timeout_s=120",
                                   "sandbox.network=internal", "sandbox.reruns=2", "sandbox.pythons=['3.13']",
                                   "sandbox.cache_dir=/tmp/sbx", "sandbox.repos_dir=/tmp/repos",
                                   "sandbox.repo_url_template=file:///m/{repo}.git",
                                   "sandbox.inherit_host_pip=false", "sandbox.pip_env={PIP_X: y}"])
    s = settings_from_config(cfg.sandbox, resolve_host=True)
    assert (s.limits.cpus, s.limits.memory_mb, s.limits.pids, s.limits.timeout_s) == (3.0, 2048, 64, 60)
    assert (s.build_timeout_s, s.network, s.reruns, s.pythons) == (120, "internal", 2, ("3.13",))
    assert str(s.cache_dir) == "/tmp/sbx" and str(s.repos_dir) == "/tmp/repos"
    assert s.repo_url_template == "file:///m/{repo}.git"
    assert s.pip_env == {"PIP_X": "y"}  # inherit_host_pip=false: nothing from the host
    partial = {k: v for k, v in cfg.sandbox.items() if k != "cpus"}
    with pytest.raises(KeyError, match="cpus"):
        settings_from_config(partial, resolve_host=False)
