"""Reward-model scores for whole conversations (Bradley-Terry sequence classifiers, Skywork-Reward-V2 style).

Two backends behind one interface, ``scorer.score(conversations) -> [float | None]``:

- :class:`PoolingRewardClient`: a vLLM (or any server speaking vLLM's pooling protocol) reward model:
  ``POST {base}/pooling`` with ``{"model", "messages"}``, one scalar per conversation read from
  ``data[0].data``. Same discipline as the LLM client: tenacity retries on connection errors, timeouts,
  408/409/429/5xx with ``Retry-After`` honoured, bounded concurrency, a content-addressed cache (a rerun
  sends no request).
- :class:`TransformersRewardScorer`: ``AutoModelForSequenceClassification`` in process (CPU), the
  conversation rendered with the model's own chat template; for small reward models.

Conversations are OpenAI messages; tool calls and tool results are folded into text
(``<tool_call>``/``<tool_response>``, the Qwen form of ``render_react``) because reward-model chat
templates know only user/assistant/system turns. A conversation the backend cannot score gets
``None`` (never 0), and the caller records why.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import requests

from crucible.pipelines.http_retry import RetryPolicy, retry_after_seconds
from crucible.pipelines.llm.cache import ResponseCache, cache_key

CACHE_PROMPT = ("reward_model", 1)


class RewardError(RuntimeError):
    """The reward backend failed for good (non-retryable status, bad response, retries exhausted)."""


class RewardScorer(Protocol):
    model_id: str

    def score(self, conversations: Sequence[Sequence[Mapping]]) -> list[float | None]: ...


def reward_conversation(messages: Sequence[Mapping]) -> list[dict]:
    """OpenAI messages -> system/user/assistant turns a reward model's chat template accepts."""
    out: list[dict] = []

    def add(role: str, text: str) -> None:
        if out and out[-1]["role"] == role and role != "system":
            out[-1]["content"] += "\n" + text
        else:
            out.append({"role": role, "content": text})

    for m in messages:
        role, content = m.get("role"), m.get("content") or ""
        if role in ("system", "user"):
            add(role, content)
        elif role == "assistant":
            text = content
            for c in m.get("tool_calls") or []:
                fn = c.get("function") or {}
                args = fn.get("arguments")
                args = json.loads(args or "{}") if isinstance(args, str) else (args or {})
                text += f"<tool_call>{json.dumps({'name': fn.get('name'), 'arguments': args}, ensure_ascii=False)}</tool_call>"
            add("assistant", text)
        elif role == "tool":
            add("user", f"<tool_response>{content}</tool_response>")
    return out


def _scalar(data: Any) -> float:
    """vLLM pooling output -> one float: ``x``, ``[x]`` or per-token ``[[x], ...]`` (the last token's)."""
    while isinstance(data, list):
        if not data:
            raise RewardError("pooling response holds an empty list")
        data = data[-1] if isinstance(data[-1], list) else data[0]
    if not isinstance(data, int | float) or isinstance(data, bool):
        raise RewardError(f"pooling response is not a number: {data!r}")
    return float(data)


class _HTTPStatus(Exception):
    def __init__(self, status: int, headers: Mapping[str, str], body: str):
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status, self.headers = status, dict(headers)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, _HTTPStatus):
        return exc.status in (408, 409, 429) or exc.status >= 500
    return isinstance(exc, requests.ConnectionError | requests.Timeout)


