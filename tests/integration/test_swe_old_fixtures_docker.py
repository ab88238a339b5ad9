"""Old-commit fixtures (issue 24) against a real engine: SWE-bench-format rows at 2018-2020 releases
(``tests/data/swe/old/``, labels made by SWE-bench's own recipes, ``benchmarks/swe_old_fixtures.py``), their
mirrors rebuilt from the releases' sdists commit by commit (each sha the row's), validated with Crucible's own
inference (``--recipes inferred``, resolved as of the release): every given label holds and no suite ends
"never started". A subset, one env each, so the test stays within a few minutes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.integration.swe_helpers import *  # noqa: F403 - session fixtures
from tests.integration.swe_helpers import DATA

pytestmark = [pytest.mark.integration, pytest.mark.docker]

# requests 2.19.1 (2018-06), marshmallow 2.19.5 (2019-06: its conftest stops on simplejson; the ladder climbs to
# the 'reco' extra, whose python-dateutil a given P2P test needs), marshmallow 3.8.0 (2020-09)
SUBSET = ("psf__requests-v2.19-8400619b46", "marshmallow-code__marshmallow-v2.19-605fc9b22f",
          "marshmallow-code__marshmallow-v3.8-06fd824727")
STARTED_BY_EXTRA = "marshmallow-code__marshmallow-v2.19-605fc9b22f"


@pytest.fixture(scope="module")
def old_rows(tmp_path_factory):
    from benchmarks.swe_old_fixtures import mirrors
    from crucible.pipelines.swe.sources import read_instances

    root = tmp_path_factory.mktemp("old-mirrors")
    rebuilt = mirrors(DATA / "old", root, set(SUBSET))  # raises where a sha does not come out as the row's
    rows, problems = read_instances(DATA / "old" / "fixtures.jsonl")
    assert not problems and len(rows) >= 10
    assert len({r["repo"] for r in rows}) >= 3 and {r["created_at"][:4] for r in rows} <= {"2018", "2019", "2020"}
    return root, [r for r in rows if r["instance_id"] in SUBSET], rebuilt


@pytest.fixture(scope="module")
def ctx_for(old_rows, docker_client, swe_settings, tmp_path_factory):
    """A validation context with inferred recipes on a per-run internal network, as the labels were made
    (``crucible swe validate``'s default swe.network: requests' connect-timeout tests time out there)."""
    from crucible.pipelines.swe.envs import ValidateContext, run_network
    from crucible.pipelines.swe.mirror import mirror_template

    s = replace(swe_settings, repo_url_template=mirror_template(old_rows[0]))
    with run_network(docker_client, "internal", "it-old-fixtures") as net:
        yield lambda name: ValidateContext(client=docker_client, settings=s, network=net, recipes="inferred",
                                           workdir=tmp_path_factory.mktemp(name))


def test_the_mirrors_rebuild_with_the_rows_commits(old_rows):
    root, rows, rebuilt = old_rows
    assert sorted(r["instance_id"] for r in rebuilt) == sorted(SUBSET) == sorted(r["instance_id"] for r in rows)
    for r in rows:
        owner, name = r["repo"].split("/")
        assert (root / owner / f"{name}.git" / "HEAD").exists()


def test_inferred_recipes_hold_the_labels_swebench_recipes_gave(old_rows, ctx_for):
    from crucible.pipelines.swe.validate import validate

    ctx = ctx_for("old-work")
    for inst in old_rows[1]:
        val = validate(ctx, inst, "it")
        row = val.row
        assert not row["meta"].get("stopped"), (inst["instance_id"], row["meta"].get("stopped"))
        assert row["status"] == "valid", (inst["instance_id"], row["reason"])
        assert row["labels_hold"] is True, (inst["instance_id"], row["labels_not_held"])
        assert row["labels_not_held"] == [] and row["fail_to_pass"]
        # our own inference, not SWE-bench's table: no recipe origin, resolved as of the release
        assert not val.env.recipe.get("origin"), val.env.recipe.get("origin")
        if inst["instance_id"] == STARTED_BY_EXTRA:  # the suite first stopped; the rung quotes pytest's line
            assert row["meta"]["first_stop"] == "E   ModuleNotFoundError: No module named 'simplejson'"
            assert [(r["kind"], r["arg"]) for r in row["meta"]["start_rungs"]] == [("install_extra", "reco")]


def test_switched_off_the_module_rung_starts_the_suite_but_a_given_label_fails(old_rows, ctx_for, monkeypatch):
    """Without the declared extras the ladder installs simplejson alone: the suite starts, and
    test_from_datestring (python-dateutil, same extra) fails both ways, so a given P2P label does not hold."""
    import crucible.pipelines.swe.startrung
    from crucible.pipelines.swe.validate import validate

    # climb (startrung) reads the declared extras through extra_requirements: none declared
    monkeypatch.setattr(crucible.pipelines.swe.startrung, "extra_requirements", lambda tree: {})
    row = validate(ctx_for("old-off"), next(r for r in old_rows[1] if r["instance_id"] == STARTED_BY_EXTRA),
                   "it").row
    assert [(r["kind"], r["arg"]) for r in row["meta"]["start_rungs"]] == [("install_module", "simplejson")]
    assert row["labels_hold"] is False
    assert row["labels_not_held"] == ["tests/test_utils.py::test_from_datestring"]
