"""Answer verification: rules first, then an LLM judge that sees the evidence.

Non-symmetric by design: cheap deterministic rules decide whatever they can decide with
certainty (exact alias match, numeric match, hedges, candidate lists, empty answers, an
answer only inside the reasoning); only the rest goes to the judge. The judge's "correct"
is then re-checked by the same hack detectors, so a lenient or fooled judge cannot let a
hedge or a list of candidates through.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

VERDICTS = ("correct", "incorrect", "not_attempted")

# The judge answers one question: does the committed final answer mean the same as a gold?
# (Hedges, lists and answers hidden in the reasoning are decided by the rules before it.)
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "equivalent": {"type": "string", "enum": ["yes", "no"]},
        "reason": {"type": "string", "maxLength": 120},
    },
    "required": ["equivalent", "reason"],
    "additionalProperties": False,
}

# A judge call: (messages, json schema) -> parsed object or None when the model failed.
JudgeFn = Callable[[list[dict], dict], "dict | None"]


@dataclass(frozen=True)
class Verdict:
    verdict: str
    extracted_answer: str | None
    reason: str
    source: str  # "rule" or "judge"

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------ normalization

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s%.-]")


def normalize(text: str) -> str:
    """Lowercase, strip accents, punctuation, articles and extra spaces."""
    t = unicodedata.normalize("NFKD", text or "")
    t = "".join(c for c in t if not unicodedata.combining(c)).lower()
    t = t.replace("&", " and ")
    t = _PUNCT.sub(" ", t)
    t = re.sub(r"(?<!\d)[.-]|[.-](?!\d)", " ", t)  # keep 3.5 and -4, drop other dots/dashes
    t = _ARTICLES.sub(" ", t)
    return " ".join(t.split())


_SCALE = {"thousand": 1e3, "k": 1e3, "million": 1e6, "m": 1e6, "mn": 1e6, "billion": 1e9, "bn": 1e9,
          "b": 1e9, "trillion": 1e12}
_NUM = re.compile(r"^(?:about |approximately |around |roughly |~)?(-?\d[\d,]*(?:\.\d+)?)\s*([a-z%]*)")


def parse_number(text: str) -> float | None:
    """The number a short answer states ("1,234", "1.2 million", "12k", "48 ft"), else None."""
    t = (text or "").strip().lower().replace("\u2212", "-")
    m = _NUM.match(t)
    if not m:
        return None
    rest = t[m.end():].strip()
    # a number followed by more words that are not a unit/scale is not a numeric answer
    if len(rest.split()) > 2:
        return None
    try:
        value = float(m.group(1).replace(",", ""))
    except ValueError:
        return None
    return value * _SCALE.get(m.group(2), 1.0)


def numbers_match(a: float, b: float, rel_tol: float = 0.01) -> bool:
    return abs(a - b) <= rel_tol * max(abs(a), abs(b), 1e-9)


# ------------------------------------------------------------------ hack detectors

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


def matches_gold(answer: str, golds: Sequence[str], rel_tol: float = 0.01) -> bool:
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


def _gold_contains_separator(golds: Sequence[str]) -> bool:
    return any(len(candidates(g)) > 1 for g in golds)


def rule_verdict(golds: Sequence[str], prediction: str, rel_tol: float = 0.01) -> Verdict | None:
    """A certain verdict from rules alone, or None when the judge must decide."""
    if not (prediction or "").strip():
        return Verdict("not_attempted", None, "empty prediction", "rule")
    answer = extract_final_answer(prediction)
    if not answer:
        if any(normalize(g) and normalize(g) in normalize(prediction) for g in golds):
            return Verdict("not_attempted", None, "answer appears only in the reasoning, no final answer", "rule")
        return Verdict("not_attempted", None, "no final answer outside the reasoning", "rule")
    if matches_gold(answer, golds, rel_tol):
        return Verdict("correct", answer, "matches a gold answer after normalization", "rule")
    if is_hedge(answer):
        return Verdict("not_attempted", answer, "hedge: the answer declines to commit", "rule")
    cands = candidates(answer)
    if len(cands) > 1 and not _gold_contains_separator(golds):
        return Verdict("incorrect", answer, f"lists {len(cands)} candidate answers instead of one", "rule")
    a_num = parse_number(answer)
    if a_num is not None and all(parse_number(g) is not None for g in golds):
        return Verdict("incorrect", answer, "numeric answer outside tolerance of every gold number", "rule")
    gold = contains_gold(answer, golds)
    if gold:
        return Verdict("correct", answer, f"states the gold answer {gold!r} in a short answer", "rule")
    return None


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


# ------------------------------------------------------------------ judge

JUDGE_PROMPT_ID = "browse_judge"


def judge_prompt(prompt_id: str = JUDGE_PROMPT_ID):
    """The versioned judge prompt (``configs/prompts/browse_judge.yaml``)."""
    from pipelines.llm.prompts import load_prompt

    return load_prompt(prompt_id)


def build_judge_messages(question: str, golds: Sequence[str], prediction: str,
                         evidence: Sequence[str] = (), prompt=None) -> list[dict]:
    prompt = prompt or judge_prompt()
    return prompt.render(question=question, golds=list(golds), evidence=list(evidence)[:8],
                         prediction=extract_final_answer(prediction) or prediction)


def judge_verdict(question: str, golds: Sequence[str], prediction: str, judge: JudgeFn,
                  evidence: Sequence[str] = (), rel_tol: float = 0.01, prompt=None) -> Verdict:
    """Rules first; the judge for what rules cannot decide; hack detectors veto a judge 'correct'."""
    ruled = rule_verdict(golds, prediction, rel_tol)
    if ruled is not None:
        return ruled
    answer = extract_final_answer(prediction)
    out = judge(build_judge_messages(question, golds, prediction, evidence, prompt), JUDGE_SCHEMA)
    if not out or out.get("equivalent") not in ("yes", "no"):
        return Verdict("incorrect", answer, "judge gave no valid verdict; not counted as correct", "judge")
    reason = str(out.get("reason", ""))[:500]
    if out["equivalent"] == "no":
        return Verdict("incorrect", answer, reason or "judge: not the same as any gold answer", "judge")
    # defense in depth: a judge's "yes" never lets a hedge or a candidate list through
    if is_hedge(answer):
        return Verdict("not_attempted", answer, "judge said equivalent but the answer hedges", "judge")
    if len(candidates(answer)) > 1 and not _gold_contains_separator(golds):
        return Verdict("incorrect", answer, "judge said equivalent but the answer lists candidates", "judge")
    return Verdict("correct", answer, reason or "judge: same as a gold answer", "judge")
