import json

import pyarrow as pa
import pytest

from crucible.pipelines.store.records import TABLES, SchemaError, all_record_types, arrow_type, record_type
from tests.support import samples


def test_every_table_has_a_schema_key_and_explicit_arrow_types():
    assert set(TABLES) == {"questions", "browse_trajectories", "swe_instances", "swe_validations",
                           "swe_trajectories", "sandbox_surveys", "swe_grades", "failures"}
    for rt in all_record_types():
        assert rt.key in rt.columns
        assert rt.arrow_schema.names == rt.columns
        assert not any(pa.types.is_null(f.type) for f in rt.arrow_schema)


@pytest.mark.parametrize("table", list(TABLES))
def test_samples_validate_and_roundtrip_through_arrow(table):
    rt = record_type(table)
    row = samples.ALL[table](3)
    assert rt.errors(row) == []
    back = rt.decode(rt.to_table([row]).to_pylist()[0])
    for k, v in row.items():
        assert back[k] == v, k


def test_messages_are_openai_shaped_with_string_arguments():
    rt = record_type("browse_trajectories")
    f = rt.arrow_schema.field("messages").type.value_type
    call = f.field("tool_calls").type.value_type
    assert call.field("function").type.field("arguments").type == pa.string()
    row = samples.browse_trajectory(1)
    row["messages"][2]["tool_calls"][0]["function"]["arguments"] = {"query": "x"}  # dict, not JSON string
    errors = rt.errors(row)
    assert errors and errors[0][0] == "$.messages[2].tool_calls[0].function.arguments"


def test_json_fields_are_stored_as_json_strings():
    rt = record_type("questions")
    enc = rt.encode(samples.question(2))
    assert json.loads(enc["formalization"])["target"] == "?x"
    assert rt.arrow_schema.field("formalization").type == pa.string()


def test_errors_name_path_and_reason():
    rt = record_type("swe_validations")
    row = samples.swe_validation(1)
    row["status"] = "maybe"
    row["fail_to_pass"] = ["ok", 3]
    errs = dict(rt.errors(row))
    assert "is not one of" in errs["$.status"]
    assert "is not of type 'string'" in errs["$.fail_to_pass[1]"]


def test_object_without_properties_must_be_marked_json():
    with pytest.raises(SchemaError, match="x-arrow"):
        arrow_type({"type": "object"}, "t.c")
    with pytest.raises(SchemaError, match="exactly one"):
        arrow_type({"type": ["string", "integer"]}, "t.c")
