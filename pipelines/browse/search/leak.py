"""Anti-leakage: text that shares a long word n-gram with a forbidden text (the question being
answered, benchmark questions) must not reach the agent.

Words are lowercased ``\\w+`` tokens. A match is any run of ``n`` consecutive words (default 13)
that also occurs in a forbidden text; a forbidden text shorter than ``n`` words but at least
``min_words`` long counts as one n-gram of its own length (so a short question quoted verbatim
is still caught).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"\w+", re.UNICODE)
REDACTED = "[redacted]"


def _words(text: str) -> list[str]:
    return [m.group(0).lower() for m in _WORD.finditer(text)]


class LeakFilter:
    def __init__(self, forbidden_texts: Iterable[str] = (), n: int = 13, min_words: int = 8):
        if n < 2:
            raise ValueError(f"leak n-gram length must be >= 2, got {n}")
        self.n, self.min_words = n, min_words
        self.grams: dict[int, set[tuple[str, ...]]] = {}
        for text in forbidden_texts:
            w = _words(text)
            k = n if len(w) >= n else (len(w) if len(w) >= min_words else 0)
            if not k:
                continue
            bucket = self.grams.setdefault(k, set())
            for i in range(len(w) - k + 1):
                bucket.add(tuple(w[i:i + k]))

    def __bool__(self) -> bool:
        return bool(self.grams)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of ``text`` covered by forbidden n-grams (merged, sorted)."""
        if not self.grams:
            return []
        toks = list(_WORD.finditer(text))
        low = [m.group(0).lower() for m in toks]
        hit = [False] * len(toks)
        for k, bucket in self.grams.items():
            for i in range(len(low) - k + 1):
                if tuple(low[i:i + k]) in bucket:
                    for j in range(i, i + k):
                        hit[j] = True
        spans: list[tuple[int, int]] = []
        for i, h in enumerate(hit):
            if not h:
                continue
            s, e = toks[i].start(), toks[i].end()
            if spans and (i > 0 and hit[i - 1]):
                spans[-1] = (spans[-1][0], e)
            else:
                spans.append((s, e))
        return spans

    def leaks(self, text: str) -> bool:
        return bool(self.spans(text))

    def redact(self, text: str) -> tuple[str, int]:
        """Replace each leaking span with ``[redacted]``; returns (text, number of spans)."""
        spans = self.spans(text)
        if not spans:
            return text, 0
        out, pos = [], 0
        for s, e in spans:
            out.append(text[pos:s])
            out.append(REDACTED)
            pos = e
        out.append(text[pos:])
        return "".join(out), len(spans)
