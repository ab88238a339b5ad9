"""The one LLM client: OpenAI-compatible chat completions against a pool of base URLs.

It owns everything about *calling* a model, so callers never do:

- the model pool (:mod:`crucible.pipelines.llm.pool`): least outstanding requests for a trajectory's first turn,
  the same endpoint for its later turns (``session=``), ``max_concurrency`` slots per endpoint, health
  checks, failing endpoints taken out and their requests retried elsewhere;
- async requests on the process's one event loop (:mod:`crucible.pipelines.llm.aio`): ``achat``/``astructured``
  for coroutines (hundreds in flight, no thread each), ``chat``/``structured`` as a blocking facade;
- an optional requests/tokens-per-minute pacer (:mod:`crucible.pipelines.llm.pacing`);
- retries through the one policy (:mod:`crucible.pipelines.http_retry`) on connection errors, timeouts,
  408/409/429/5xx with jittered backoff honouring ``Retry-After``; none when failing over;
- a content-addressed response cache (:mod:`crucible.pipelines.llm.cache`);
- structured output: json_schema + validation + a bounded corrective retry; on final failure the
  result has ``parsed=None``, ``error`` and the raw text;
- tool-call normalization (:mod:`crucible.pipelines.llm.toolcalls`);
- accounting: per call (:class:`ChatResult`), aggregated and per endpoint (:meth:`LLMClient.stats`),
  Beam metrics and the stats file ``crucible stats`` reads (:mod:`crucible.pipelines.llm.metrics`).

A transport failure that survives all retries raises :class:`LLMError`; invalid structured output is a
*result* with ``error`` set, never an exception. The client is thread-safe and picklable (it pickles as
its constructor arguments); ``LLMClient.from_config(cfg.llm.to_dict())`` is all a ``DoFn.setup`` needs.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import openai
from jsonschema import Draft202012Validator

from crucible.pipelines.http_retry import RetryPolicy, retry_after_seconds
from crucible.pipelines.llm import aio, settings
from crucible.pipelines.llm.cache import ResponseCache, cache_key, run_cache_dir
from crucible.pipelines.llm.metrics import CallLog, flush_pool_stats, report_beam_metrics
from crucible.pipelines.llm.pacing import RatePacer
from crucible.pipelines.llm.pool import EndpointDown, EndpointPool, PoolSettings
from crucible.pipelines.llm.results import (
    ChatResult,
    LLMError,
    estimate_tokens,
    is_transient,
    json_schema_response_format,
    parse_json_text,
    prompt_ref,
    tool_names,
    validate_structured,
)
from crucible.pipelines.llm.sdk import post_chat, probe_models, warm_sdk
from crucible.pipelines.llm.toolcalls import extract_tool_calls
from crucible.pipelines.store import fsio

__all__ = ["ChatResult", "LLMClient", "LLMError", "RatePacer", "is_transient", "json_schema_response_format",
           "parse_json_text", "report_beam_metrics", "validate_structured"]

_COUNTERS = ("calls", "requests", "cache_hits", "retries", "failures", "prompt_tokens", "completion_tokens",
             "structured_invalid", "structured_failed")
# constructor keywords that fall back to the llm section's schema default when not given
_TUNABLES = ("max_concurrency", "timeout_s", "max_retries", "backoff_initial_s", "backoff_max_s",
             "retry_after_max_s", "structured_retries", "parse_text_tool_calls")


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, EndpointDown) or is_transient(exc)


class LLMClient:
    def __init__(self, base_urls: Sequence[str] | str, model: str, *, api_key: str | None = None,
                 requests_per_minute: float | None = None, tokens_per_minute: float | None = None,
                 default_params: Mapping[str, Any] | None = None, cache_dir: str | os.PathLike | None = None,
                 cache: bool = True, pool: Mapping[str, Any] | None = None, stats_dir: str | None = None,
                 **tunables: Any):
        """``tunables``: any of ``max_concurrency`` (slots per endpoint), ``timeout_s``, ``max_retries``,
        ``backoff_initial_s``, ``backoff_max_s``, ``retry_after_max_s``, ``structured_retries``,
        ``parse_text_tool_calls``; ``pool``: the ``llm.pool`` keys. Missing ones take the schema defaults."""
        unknown = set(tunables) - set(_TUNABLES)
        if unknown:
            raise TypeError(f"LLMClient got unexpected keyword arguments {sorted(unknown)}")
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise ValueError("llm.base_urls is empty: give at least one OpenAI-compatible base URL "
                             "(or start one with `with llm_endpoint(cfg.llm) as urls:`)")
        given = {k: v for k, v in tunables.items() if v is not None}
        opt = settings.resolve({**given, "pool": dict(pool or {})})
        if opt["max_concurrency"] < 1:
            raise ValueError("llm.max_concurrency must be >= 1")
        self._init_kwargs = dict(
            base_urls=urls, model=model, api_key=api_key, requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute, default_params=dict(default_params or {}),
            cache_dir=None if cache_dir is None else str(cache_dir), cache=cache, pool=dict(pool or {}),
            stats_dir=stats_dir, **given)
        self.model = model
        self.max_retries = int(opt["max_retries"])
        self.retry_policy = RetryPolicy(self.max_retries, float(opt["backoff_initial_s"]),
                                        float(opt["backoff_max_s"]), float(opt["retry_after_max_s"]))
        self.structured_retries = int(opt["structured_retries"])
        self.parse_text_tool_calls = bool(opt["parse_text_tool_calls"])
        self.default_params = {k: v for k, v in (default_params or {}).items() if v is not None}
        key = api_key or "EMPTY"  # local servers ignore it; the SDK insists on one
        timeout = float(opt["timeout_s"])
        p = opt["pool"]
        self.pool_settings = PoolSettings(
            max_concurrency=int(opt["max_concurrency"]), sticky=bool(p["sticky"]), failover=bool(p["failover"]),
            down_after_failures=int(p["down_after_failures"]), health_interval_s=float(p["health_interval_s"]),
            probe_interval_s=float(p["probe_interval_s"]), probe_timeout_s=float(p["probe_timeout_s"]),
            sticky_sessions_max=int(p["sticky_sessions_max"]))
        self._pool = EndpointPool(
            [(u.rstrip("/"), openai.AsyncOpenAI(base_url=u.rstrip("/"), api_key=key, timeout=timeout, max_retries=0))
             for u in urls], self.pool_settings, probe=probe_models)
        warm_sdk()
        self._lock = threading.Lock()
        self._rpm = RatePacer(requests_per_minute) if requests_per_minute else None
        self._tpm = RatePacer(tokens_per_minute) if tokens_per_minute else None
        self.cache = ResponseCache(cache_dir, enabled=cache) if (cache and cache_dir is not None) else None
        self.stats_dir = stats_dir
        self._stats: dict[str, float] = dict.fromkeys(_COUNTERS, 0)
        self._stats["latency_s"] = 0.0
        self._closed = False
        self.calls = CallLog()  # drained by the DoFn that reports them (crucible.pipelines.llm.metrics.report_calls)

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], *, base_urls: Sequence[str] | None = None,
                    cache_dir: str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None) -> LLMClient:
        """Build from the ``llm`` config section (a plain dict or Config; missing keys take the schema's
        defaults). ``base_urls`` overrides ``cfg["base_urls"]`` (pass what :func:`llm_endpoint` yielded).
        The cache goes to ``cache_dir`` > ``cfg["cache_dir"]`` > ``<out_dir>/cache/llm`` (``data/cache/llm``
        without ``out_dir``); the pool's stats file to ``cfg["pool"]["stats_dir"]`` > ``<out_dir>/stats/llm_pool``
        (none without either)."""
        c = settings.resolve(cfg)
        urls = list(base_urls if base_urls is not None else c["base_urls"])
        api_key = None
        if c["api_key_env"]:
            api_key = os.environ.get(c["api_key_env"])
            if not api_key:
                raise ValueError(f"llm.api_key_env: environment variable {c['api_key_env']} is not set; export it "
                                 "or set llm.api_key_env to null for servers without auth")
        params = {k: c[k] for k in ("temperature", "max_tokens", "seed", "top_p") if c[k] is not None}
        pool = dict(c["pool"])
        stats_dir = pool.pop("stats_dir") or (fsio.join(str(out_dir), "stats", "llm_pool") if out_dir else None)
        return cls(urls, c["model"], api_key=api_key, requests_per_minute=c["requests_per_minute"],
                   tokens_per_minute=c["tokens_per_minute"], default_params=params,
                   cache_dir=cache_dir or c["cache_dir"] or run_cache_dir(out_dir, "llm"),
                   cache=bool(c["cache"]),
                   pool=pool, stats_dir=stats_dir, **{k: c[k] for k in _TUNABLES})

    def __reduce__(self):
        return (_rebuild, (self.__class__, self._init_kwargs))

    async def aclose(self) -> None:
        await self._pool.aclose()
        for ep in self._pool.endpoints:
            await ep.client.close()

    def close(self) -> None:
        """Stop health checks, close connections and write the pool's stats file (once)."""
        if self._closed:
            return
        self._closed = True
        flush_pool_stats(self)  # the file bundles rewrote, once more
        if aio.in_loop_thread():
            aio.loop().create_task(self.aclose())
        else:
            aio.run_sync(self.aclose())

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def base_urls(self) -> list[str]:
        return [ep.url for ep in self._pool.endpoints]

    # -- accounting ------------------------------------------------------------------------------
    def _count(self, **deltas: float) -> None:
        with self._lock:
            for k, v in deltas.items():
                self._stats[k] = self._stats.get(k, 0) + v

    def stats(self) -> dict:
        """Aggregate counters, requests per endpoint (``per_endpoint``), and the pool's view: per endpoint
        in flight, queued, done, failed, queue wait, busy share (``endpoints``) and routing counts."""
        with self._lock:
            out = dict(self._stats)
        for k in _COUNTERS:
            out[k] = int(out[k])
        pool = self._pool.stats()
        out["per_endpoint"] = {u: e["requests"] for u, e in pool["endpoints"].items()}
        out.update(pool)
        return out

    # -- calls -----------------------------------------------------------------------------------
    def _retry_hint(self, exc: BaseException) -> float | None:
        return retry_after_seconds(dict(exc.response.headers)) if isinstance(exc, openai.APIStatusError) else None

    async def _attempt(self, model: str, messages: list, params: dict, session: str | None,
                       avoid: str | None) -> tuple[dict, str, float]:
        if self._rpm:
            await _pace(self._rpm, 1)
        est = 0
        if self._tpm:
            est = estimate_tokens(messages, params.get("max_tokens"))
            await _pace(self._tpm, est)
        self._count(requests=1)
        raw, ep, wait = await self._pool.send(session, avoid, lambda ep: post_chat(ep.client, model, messages, params))
        if self._tpm:
            used = (raw.get("usage") or {}).get("total_tokens")
            if used is not None:
                self._tpm.adjust(float(used) - est)
        return raw, ep.url, wait

    async def _request(self, model: str, msgs: list, merged: dict, session: str | None):
        """All attempts of one request: ``(raw, endpoint url, attempts, queue wait)`` or :class:`LLMError`."""
        attempts, waited, avoid = 0, 0.0, None
        try:
            async for attempt in self.retry_policy.aretrying(_retryable, hint_of=self._retry_hint,
                                                             on_wait=self._pool.failover_wait):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    if attempts > 1:
                        self._count(retries=1)
                    try:
                        raw, url, wait = await self._attempt(model, msgs, merged, session, avoid)
                    except BaseException as exc:
                        avoid = getattr(exc, "endpoint_url", None)
                        raise
                    waited += wait
        except (openai.APIError, EndpointDown) as exc:
            self._count(failures=1)
            status = getattr(exc, "status_code", None)
            kind = "transient, retries exhausted" if _retryable(exc) else "not retryable"
            raise LLMError(f"LLM call failed after {attempts} attempt(s) ({kind}): {type(exc).__name__}: {exc}",
                           attempts=attempts, status=status, endpoint=getattr(exc, "endpoint_url", None)) from exc
        return raw, url, attempts, waited

    async def achat(self, messages: Sequence[Mapping[str, Any]], *, prompt: Any = None, sample_index: int = 0,
                    use_cache: bool = True, model: str | None = None, session: str | None = None,
                    **params: Any) -> ChatResult:
        """One chat completion, as a coroutine (see :meth:`chat`). Awaited on another event loop, it runs on
        the process's LLM loop all the same (the pool's connections and slots live there)."""
        if asyncio.get_running_loop() is not aio.loop():
            return await asyncio.wrap_future(aio.submit(self.achat(
                messages, prompt=prompt, sample_index=sample_index, use_cache=use_cache, model=model,
                session=session, **params)))
        model = model or self.model
        prompt_params = getattr(prompt, "params", None) or {}
        merged = {**self.default_params, **prompt_params, **params}
        merged = {k: v for k, v in merged.items() if v is not None}
        if sample_index and isinstance(merged.get("seed"), int):
            merged["seed"] += int(sample_index)  # distinct samples need distinct seeds
        msgs = [dict(m) for m in messages]
        pid, pver = prompt_ref(prompt)
        key = cache_key(model, msgs, merged, pid, pver, sample_index)
        self._count(calls=1)
        if use_cache and self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                self._count(cache_hits=1)
                return self.calls.add(self._result(cached, model, None, 0.0, 0, True, key, pid, pver, merged))
        t0 = time.perf_counter()
        raw, url, attempts, waited = await self._request(model, msgs, merged, session)
        latency = time.perf_counter() - t0
        usage = raw.get("usage") or {}
        self._count(prompt_tokens=usage.get("prompt_tokens") or 0,
                    completion_tokens=usage.get("completion_tokens") or 0, latency_s=latency)
        if use_cache and self.cache is not None:
            self.cache.put(key, raw, {"model": model, "messages": msgs, "params": merged, "prompt_id": pid,
                                      "prompt_version": pver, "sample_index": sample_index})
        res = self._result(raw, model, url, latency, attempts - 1, False, key, pid, pver, merged)
        res.queue_wait_s = waited
        return self.calls.add(res)

    def chat(self, messages: Sequence[Mapping[str, Any]], **kwargs: Any) -> ChatResult:
        """One chat completion (blocking; the request itself runs on the process's event loop).

        ``prompt`` is a loaded Prompt (or ``(id, version)``) for the cache key and accounting;
        ``sample_index`` distinguishes repeated samples of the same request (it is in the cache key and
        is added to a configured ``seed``); ``session`` names the trajectory (its turns go to one
        endpoint; not in the cache key, not sent). Other keyword arguments are sampling/tool params
        (``temperature``, ``tools``, ``response_format``…). Precedence: config defaults < the prompt's
        ``params`` < keyword arguments; ``None`` values are dropped, so ``seed=None`` removes the seed.
        """
        return aio.run_sync(self.achat(messages, **kwargs))

    def _result(self, raw: dict, model: str, url: str | None, latency: float, retries: int, hit: bool,
                key: str, pid, pver, params: Mapping) -> ChatResult:
        choices = raw.get("choices") or [{}]
        choice = choices[0] or {}
        message = choice.get("message") or {}
        allowed = tool_names(params.get("tools"))
        calls, text = extract_tool_calls(message, parse_text=self.parse_text_tool_calls and bool(allowed),
                                         allowed_names=allowed)
        usage = raw.get("usage") or {}
        return ChatResult(
            text=text, tool_calls=calls, finish_reason=choice.get("finish_reason"),
            usage={k: int(usage.get(k) or 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")},
            latency_s=latency, retries=retries, cache_hit=hit, raw=raw, model=model,
            endpoint=url, cache_key=key, prompt_id=pid, prompt_version=pver,
        )

    async def astructured(self, messages: Sequence[Mapping[str, Any]], schema: Mapping[str, Any], *,
                          name: str = "response", max_attempts: int | None = None, strict: bool = True,
                          **kwargs: Any) -> ChatResult:
        """A JSON-schema constrained call whose ``.parsed`` is a schema-valid object (see :meth:`structured`)."""

        Draft202012Validator.check_schema(schema)
        validator = Draft202012Validator(schema)
        n = max(1, max_attempts if max_attempts is not None else self.structured_retries + 1)
        rf = json_schema_response_format(schema, name, strict)
        msgs = [dict(m) for m in messages]
        total = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        latency = waited = 0.0
        retries = 0
        err = res = None
        for i in range(n):
            res = await self.achat(msgs, response_format=rf, **kwargs)
            for k in total:
                total[k] += res.usage.get(k, 0)
            latency, retries, waited = latency + res.latency_s, retries + res.retries, waited + res.queue_wait_s
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
        res.usage, res.latency_s, res.retries, res.queue_wait_s = total, latency, retries, waited
        if err is not None:
            self._count(structured_failed=1)
            res.parsed, res.attempts = None, n
            res.error = f"invalid structured output after {n} attempt(s): {err}"
        return res

    def structured(self, messages: Sequence[Mapping[str, Any]], schema: Mapping[str, Any], **kwargs: Any) -> ChatResult:
        """A JSON-schema constrained call whose ``.parsed`` is a schema-valid object (blocking).

        Invalid output (not JSON, or failing the schema) is retried up to ``max_attempts`` generations in
        total, each time showing the model its reply and the validation error. If every attempt fails the
        result has ``parsed=None``, ``error`` set and ``text``/``raw`` of the last reply. Transport
        failures still raise :class:`LLMError`.
        """
        return aio.run_sync(self.astructured(messages, schema, **kwargs))


async def _pace(pacer: RatePacer, amount: float) -> None:
    wait = pacer.reserve(amount)
    if wait > 0:
        await asyncio.sleep(wait)


def _rebuild(cls, kwargs):
    return cls(**kwargs)
