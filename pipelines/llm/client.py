"""The one LLM client: OpenAI-compatible chat completions against one or more base URLs.

It owns everything about *calling* a model, so callers never do:

- spreading requests over endpoints (least in-flight, ties round robin) with a semaphore per
  endpoint (``max_concurrency``);
- an optional requests/tokens-per-minute pacer shared by all threads;
- retries (tenacity) on connection errors, timeouts, 408/409/429/5xx with jittered exponential
  backoff, honouring ``Retry-After`` / ``retry-after-ms``; a retry may go to another endpoint;
- a content-addressed response cache (:mod:`pipelines.llm.cache`);
- structured output: ``response_format`` json_schema + jsonschema validation + a bounded
  corrective retry; on final failure the result has ``parsed=None``, ``error`` and the raw text;
- tool-call normalization (:mod:`pipelines.llm.toolcalls`);
- accounting: per call (:class:`ChatResult`) and aggregated (:meth:`LLMClient.stats`), and
  :func:`report_beam_metrics` for pipelines.

A transport failure that survives all retries raises :class:`LLMError` (callers turn it into a
failure row); invalid structured output is a *result* with ``error`` set, never an exception.

The client is thread-safe and picklable (it pickles as its constructor arguments), and
``LLMClient.from_config(cfg.llm.to_dict())`` is all a Beam ``DoFn.setup`` needs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from pipelines.http_retry import RetryPolicy, retry_after_seconds
from pipelines.llm.cache import ResponseCache, cache_key
from pipelines.llm.toolcalls import extract_tool_calls

log = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({408, 409, 425, 429})
# keyword arguments the SDK's chat.completions.create accepts directly; anything else goes in extra_body
_SDK_PARAMS = frozenset({
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "n", "stop", "seed", "presence_penalty",
    "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "tools", "tool_choice", "response_format",
    "parallel_tool_calls", "user", "stream_options", "reasoning_effort", "metadata", "store",
})


class LLMError(RuntimeError):
    """A call failed for good (non-retryable status, or retries exhausted)."""

    def __init__(self, message: str, *, attempts: int, status: int | None = None, endpoint: str | None = None):
        super().__init__(message)
        self.attempts = attempts
        self.status = status
        self.endpoint = endpoint


@dataclass
class ChatResult:
    """One model call. ``raw`` is the server's JSON response (or the cached copy of it)."""

    text: str | None
    tool_calls: list[dict]
    finish_reason: str | None
    usage: dict[str, int]
    latency_s: float
    retries: int
    cache_hit: bool
    raw: dict | None
    model: str
    endpoint: str | None = None
    cache_key: str | None = None
    prompt_id: str | None = None
    prompt_version: str | None = None
    parsed: Any = None
    error: str | None = None
    attempts: int = 1  # generations made (structured() may make several)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def message(self) -> dict:
        """The assistant message in OpenAI form, ready to append to a trajectory."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            msg["tool_calls"] = self.tool_calls
        return msg

    def accounting(self) -> dict:
        """Flat per-call usage for storing in rows."""
        return {
            "model": self.model,
            "prompt_id": self.prompt_id,
            "prompt_version": self.prompt_version,
            "prompt_tokens": int(self.usage.get("prompt_tokens", 0)),
            "completion_tokens": int(self.usage.get("completion_tokens", 0)),
            "latency_s": round(self.latency_s, 4),
            "retries": self.retries,
            "attempts": self.attempts,
            "cache_hit": self.cache_hit,
        }


# --------------------------------------------------------------------------------------------
# pure helpers


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in TRANSIENT_STATUS or exc.status_code >= 500
    return False


_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)


def parse_json_text(text: str | None) -> Any:
    """Parse a JSON value from model text: plain, fenced, or the outermost {...} in prose."""
    if text is None:
        raise ValueError("empty reply (no content)")
    s = text.strip()
    try:
        return json.loads(s)
    except ValueError:
        pass
    m = _FENCE.match(s)
    if m:
        try:
            return json.loads(m.group(1))
        except ValueError:
            pass
    a, b = s.find("{"), s.rfind("}")
    if 0 <= a < b:
        try:
            return json.loads(s[a:b + 1])
        except ValueError:
            pass
    raise ValueError(f"not JSON: {s[:120]!r}")


def validate_structured(text: str | None, validator) -> tuple[Any, str | None]:
    """(parsed, None) if ``text`` holds JSON valid for the schema, else (None, reason)."""
    try:
        obj = parse_json_text(text)
    except ValueError as exc:
        return None, str(exc)
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "<root>"
        return None, f"schema violation at {where}: {e.message}"
    return obj, None


def json_schema_response_format(schema: Mapping, name: str = "response", strict: bool = True) -> dict:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": dict(schema), "strict": strict}}


def _estimate_tokens(messages: Sequence[Mapping], max_tokens: int | None) -> int:
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    return chars // 4 + 1 + int(max_tokens or 0)


# --------------------------------------------------------------------------------------------
# concurrency and rate limiting


class RatePacer:
    """Smooth pacing at ``per_minute`` units/minute shared by all threads (GCRA-style).

    ``acquire(n)`` reserves ``n`` units and sleeps until its slot; ``adjust(delta)`` corrects a
    reservation once the real amount is known (e.g. tokens actually used).
    """

    def __init__(self, per_minute: float, clock=time.monotonic, sleep=time.sleep):
        if per_minute <= 0:
            raise ValueError("per_minute must be > 0")
        self.interval = 60.0 / float(per_minute)
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def acquire(self, amount: float = 1.0) -> float:
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + amount * self.interval
        wait = start - now
        if wait > 0:
            self._sleep(wait)
        return wait

    def adjust(self, delta: float) -> None:
        with self._lock:
            self._next += delta * self.interval


class _Endpoint:
    def __init__(self, url: str, client: Any, max_concurrency: int):
        self.url = url
        self.client = client
        self.sem = threading.BoundedSemaphore(max_concurrency)
        self.in_flight = 0  # including waiters for the semaphore
        self.requests = 0


_COUNTERS = ("calls", "requests", "cache_hits", "retries", "failures", "prompt_tokens", "completion_tokens",
             "structured_invalid", "structured_failed")


class LLMClient:
    def __init__(
        self,
        base_urls: Sequence[str] | str,
        model: str,
        *,
        api_key: str | None = None,
        max_concurrency: int = 1,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        timeout_s: float = 300.0,
        max_retries: int = 5,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        retry_after_max_s: float = 300.0,
        structured_retries: int = 2,
        parse_text_tool_calls: bool = True,
        default_params: Mapping[str, Any] | None = None,
        cache_dir: str | os.PathLike | None = None,
        cache: bool = True,
    ):
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise ValueError("llm.base_urls is empty: give at least one OpenAI-compatible base URL "
                             "(or start one with `with llm_endpoint(cfg.llm) as urls:`)")
        if max_concurrency < 1:
            raise ValueError("llm.max_concurrency must be >= 1")
        self._init_kwargs = dict(
            base_urls=urls, model=model, api_key=api_key, max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute, timeout_s=timeout_s,
            max_retries=max_retries, backoff_initial_s=backoff_initial_s, backoff_max_s=backoff_max_s,
            retry_after_max_s=retry_after_max_s, structured_retries=structured_retries,
            parse_text_tool_calls=parse_text_tool_calls, default_params=dict(default_params or {}),
            cache_dir=None if cache_dir is None else str(cache_dir), cache=cache,
        )
        self.model = model
        self.max_retries = max_retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_max_s = retry_after_max_s
        self.retry_policy = RetryPolicy(max_retries, backoff_initial_s, backoff_max_s, retry_after_max_s)
        self.structured_retries = structured_retries
        self.parse_text_tool_calls = parse_text_tool_calls
        self.default_params = {k: v for k, v in (default_params or {}).items() if v is not None}
        key = api_key or "EMPTY"  # local servers ignore it; the SDK insists on one
        self._endpoints = [
            _Endpoint(u.rstrip("/"), openai.OpenAI(base_url=u.rstrip("/"), api_key=key, timeout=timeout_s,
                                                   max_retries=0), max_concurrency)
            for u in urls
        ]
        self._rr = 0
        self._lock = threading.Lock()
        self._rpm = RatePacer(requests_per_minute) if requests_per_minute else None
        self._tpm = RatePacer(tokens_per_minute) if tokens_per_minute else None
        self.cache = ResponseCache(cache_dir, enabled=cache) if (cache and cache_dir is not None) else None
        self._stats: dict[str, float] = dict.fromkeys(_COUNTERS, 0)
        self._stats["latency_s"] = 0.0

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], *, base_urls: Sequence[str] | None = None,
                    cache_dir: str | os.PathLike | None = None, out_dir: str | os.PathLike = "data") -> LLMClient:
        """Build from the ``llm`` config section (a plain dict or Config).

        ``base_urls`` overrides ``cfg["base_urls"]`` (pass what :func:`llm_endpoint` yielded).
        The cache goes to ``cache_dir`` > ``cfg["cache_dir"]`` > ``<out_dir>/cache/llm``.
        """
        c = dict(cfg)
        urls = list(base_urls if base_urls is not None else (c.get("base_urls") or []))
        api_key = None
        env = c.get("api_key_env")
        if env:
            api_key = os.environ.get(env)
            if not api_key:
                raise ValueError(f"llm.api_key_env: environment variable {env} is not set; export it or set "
                                 "llm.api_key_env to null for servers without auth")
        cdir = cache_dir or c.get("cache_dir") or (Path(out_dir) / "cache" / "llm")
        params = {"temperature": c.get("temperature"), "max_tokens": c.get("max_tokens"), "seed": c.get("seed")}
        if c.get("top_p") is not None:
            params["top_p"] = c["top_p"]
        return cls(
            urls, c.get("model") or "default",
            api_key=api_key,
            max_concurrency=int(c.get("max_concurrency") or 1),
            requests_per_minute=c.get("requests_per_minute"),
            tokens_per_minute=c.get("tokens_per_minute"),
            timeout_s=float(c.get("timeout_s") or 300),
            max_retries=int(c.get("max_retries", 5)),
            backoff_initial_s=float(c.get("backoff_initial_s", 1.0)),
            backoff_max_s=float(c.get("backoff_max_s", 60.0)),
            retry_after_max_s=float(c.get("retry_after_max_s", 300.0)),
            structured_retries=int(c.get("structured_retries", 2)),
            parse_text_tool_calls=bool(c.get("parse_text_tool_calls", True)),
            default_params=params,
            cache_dir=cdir,
            cache=bool(c.get("cache", True)),
        )

    def __reduce__(self):
        return (_rebuild, (self.__class__, self._init_kwargs))

    def close(self) -> None:
        for ep in self._endpoints:
            ep.client.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def base_urls(self) -> list[str]:
        return [ep.url for ep in self._endpoints]

    # -- accounting ------------------------------------------------------------------------------
    def _count(self, **deltas: float) -> None:
        with self._lock:
            for k, v in deltas.items():
                self._stats[k] = self._stats.get(k, 0) + v

    def stats(self) -> dict:
        """Snapshot of the aggregate counters (thread-safe), plus per-endpoint request counts."""
        with self._lock:
            out = dict(self._stats)
            out["per_endpoint"] = {ep.url: ep.requests for ep in self._endpoints}
        for k in _COUNTERS:
            out[k] = int(out[k])
        return out

    # -- endpoint choice -------------------------------------------------------------------------
    def _pick(self) -> _Endpoint:
        with self._lock:
            n = len(self._endpoints)
            order = [self._endpoints[(self._rr + i) % n] for i in range(n)]
            ep = min(order, key=lambda e: e.in_flight)  # min keeps the first of equals: round robin
            self._rr = (self._endpoints.index(ep) + 1) % n
            ep.in_flight += 1
        return ep

    def _release(self, ep: _Endpoint) -> None:
        with self._lock:
            ep.in_flight -= 1

    # -- calls -----------------------------------------------------------------------------------
    def _retry_hint(self, exc: BaseException) -> float | None:
        return retry_after_seconds(dict(exc.response.headers)) if isinstance(exc, openai.APIStatusError) else None

    def _request_once(self, model: str, messages: list, params: dict) -> tuple[dict, str]:
        if self._rpm:
            self._rpm.acquire(1)
        est = 0
        if self._tpm:
            est = _estimate_tokens(messages, params.get("max_tokens"))
            self._tpm.acquire(est)
        ep = self._pick()
        try:
            with ep.sem:
                with self._lock:
                    ep.requests += 1
                    self._stats["requests"] += 1
                sdk = {k: v for k, v in params.items() if k in _SDK_PARAMS}
                extra = {k: v for k, v in params.items() if k not in _SDK_PARAMS}
                resp = ep.client.chat.completions.create(
                    model=model, messages=messages, **sdk, **({"extra_body": extra} if extra else {})
                )
        finally:
            self._release(ep)
        raw = resp.model_dump(mode="json", exclude_unset=True) if hasattr(resp, "model_dump") else dict(resp)
        if self._tpm:
            used = (raw.get("usage") or {}).get("total_tokens")
            if used is not None:
                self._tpm.adjust(float(used) - est)
        return raw, ep.url

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        prompt: Any = None,
        sample_index: int = 0,
        use_cache: bool = True,
        model: str | None = None,
        **params: Any,
    ) -> ChatResult:
        """One chat completion. ``prompt`` is a loaded Prompt (or ``(id, version)``) for the cache key
        and accounting; ``sample_index`` distinguishes repeated samples of the same request (it is in
        the cache key and is added to a configured ``seed``).
        Extra keyword arguments are sampling/tool params (``temperature``, ``tools``, ``response_format``…).
        Precedence: config defaults < the prompt's ``params`` < keyword arguments; ``None`` values
        are dropped, so ``seed=None`` removes the configured seed.
        """
        model = model or self.model
        prompt_params = getattr(prompt, "params", None) or {}
        merged = {**self.default_params, **prompt_params, **params}
        merged = {k: v for k, v in merged.items() if v is not None}
        if sample_index and isinstance(merged.get("seed"), int):
            merged["seed"] += int(sample_index)  # distinct samples need distinct seeds
        msgs = [dict(m) for m in messages]
        pid, pver = _prompt_ref(prompt)
        key = cache_key(model, msgs, merged, pid, pver, sample_index)
        self._count(calls=1)
        if use_cache and self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                self._count(cache_hits=1)
                return self._result(cached, model, None, 0.0, 0, True, key, pid, pver, merged)
        t0 = time.perf_counter()
        attempts = 0
        try:
            for attempt in self.retry_policy.retrying(is_transient, hint_of=self._retry_hint):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    if attempts > 1:
                        self._count(retries=1)
                    raw, url = self._request_once(model, msgs, merged)
        except openai.APIError as exc:
            self._count(failures=1)
            status = getattr(exc, "status_code", None)
            kind = "transient, retries exhausted" if is_transient(exc) else "not retryable"
            raise LLMError(f"LLM call failed after {attempts} attempt(s) ({kind}): {type(exc).__name__}: {exc}",
                           attempts=attempts, status=status) from exc
        latency = time.perf_counter() - t0
        usage = raw.get("usage") or {}
        self._count(prompt_tokens=usage.get("prompt_tokens") or 0,
                    completion_tokens=usage.get("completion_tokens") or 0, latency_s=latency)
        if use_cache and self.cache is not None:
            self.cache.put(key, raw, {"model": model, "messages": msgs, "params": merged, "prompt_id": pid,
                                      "prompt_version": pver, "sample_index": sample_index})
        return self._result(raw, model, url, latency, attempts - 1, False, key, pid, pver, merged)

    def _result(self, raw: dict, model: str, url: str | None, latency: float, retries: int, hit: bool,
                key: str, pid, pver, params: Mapping) -> ChatResult:
        choices = raw.get("choices") or [{}]
        choice = choices[0] or {}
        message = choice.get("message") or {}
        allowed = _tool_names(params.get("tools"))
        calls, text = extract_tool_calls(message, parse_text=self.parse_text_tool_calls and bool(allowed),
                                         allowed_names=allowed)
        usage = raw.get("usage") or {}
        return ChatResult(
            text=text, tool_calls=calls, finish_reason=choice.get("finish_reason"),
            usage={k: int(usage.get(k) or 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")},
            latency_s=latency, retries=retries, cache_hit=hit, raw=raw, model=model,
            endpoint=url, cache_key=key, prompt_id=pid, prompt_version=pver,
        )

    def structured(
        self,
        messages: Sequence[Mapping[str, Any]],
        schema: Mapping[str, Any],
        *,
        name: str = "response",
        max_attempts: int | None = None,
        strict: bool = True,
        **kwargs: Any,
    ) -> ChatResult:
        """A JSON-schema constrained call whose ``.parsed`` is a schema-valid object.

        Invalid output (not JSON, or failing the schema) is retried up to ``max_attempts``
        generations in total, each time showing the model its reply and the validation error.
        If every attempt fails the result has ``parsed=None``, ``error`` set and ``text``/``raw``
        of the last reply. Transport failures still raise :class:`LLMError`.
        """
        from jsonschema import Draft202012Validator

        Draft202012Validator.check_schema(schema)
        validator = Draft202012Validator(schema)
        n = max_attempts if max_attempts is not None else self.structured_retries + 1
        rf = json_schema_response_format(schema, name, strict)
        msgs = [dict(m) for m in messages]
        total = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        latency = 0.0
        retries = 0
        err = None
        res = None
        for i in range(max(1, n)):
            res = self.chat(msgs, response_format=rf, **kwargs)
            for k in total:
                total[k] += res.usage.get(k, 0)
            latency += res.latency_s
            retries += res.retries
            parsed, err = validate_structured(res.text, validator)
            if err is None:
                res.parsed, res.attempts = parsed, i + 1
                break
            self._count(structured_invalid=1)
            msgs = msgs + [
                {"role": "assistant", "content": res.text or ""},
                {"role": "user", "content": f"That reply is invalid ({err}). Reply again with only a JSON "
                                            "object that matches the required schema."},
            ]
        assert res is not None
        res.usage, res.latency_s, res.retries = total, latency, retries
        if err is not None:
            self._count(structured_failed=1)
            res.parsed, res.attempts = None, max(1, n)
            res.error = f"invalid structured output after {max(1, n)} attempt(s): {err}"
        return res


def _rebuild(cls, kwargs):
    return cls(**kwargs)


def _prompt_ref(prompt: Any) -> tuple[str | None, str | None]:
    if prompt is None:
        return None, None
    if isinstance(prompt, (tuple, list)):
        return str(prompt[0]), None if prompt[1] is None else str(prompt[1])
    if isinstance(prompt, Mapping):
        return prompt.get("id"), None if prompt.get("version") is None else str(prompt["version"])
    version = getattr(prompt, "version", None)
    return getattr(prompt, "id", None), None if version is None else str(version)


def _tool_names(tools: Iterable[Mapping] | None) -> list[str]:
    names = []
    for t in tools or []:
        fn = t.get("function") if isinstance(t, Mapping) else None
        if isinstance(fn, Mapping) and fn.get("name"):
            names.append(fn["name"])
    return names


def report_beam_metrics(result: ChatResult, namespace: str = "crucible.llm") -> None:
    """Emit one call's accounting as Beam metrics. Call it from ``DoFn.process`` (the thread
    Beam attributes metrics to), e.g. after collecting results from a thread pool."""
    from apache_beam.metrics import Metrics

    Metrics.counter(namespace, "calls").inc()
    if result.cache_hit:
        Metrics.counter(namespace, "cache_hits").inc()
    else:
        Metrics.counter(namespace, "prompt_tokens").inc(int(result.usage.get("prompt_tokens", 0)))
        Metrics.counter(namespace, "completion_tokens").inc(int(result.usage.get("completion_tokens", 0)))
        Metrics.distribution(namespace, "latency_ms").update(int(result.latency_s * 1000))
    if result.retries:
        Metrics.counter(namespace, "retries").inc(result.retries)
    if result.error:
        Metrics.counter(namespace, "structured_errors").inc()
