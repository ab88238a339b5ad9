"""The in-process transformers reward scorer on real rows with a tiny random model (needs torch: `make score`)."""

from __future__ import annotations

import pytest

from crucible.pipelines.llm.reward import reward_conversation
from tests.support import samples

pytestmark = pytest.mark.integration


def test_transformers_backend_scores_real_rows_with_a_tiny_random_model():
    from crucible.pipelines.llm.reward import TransformersRewardScorer
    from tests.support.tiny_models import reward_model, tokenizer

    convs = [samples.messages(i) for i in range(4)]
    texts = [m["content"] for c in convs for m in reward_conversation(c)]
    tok = tokenizer(texts)
    scorer = TransformersRewardScorer("tiny-random-rm", tokenizer=tok, model=reward_model(len(tok)))
    scores = scorer.score(convs)
    assert len(scores) == 4 and all(isinstance(s, float) for s in scores)
    assert len(set(scores)) == 4  # different conversations, different scores
    assert scorer.score(convs[:1]) == scores[:1]  # deterministic
    short = TransformersRewardScorer("tiny-random-rm", tokenizer=tok, model=reward_model(len(tok)), max_length=5)
    assert short.score(convs[:1]) == [None]  # too long to read whole: no score, not a truncated one
