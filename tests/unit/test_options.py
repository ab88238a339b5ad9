"""Typed options (pipelines/options*.py): generated from the config schemas, built once, frozen, picklable."""

import dataclasses
import pickle

import pytest

from crucible.pipelines import options_gen
from crucible.pipelines.config import load_config, section_schema
from crucible.pipelines.options import (
    SECTION_TYPES,
    Options,
    OptionsError,
    PolicyKind,
    build_options,
    rollout_policy,
)
from crucible.pipelines.options_base import build_section
from crucible.pipelines.options_shared import StoreOptions


def _pairs(schema: dict, cls: type, path: str):
    """(path, schema property names, dataclass field names) for a section and each nested object."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    yield path, set(schema.get("properties", {})), set(fields)
    hints = __import__("typing").get_type_hints(cls)
    for key, sub in schema.get("properties", {}).items():
        if sub.get("type") == "object" and "properties" in sub and key in fields:
            yield from _pairs(sub, hints[key], f"{path}.{key}")


def test_every_schema_property_has_a_field_and_every_field_a_property():
    for name, cls in SECTION_TYPES.items():
        for path, props, fields in _pairs(section_schema(name), cls, name):
            assert props == fields, f"{path}: only in schema {props - fields}, only in options {fields - props}"


def test_generated_modules_are_current_with_the_schemas():
    assert options_gen.stale() == [], "run python -m crucible.pipelines.options_gen"


def test_no_field_repeats_a_default():
    for cls in SECTION_TYPES.values():
        for f in dataclasses.fields(cls):
            assert f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING, f"{cls}.{f.name}"


@pytest.mark.parametrize("name", ["defaults", "browse", "swe"])
def test_shipped_configs_build_frozen_picklable_options(name):
    cfg = load_config(name)
    opts = build_options(cfg)
    assert isinstance(opts, Options)
    assert opts.browse.k == cfg.browse.k and opts.store.catalog == cfg.store.catalog
    assert opts.llm.pool.sticky is cfg.llm.pool.sticky  # nested objects are typed sections too
    assert isinstance(opts.browse.seed_types, tuple) and isinstance(opts.run.beam_args, tuple)
    assert opts.browse.to_dict() == cfg.browse.to_dict() and opts.search.to_dict() == cfg.search.to_dict()
    assert pickle.loads(pickle.dumps(opts)) == opts
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.browse.k = 9  # type: ignore[misc]


def test_a_mapping_missing_or_adding_a_key_is_refused():
    good = {"commit_every_items": 4, "commit_every_s": 1.0, "catalog": "c.duckdb", "compression": "zstd"}
    assert build_section(StoreOptions, good).commit_every_items == 4  # the complete mapping gets through
    with pytest.raises(OptionsError, match="missing \\['compression'\\]"):
        build_section(StoreOptions, {k: v for k, v in good.items() if k != "compression"}, "store")
    with pytest.raises(OptionsError, match="unknown \\['commit_every'\\]"):
        build_section(StoreOptions, {**good, "commit_every": 3}, "store")


def test_item_access_serves_mapping_readers_without_a_get():
    opts = build_options(load_config("browse")).browse
    assert opts["k"] == opts.k and "k" in opts and "nope" not in opts
    with pytest.raises(KeyError):
        opts["nope"]
    assert not hasattr(opts, "get")  # a second default cannot be written against it


def test_rollout_policy_is_decided_once_from_the_llm_engine():
    def decide(policy, engine):
        cfg = load_config("browse", [f"browse.policy={policy}", f"llm.engine={engine}"])
        return build_options(cfg).rollout_policy

    assert decide("auto", "embedded") is PolicyKind.JSON_STEP
    assert decide("auto", "openai") is PolicyKind.NATIVE
    assert decide("json_step", "openai") is PolicyKind.JSON_STEP and decide("native", "embedded") is PolicyKind.NATIVE
    o = build_options(load_config("browse"))
    assert rollout_policy(o.browse.replace(policy="native"), o.llm) is PolicyKind.NATIVE
