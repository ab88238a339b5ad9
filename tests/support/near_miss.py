"""Generate the near-miss suite (tests/data/browse/near_miss.jsonl) from the embedded graph.

    PYTHONPATH=. python -m tests.support.near_miss [OUT]

Every near miss is a wrong answer one hop away from the gold in the graph: the city's country, its
US state, its country's capital, a sibling city of the same country, the airport that serves it, a
river that runs through it, a neighbouring country, the continent, a discovery year +-1, an airport
count off by about 1 %; a few name nothing in the graph ("northern Peru") and only the judge can
stop them. Every paraphrase names the gold itself: qualified ("Lima, Peru"), "the city
of X", other capitalization, accents dropped, an alias, a year in a sentence, a measured quantity
rounded. Deterministic: the same graph gives the same file.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from pathlib import Path

from crucible.pipelines.browse.resolve import name_index, resolve

OUT = Path(__file__).resolve().parents[1] / "data" / "browse" / "near_miss.jsonl"
CAPITAL_COUNTRIES = ["PE", "IE", "FR", "JP", "EG", "KE", "AR", "DE", "CO", "IS", "ES", "TH", "GB", "HU", "AT", "IT",
                     "CZ", "RU"]
UNRESOLVED_FOR = ["PE", "IE", "FR", "JP", "EG", "DE"]
US_AIRPORTS = ["KBOS", "KSEA", "KDEN", "KATL", "KPHX"]
OTHER_AIRPORTS = ["EDDM", "LEBL", "RJBB", "YSSY", "CYVR"]
ELEMENTS = ["Po", "Ra", "He", "Ar"]
COUNT_COUNTRIES = ["FR", "DE", "JP", "BR"]


def _ascii(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def generate(graph) -> list[dict]:
    idx = name_index(graph)
    E = graph.entities
    rows: list[dict] = []

    def name(eid):
        return E[eid].name

    def one(eid, rel):
        objs = graph.objects(eid, rel)
        return objs[0] if objs else None

    def gold_names(eid):
        from crucible.pipelines.browse.names import answer_aliases

        return [name(eid), *answer_aliases(graph, eid)]

    def add(question, gold_id, prediction, expected, kind, answer_type=None, gold=None):
        if expected == "incorrect" and gold_id:
            # a real near miss: it names something, and not the gold
            got = resolve(idx, prediction)
            if not got or idx.canon(gold_id) in got:
                return
        rows.append({"question": question, "gold": gold or gold_names(gold_id), "gold_id": gold_id,
                     "answer_type": answer_type or (E[gold_id].type if gold_id else None),
                     "prediction": prediction, "expected": expected, "kind": kind})

    def add_unresolved(question, gold_id, prediction, kind):
        if not resolve(idx, prediction):
            rows.append({"question": question, "gold": gold_names(gold_id), "gold_id": gold_id,
                         "answer_type": E[gold_id].type, "prediction": prediction, "expected": "incorrect",
                         "kind": kind})

    def pop(eid):
        return E[eid].attributes.get("population") or 0

    city_by_country: dict[str, list[str]] = {}
    for cid in graph.by_type("city"):
        cc = one(cid, "country")
        if cc:
            city_by_country.setdefault(cc, []).append(cid)

    def is_river(aid):
        e = E[aid]
        desc = e.attributes.get("short_description") or ""
        return bool(re.search(r"\briver\b", desc, re.I)) and len(e.name.split()) <= 4 and \
            not re.fullmatch(r"(?i)river\b.*\b(delta|basin|mouth)|river|delta|estuary|valley|basin|canal", e.name)

    for cc in CAPITAL_COUNTRIES:
        country = f"country/{cc}"
        cap = one(country, "capital")
        if cap is None:
            continue
        iso3 = E[country].attributes.get("iso3")
        q = f"Which city is the capital of the country whose ISO 3166 alpha-3 code is {iso3}?"
        add(q, cap, name(country), "incorrect", "country")
        sib = max((c for c in city_by_country[country] if c != cap and name(c) != name(cap)), key=pop)
        add(q, cap, name(sib), "incorrect", "sibling city")
        art = next((a for a, e in idx.canonical.items() if e == cap), None)
        river = next((r for r in graph.objects(art, "mentions") if is_river(r)), None) if art else None
        if river is not None:
            add(q, cap, E[river].name, "incorrect", "river of the city")
        if cc in UNRESOLVED_FOR:
            # near misses that name nothing in the graph: only the judge can stop them
            add_unresolved(q, cap, f"{name(sib)} metropolitan area", "unresolved: sibling's metro area")
            add_unresolved(q, cap, f"northern {name(country)}", "unresolved: a region of the country")
        add(q, cap, f"{name(cap)}, {name(country)}", "correct", "qualified by country")
        add(q, cap, f"the city of {name(cap)}", "correct", "type prefix")
        add(q, cap, name(cap).upper(), "correct", "capitalization")
        if _ascii(name(cap)) != name(cap):
            add(q, cap, _ascii(name(cap)), "correct", "accents dropped")
        # the country as the gold
        qc = f"Which country has {name(cap)} as its capital?"
        nbs = sorted(graph.objects(country, "shares_border_with"), key=pop, reverse=True)
        if nbs:
            add(qc, country, name(nbs[0]), "incorrect", "neighbouring country")
        cont = one(country, "continent")
        if cont:
            add(qc, country, name(cont), "incorrect", "continent")
        add(qc, country, name(cap), "incorrect", "the capital instead of the country")
        add(qc, country, name(country).lower(), "correct", "capitalization")
        long = [a for a in E[country].aliases if len(a) > 4 and a.lower() != name(country).lower()]
        if long:
            add(qc, country, long[0], "correct", "alias")

    for icao in US_AIRPORTS + OTHER_AIRPORTS:
        ap = f"airport/{icao}"
        city = one(ap, "serves_city") if ap in E else None
        if city is None:
            continue
        country = one(city, "country")
        q = f"Which city is served by {name(ap)}?"
        state = one(city, "state")
        if state:
            add(q, city, name(state), "incorrect", "state of the city")
            add(q, city, f"{name(city)}, {name(state)}", "correct", "qualified by state")
        cap = one(country, "capital")
        if cap and cap != city:
            add(q, city, name(cap), "incorrect", "capital of its country")
        add(q, city, name(country), "incorrect", "country")
        add(q, city, name(ap), "incorrect", "the airport itself")
        add(q, city, f"{name(city)} ({name(country)})", "correct", "qualified in parentheses")

    for sym in ELEMENTS:
        el = f"element/{sym}"
        if el not in E or not E[el].attributes.get("discovery_year"):
            continue
        y = int(E[el].attributes["discovery_year"])
        q = f"In which year was {name(el)} discovered?"
        for d, kind in ((1, "year+1"), (-1, "year-1")):
            add(q, None, str(y + d), "incorrect", kind, "year", [str(y)])
        add(q, None, f"in {y}", "correct", "year in a sentence", "year", [str(y)])

    for cc in COUNT_COUNTRIES:
        country = f"country/{cc}"
        n = len([s for s in graph.subjects(country, "country") if s.startswith("airport/")])
        q = f"How many airports in {name(country)} does the airport list contain?"
        off = max(1, round(n * 0.01))
        add(q, None, f"{n + off:,}", "incorrect", "count off by 1%", "count", [f"{n:,}"])
        add(q, None, f"{n:,}", "correct", "count exact", "count", [str(n)])
        p = pop(country)
        qp = f"What is the population of {name(country)}?"
        add(qp, None, f"about {p / 1e6:.1f} million", "correct", "rounded measured quantity", "population",
            [f"{p:,}"])
    return rows


def main(argv: list[str]) -> int:
    from crucible.pipelines.browse.api import load_kg

    out = Path(argv[0]) if argv else OUT
    rows = generate(load_kg())
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    near = sum(r["expected"] == "incorrect" for r in rows)
    print(f"{out}: {len(rows)} rows, {near} near misses, {len(rows) - near} paraphrases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
