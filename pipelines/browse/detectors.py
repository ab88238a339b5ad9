"""Reading a committed answer: the final answer outside the reasoning, hedges, lists of candidates,
a gold stated whole inside a short answer, and numbers the gold does not state.

The detectors the rules run before any judge, and that veto a judge's "correct"
(:mod:`crucible.pipelines.browse.verify`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from crucible.pipelines.browse.gold import numbers_match, parse_number
from crucible.pipelines.browse.names import normalize

_HEDGES = [
    r"cannot be determined", r"can ?not determine", r"can't (?:be )?determine", r"unable to (?:determine|find|answer)",
    r"not (?:enough|sufficient) information", r"insufficient (?:information|evidence)", r"i (?:do not|don't) know",
    r"\bunknown\b", r"\bunclear\b", r"no (?:definitive|clear|single) answer", r"could not (?:find|determine)",
    r"couldn't (?:find|determine)", r"not (?:possible|able) to (?:determine|say|tell)", r"impossible to (?:say|tell|determine)",
    r"\bnot sure\b", r"^n/a$", r"^none$", r"no answer", r"cannot answer", r"can't answer",
    r"\bi am not certain\b", r"\bhard to say\b", r"\bwithout more (?:information|context)\b",
]
_HEDGE_RE = re.compile("|".join(_HEDGES))
_REASONING_RE = re.compile(r"<think>.*?(?:</think>|$)|<reasoning>.*?(?:</reasoning>|$)", re.S | re.I)
_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S | re.I)
_FINAL_RE = re.compile(r"(?:final answer|answer)\s*(?:is)?\s*[:：]\s*(.+)", re.I)
# strong separators only: "Paris, France" is one answer, "Paris or Lyon" is two
_LIST_SPLIT = re.compile(r"\s+or\s+|\s*;\s*|\s*/\s*|\s*\|\s*|\n+\s*(?:[-*•]|\d+[.)])?\s*|,\s*or\s+|\s+and/or\s+")


def strip_reasoning(text: str) -> str:
    return _REASONING_RE.sub(" ", text or "").strip()


def extract_final_answer(prediction: str) -> str:
    """The final answer a prediction gives: <answer> tags, then 'Final answer:', else the
    text with any reasoning block removed."""
    body = strip_reasoning(prediction)
    m = _ANSWER_TAG.search(body)
    if m:
        return m.group(1).strip()
    m = _FINAL_RE.search(body)
    if m:
        return m.group(1).strip().splitlines()[0].strip()
    return body.strip()


def is_hedge(answer: str) -> bool:
    raw = (answer or "").strip().lower()
    return bool(_HEDGE_RE.search(normalize(answer)) or _HEDGE_RE.search(raw))


def candidates(answer: str) -> list[str]:
    parts = [p.strip(" .") for p in _LIST_SPLIT.split(answer or "")]
    parts = [re.sub(r"^(?:either|maybe|possibly|perhaps|probably)\s+", "", p, flags=re.I) for p in parts]
    return [p for p in parts if p]


def matches_gold(answer: str, golds: Sequence[str], rel_tol: float = 0.0) -> bool:
    na = normalize(answer)
    if not na:
        return False
    for g in golds:
        if na == normalize(g):
            return True
        a_num, g_num = parse_number(answer), parse_number(g)
        if a_num is not None and g_num is not None and numbers_match(a_num, g_num, rel_tol):
            return True
    return False


def gold_contains_separator(golds: Sequence[str]) -> bool:
    return any(len(candidates(g)) > 1 for g in golds)


_NUMBER_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?")


def other_numbers(answer: str, golds: Sequence[str]) -> bool:
    """The answer states a number that no gold states ("between 1968 and 1969" for 1968)."""
    gold_nums = {n.replace(",", "") for g in golds for n in _NUMBER_TOKEN.findall(g)}
    return any(n.replace(",", "") not in gold_nums for n in _NUMBER_TOKEN.findall(answer))


_FILLER = {"it", "is", "was", "in", "of", "on", "at", "this", "that", "answer", "final", "located", "called",
           "named", "known", "as", "its", "capital", "city", "country", "state", "which", "federal"}
_NEGATION = {"not", "no", "never", "neither", "nor", "isnt", "isn", "doesn", "except", "wrong", "incorrect", "instead", "rather", "but",
             "however", "unlikely", "maybe", "perhaps", "possibly", "probably"}


def _tokens(text: str) -> list[str]:
    t = unicodedata.normalize("NFKD", text or "")
    t = "".join(c for c in t if not unicodedata.combining(c)).lower().replace("&", " and ")
    return re.findall(r"\w+|[^\w\s]", t)


def contains_gold(answer: str, golds: Sequence[str], max_extra: int = 3) -> str | None:
    """A gold answer stated whole inside a short answer ("Lima, Peru", "It is in Africa",
    "Marie Sklodowska-Curie" for "Marie Curie"): every gold word appears in order, at most
    ``max_extra`` other content words are added, nothing negates it, and no other word is glued
    to the gold span ("South Sudan" is not "Sudan", "New Mexico" is not "Mexico"): those go to
    the judge."""
    toks = _tokens(answer)
    words = [t for t in toks if t[0].isalnum()]
    if _NEGATION & set(words):
        return None
    for g in golds:
        gw = [t for t in _tokens(g) if t[0].isalnum() and t not in ("a", "an", "the")]
        if not gw:
            continue
        pos, i = [], 0
        for w in gw:
            while i < len(toks) and toks[i] != w:
                i += 1
            if i == len(toks):
                break
            pos.append(i)
            i += 1
        if len(pos) != len(gw):
            continue
        extra = [w for w in words if w not in gw and w not in _FILLER and w not in ("a", "an", "the")]
        if len(extra) > max_extra:
            continue
        before = toks[pos[0] - 1] if pos[0] > 0 else None
        after = toks[pos[-1] + 1] if pos[-1] + 1 < len(toks) else None
        glued = [t for t in (before, after)
                 if t is not None and t[0].isalnum() and t not in _FILLER and t not in ("a", "an", "the")]
        if glued:
            continue
        return g
    return None
