"""Tiny randomly initialised transformers models and a word-level tokenizer, built offline from configs.

No download: the tokenizer's vocabulary is made from the texts it will see, and the chat template is a
plain ``<|role|>`` one, so reward-model and trainer mechanics can be tested on real rows."""

from __future__ import annotations

import re
from collections.abc import Iterable

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|> {% endif %}")
SPECIALS = ["<pad>", "<unk>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]


def tokenizer(texts: Iterable[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t)})
    vocab = {tok: i for i, tok in enumerate(SPECIALS + [w for w in words if w not in SPECIALS])}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", eos_token="<|end|>",
                                   additional_special_tokens=SPECIALS[2:])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def reward_model(vocab_size: int, seed: int = 0):
    """A 2-layer Qwen2 sequence classifier with one label (a Bradley-Terry reward head), random weights."""
    import torch
    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, num_labels=1,
                      pad_token_id=0)
    return Qwen2ForSequenceClassification(cfg).eval()


def causal_lm(vocab_size: int, seed: int = 0):
    """A 2-layer Qwen2 causal LM, random weights (a trainer-mechanics test model)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      pad_token_id=0, tie_word_embeddings=True)
    return Qwen2ForCausalLM(cfg)
