"""Which stored rows an export takes: the RL splits, the reference and semi_resolved splits (each only when asked
for), a band of question pass rates (``--pass-band``), and the decoded rows of a catalog query."""

from __future__ import annotations

from dataclasses import dataclass

from crucible.pipelines.store.records import record_type

RL_SPLITS = ("rl", "sft+rl")
# the swe-curate split of the gold policy's rows (crucible.pipelines.swe.filters.REFERENCE_SPLIT): never in an export
# unless asked for (``include_reference``)
REFERENCE_SPLIT = "reference"
# the swe-curate split of clean, unresolved rows that came close (crucible.pipelines.swe.filters.SEMI_SPLIT): in a TRL
# SFT export only when asked for (``include_semi``), and marked (column ``semi_resolved``) for turn-masking
SEMI_SPLIT = "semi"


@dataclass(frozen=True)
class PassBand:
    """A band of question pass rates (``--pass-band``): ``lo``/``hi`` with each end open or closed. A question
    without a pass rate (no trajectory was verified) is outside every band."""

    lo: float
    hi: float
    lo_closed: bool = False
    hi_closed: bool = False

    def contains(self, rate: float | None) -> bool:
        if rate is None:
            return False
        above = rate >= self.lo if self.lo_closed else rate > self.lo
        below = rate <= self.hi if self.hi_closed else rate < self.hi
        return above and below

    def __str__(self) -> str:
        return f"{'[' if self.lo_closed else '('}{self.lo:g}, {self.hi:g}{']' if self.hi_closed else ')'}"


def parse_pass_band(text: str) -> PassBand:
    """``LO,HI`` is the open band LO < pass rate < HI (``0,1``: DAPO, all-wrong and all-correct questions out);
    a bracket closes an end: ``[0,0.5]`` is 0 <= rate <= 0.5, ``[0,1)`` drops only the all-correct ones."""
    t = text.strip()
    lo_closed, hi_closed = t[:1] == "[", t[-1:] == "]"
    body = t[1 if t[:1] in "[(" else 0: len(t) - (1 if t[-1:] in "])" else 0)]
    parts = body.split(",")
    try:
        lo, hi = (float(x) for x in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        lo = hi = None
    if lo is None or hi is None or not 0 <= lo <= hi <= 1:
        raise ValueError(f"--pass-band {text!r}: give two pass rates LO,HI with 0 <= LO <= HI <= 1, e.g. 0,1 "
                         "(open: drops all-wrong and all-correct questions) or [0,0.5] (brackets close an end)")
    return PassBand(lo, hi, lo_closed, hi_closed)


def stored_rows(con, sql: str, table: str, params: list | None = None) -> list[dict]:
    """The rows of ``sql`` on the catalog connection ``con``, decoded as records of ``table``."""
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    rt = record_type(table)
    return [rt.decode(dict(zip(cols, r))) for r in cur.fetchall()]
