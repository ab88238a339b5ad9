"""Host facts: apt mirror, CA bundle, pip index settings."""

import pytest

from crucible.sandbox.hostenv import (
    find_ca_bundle,
    host_debian_mirror,
    parse_apt_sources,
    pick_debian_mirror,
    pip_env_from_config,
)

DEB822 = """Types: deb
# comment line
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_deb822_and_one_line_sources():
    got = parse_apt_sources(DEB822)
    assert ("http://mirror.example/debian", ["bookworm", "bookworm-updates"]) in got
    assert parse_apt_sources("deb [arch=amd64] http://m.example/debian bullseye main\n# deb x y\n") == [
        ("http://m.example/debian", ["bullseye"])]


def test_pick_mirror_skips_security_and_third_party():
    srcs = [("https://packages.vendor.example/apt", ["cloud-sdk"]),
            ("http://mirror.example/debian-security", ["bookworm-security"]),
            ("http://mirror.example/debian/", ["bookworm"])]
    assert pick_debian_mirror(srcs) == "http://mirror.example/debian"
    assert pick_debian_mirror([]) is None


def test_host_mirror_from_a_fake_root(tmp_path):
    d = tmp_path / "etc/apt/sources.list.d"
    d.mkdir(parents=True)
    (d / "debian.sources").write_text(DEB822)
    (d / "other.list.disabled").write_text("deb http://x.example/debian sid main\n")
    assert host_debian_mirror(str(tmp_path)) == "http://mirror.example/debian"


def test_pip_env_keeps_remote_indexes_drops_local_paths():
    lines = [
        "global.cert='/etc/ssl/certs/ca-certificates.crt'",
        "global.extra-index-url='file:///opt/pypi/simple https://extra.example/simple'",
        "global.find-links='/opt/wheels'",
        "global.constraint='/etc/xdg/pip/constraints.txt'",
        "global.index-url='https://mirror.example/simple'",
        "global.trusted-host='mirror.example'",
    ]
    assert pip_env_from_config(lines) == {
        "PIP_EXTRA_INDEX_URL": "https://extra.example/simple",
        "PIP_INDEX_URL": "https://mirror.example/simple",
        "PIP_TRUSTED_HOST": "mirror.example",
    }
    assert pip_env_from_config(["global.extra-index-url='file:///opt/pypi/simple'"]) == {}


def test_ca_bundle_configured_missing_is_an_error_naming_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="sandbox.ca_bundle"):
        find_ca_bundle(str(tmp_path / "nope.pem"))
    pem = tmp_path / "ca.pem"
    pem.write_text("x")
    assert find_ca_bundle(str(pem)) == str(pem)
    assert find_ca_bundle(None, candidates=(str(tmp_path / "a"), str(pem))) == str(pem)
    assert find_ca_bundle(None, candidates=(str(tmp_path / "a"),)) is None
