"""The toy graph and the scripted LLM of the fast browse tests (synth-browse, browse rollout)."""

from __future__ import annotations

import json
import re

from tests.support.fake_llm_server import Reply


def write_toy_graph(d) -> list[str]:
    """A toy user graph (Peru, Bolivia, their capitals, currencies, airports) as JSONL files; returns
    the paths for ``search.kg.extra``."""
    ents = [
        {"id": "country/PE", "type": "country", "name": "Peru", "attributes": {"population": 34000000}},
        {"id": "country/BO", "type": "country", "name": "Bolivia", "attributes": {"population": 12000000}},
        {"id": "currency/PEN", "type": "currency", "name": "Peruvian sol", "aliases": ["sol", "PEN"]},
        {"id": "currency/BOB", "type": "currency", "name": "Boliviano", "aliases": ["BOB"]},
        {"id": "city/lima", "type": "city", "name": "Lima", "attributes": {"population": 9750000}},
        {"id": "city/cusco", "type": "city", "name": "Cusco", "attributes": {"population": 428000}},
        {"id": "city/lapaz", "type": "city", "name": "La Paz", "attributes": {"population": 757000}},
        {"id": "airport/SPZO", "type": "airport", "name": "Velasco Astete Airport", "attributes": {"elevation_ft": 10860}},
        {"id": "airport/SLLP", "type": "airport", "name": "El Alto Airport", "attributes": {"elevation_ft": 13325}},
        {"id": "continent/SA", "type": "continent", "name": "South America"},
    ]
    tris = [("country/PE", "capital", "city/lima"), ("country/BO", "capital", "city/lapaz"),
            ("country/PE", "currency", "currency/PEN"), ("country/BO", "currency", "currency/BOB"),
            ("country/PE", "continent", "continent/SA"), ("country/BO", "continent", "continent/SA"),
            ("city/lima", "country", "country/PE"), ("city/cusco", "country", "country/PE"),
            ("city/lapaz", "country", "country/BO"), ("airport/SPZO", "serves_city", "city/cusco"),
            ("airport/SLLP", "serves_city", "city/lapaz"), ("airport/SPZO", "country", "country/PE"),
            ("airport/SLLP", "country", "country/BO")]
    (d / "entities.jsonl").write_text("\n".join(json.dumps(e) for e in ents) + "\n")
    (d / "triples.jsonl").write_text("\n".join(json.dumps({"subject": s, "relation": r, "object": o})
                                               for s, r, o in tris) + "\n")
    return [str(d / "entities.jsonl"), str(d / "triples.jsonl")]


def responder(body):
    """Plays every role of the pipeline by looking at the structured-output schema."""
    rf = (body.get("response_format") or {}).get("json_schema", {}).get("schema", {})
    last = body["messages"][-1]["content"]
    props = rf.get("properties", {})
    if "question" in props:  # writer: echo the draft unchanged (keeps every clue)
        return Reply(content=json.dumps({"question": re.search(r"Draft: (.*)", last).group(1)}))
    if set(props) == {"answer"}:  # closed book
        return Reply(content=json.dumps({"answer": "Euro"}))
    if "equivalent" in props:  # the answer judge: never equivalent (what the rules accept stays correct)
        return Reply(content=json.dumps({"equivalent": "no", "reason": "fake judge: not the same"}))
    if "verdict" in props:
        return Reply(content=json.dumps({"extracted_answer": "x", "verdict": "incorrect", "reason": "fake judge"}))
    if "anyOf" in rf or "tool" in props:  # agent step
        observed = [m for m in body["messages"] if m["role"] == "user" and m["content"].startswith("Observation")]
        if not observed:
            return Reply(content=json.dumps({"thought": "search", "tool": "search", "arguments": {"query": "Peru currency"}}))
        return Reply(content=json.dumps({"thought": "done", "tool": "answer", "arguments": {"answer": "Peruvian sol"}}))
    return Reply(content="{}")
