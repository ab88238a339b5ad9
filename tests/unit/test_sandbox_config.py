"""The sandbox config section: documented defaults, bounds, unknown keys rejected."""

import pytest

from pipelines.config import ConfigError, load_config
from sandbox.api import settings_from_config


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