class PoolingRewardClient:
    """A reward model behind vLLM's pooling API (``vllm serve M --task reward`` / ``--runner pooling``)."""

    def __init__(self, base_url: str, model: str, *, max_concurrency: int = 4, timeout_s: float = 120.0,
                 max_retries: int = 5, backoff_initial_s: float = 1.0, backoff_max_s: float = 60.0,
                 retry_after_max_s: float = 300.0, cache_dir: str | None = None, api_key: str | None = None):
        base = base_url.rstrip("/")
        self.url = (base[:-3] if base.endswith("/v1") else base) + "/pooling"
        self.model_id = model
        self.max_concurrency = max_concurrency
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.retry_policy = RetryPolicy(max_retries, backoff_initial_s, backoff_max_s, retry_after_max_s)
        self.cache = ResponseCache(cache_dir) if cache_dir else None
        self._session = requests.Session()
        if api_key:
            self._session.headers["Authorization"] = f"Bearer {api_key}"
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "cache_hits": 0, "retries": 0}

    def _on_wait(self, exc: BaseException, seconds: float) -> float:
        with self._lock:
            self.stats["retries"] += 1
        return seconds

    def _post(self, messages: list[dict]) -> dict:
        with self._lock:
            self.stats["requests"] += 1
        r = self._session.post(self.url, json={"model": self.model_id, "messages": messages}, timeout=self.timeout_s)
        if r.status_code != 200:
            raise _HTTPStatus(r.status_code, r.headers, r.text)
        try:
            return r.json()
        except ValueError:
            raise RewardError(f"{self.url}: response is not JSON: {r.text[:200]!r}") from None

    def score_one(self, messages: Sequence[Mapping]) -> float:
        conv = reward_conversation(messages)
        key = cache_key(self.model_id, conv, {"task": "reward"}, *CACHE_PROMPT)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            with self._lock:
                self.stats["cache_hits"] += 1
            return float(hit["score"])
        try:
            for attempt in self.retry_policy.retrying(
                    _transient, hint_of=lambda e: retry_after_seconds(e.headers) if isinstance(e, _HTTPStatus) else None,
                    on_wait=self._on_wait):
                with attempt:
                    body = self._post(conv)
        except _HTTPStatus as exc:
            raise RewardError(f"{self.url}: {exc}") from None
        except Exception as exc:
            if _transient(exc):
                raise RewardError(f"{self.url}: {type(exc).__name__}: {exc}") from None
            raise
        try:
            value = _scalar(body["data"][0]["data"])
        except (KeyError, IndexError, TypeError):
            raise RewardError(f"{self.url}: no data[0].data in the pooling response: {str(body)[:200]}") from None
        if self.cache is not None:
            self.cache.put(key, {"score": value}, {"model": self.model_id, "messages": conv})
        return value

    def score(self, conversations: Sequence[Sequence[Mapping]]) -> list[float | None]:
        with ThreadPoolExecutor(max_workers=max(1, self.max_concurrency)) as pool:
            return list(pool.map(self.score_one, conversations))

    def close(self) -> None:
        self._session.close()


class TransformersRewardScorer:
    """A sequence-classification reward model in process (``transformers`` + ``torch``, CPU by default)."""

    def __init__(self, model_path: str, *, device: str = "cpu", max_length: int = 8192, model=None, tokenizer=None):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.model_id = model_path
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_path)
        self.model = (model or AutoModelForSequenceClassification.from_pretrained(model_path)).to(device).eval()
        self.device, self.max_length = device, max_length

    def score(self, conversations: Sequence[Sequence[Mapping]]) -> list[float | None]:
        import torch

        out: list[float | None] = []
        for messages in conversations:
            ids = self.tokenizer.apply_chat_template(reward_conversation(messages), tokenize=True, return_tensors="pt",
                                                     return_dict=True)["input_ids"]
            if ids.shape[-1] > self.max_length:
                out.append(None)  # longer than the model reads: no score rather than a truncated one
                continue
            with torch.no_grad():
                logits = self.model(input_ids=ids.to(self.device)).logits
            out.append(float(logits[0][0]))
        return out


def make_reward_scorer(llm_cfg: Mapping[str, Any], cache_dir: str | None = None) -> RewardScorer | None:
    """The configured scorer (``llm.reward_model``), or None when ``backend`` is ``none``."""

    rm = llm_cfg["reward_model"]
    if rm["backend"] == "none":
        return None
    if not rm["model"]:
        raise ValueError(f"llm.reward_model.model is required with backend {rm['backend']}")
    if rm["backend"] == "transformers":
        return TransformersRewardScorer(rm["model"], device=rm["device"], max_length=rm["max_length"])
    if not rm["base_url"]:
        raise ValueError("llm.reward_model.base_url is required with backend pooling (e.g. http://127.0.0.1:8000)")
    key = os.environ.get(rm["api_key_env"]) if rm["api_key_env"] else None
    if rm["api_key_env"] and not key:
        raise ValueError(f"llm.reward_model.api_key_env: environment variable {rm['api_key_env']} is not set")
    return PoolingRewardClient(rm["base_url"], rm["model"], max_concurrency=rm["max_concurrency"],
                               timeout_s=rm["timeout_s"], max_retries=llm_cfg["max_retries"],
                               backoff_initial_s=llm_cfg["backoff_initial_s"], backoff_max_s=llm_cfg["backoff_max_s"],
                               retry_after_max_s=llm_cfg["retry_after_max_s"], cache_dir=cache_dir, api_key=key)
