"""The per-run internal network against a real engine: connects to a non-routable address time out there
(as on SWE-bench's labelling network) where ``--network none`` fails them at once, names fail to resolve at
once on both (no 10 s hang in Docker's embedded DNS), and containers of one run cannot reach each other."""

from __future__ import annotations

import json
import shlex

import pytest

from tests.integration.swe_helpers import swe_settings  # noqa: F401 - session fixture

pytestmark = [pytest.mark.integration, pytest.mark.docker]

PROBE = r"""
import json, socket, time
def timed(f):
    t0 = time.monotonic()
    try:
        f()
        r = "ok"
    except socket.timeout:
        r = "timeout"
    except OSError as e:
        r = f"oserror:{e.errno}"
    return {"r": r, "s": round(time.monotonic() - t0, 3)}
print("PROBE " + json.dumps({
    "connect": timed(lambda: socket.create_connection(("10.255.255.1", 80), timeout=2).close()),
    "dns": timed(lambda: socket.getaddrinfo("github.com", 443)),
    "localhost": timed(lambda: socket.getaddrinfo("localhost", 80)),
}))
"""


@pytest.fixture(scope="module")
def base_image(docker_client, swe_settings):  # noqa: F811
    from crucible.sandbox.api import build_base

    return build_base(docker_client, swe_settings, "3.11")["image"]


def probe(client, image: str, network: str) -> dict:
    from crucible.sandbox.container import Limits, run_in_container

    out = run_in_container(client, image, f"python -c {shlex.quote(PROBE)}", network=network,
                           limits=Limits(timeout_s=60))
    assert out.exit_code == 0, out.daemon_error or out.log
    line = next(x for x in out.log.splitlines() if x.startswith("PROBE "))
    return json.loads(line[len("PROBE "):])


def test_connect_times_out_on_the_run_network_and_fails_at_once_under_none(docker_client, base_image):
    from crucible.sandbox.container import internal_network

    with internal_network(docker_client, "it-network-probe") as net:
        internal = probe(docker_client, base_image, net)
    none = probe(docker_client, base_image, "none")
    assert internal["connect"]["r"] == "timeout" and internal["connect"]["s"] >= 1.9
    assert none["connect"]["r"] == "oserror:101" and none["connect"]["s"] < 0.5  # ENETUNREACH, no wait
    # no egress and no DNS hang: an outside name fails as fast on the run network as under none
    assert internal["dns"]["r"].startswith("oserror") and internal["dns"]["s"] < 0.5
    assert none["dns"]["r"].startswith("oserror")
    assert internal["localhost"]["r"] == none["localhost"]["r"] == "ok"


def test_embedded_dns_hangs_without_the_resolver_override(docker_client, base_image, monkeypatch):
    """The defense matters: without the resolv.conf override a lookup on an internal network hangs in
    Docker's embedded DNS (10 s with glibc's defaults: 5 s, 2 attempts)."""
    from crucible.sandbox import container

    monkeypatch.setattr(container, "network_kwargs", lambda client, network: {
        "network_mode": container.ensure_network(client, network)})
    with container.internal_network(docker_client, "it-network-nodns") as net:
        got = probe(docker_client, base_image, net)
    assert got["dns"]["r"].startswith("oserror") and got["dns"]["s"] >= 4.5


def test_run_network_is_removed_and_isolates_containers(docker_client, base_image):
    import docker

    from crucible.sandbox.container import Sandbox, internal_network, run_in_container

    with internal_network(docker_client, "it-network-icc") as net:
        with Sandbox(docker_client, base_image, network=net, include_git=False) as server:
            server.exec("nohup python -m http.server 8000 >/dev/null 2>&1 & sleep 1", 30)
            code, _ = server.exec("python -c \"import socket; socket.create_connection(('127.0.0.1', 8000), 2)\"", 30)
            assert code == 0  # the server listens
            server.container.reload()
            ip = server.container.attrs["NetworkSettings"]["Networks"][net]["IPAddress"]
            out = run_in_container(docker_client, base_image, "python -c \"import socket; "
                                   f"socket.create_connection(('{ip}', 8000), 2)\"", network=net)
            assert out.exit_code != 0 and "timed out" in out.log  # no traffic between a run's containers
    with pytest.raises(docker.errors.NotFound):
        docker_client.networks.get(net)
