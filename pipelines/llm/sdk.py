"""What the client needs to know about the ``openai`` SDK: which parameters it takes directly, the pool's
health probe, and a once-per-process warm-up of its request path."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

import httpx2
import openai

# keyword arguments the SDK's chat.completions.create accepts directly; anything else goes in extra_body
_SDK_PARAMS = frozenset({
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "n", "stop", "seed", "presence_penalty",
    "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "tools", "tool_choice", "response_format",
    "parallel_tool_calls", "user", "stream_options", "reasoning_effort", "metadata", "store",
})

def sdk_kwargs(params: Mapping[str, Any]) -> dict:
    """``chat.completions.create`` keyword arguments: SDK parameters as they are, the rest in ``extra_body``."""
    sdk = {k: v for k, v in params.items() if k in _SDK_PARAMS}
    extra = {k: v for k, v in params.items() if k not in _SDK_PARAMS}
    if extra:
        sdk["extra_body"] = extra
    return sdk


_warm_lock = threading.Lock()
_warm_done: list[bool] = []


def warm_sdk() -> None:
    """Once per process, send one request through the SDK to an in-memory transport, on the constructing
    thread: the SDK's first request imports modules and builds its pydantic validators (0.1-0.3 s), which
    on the shared event loop would stall every request in flight (and bunch paced ones)."""
    with _warm_lock:
        if _warm_done:
            return
        reply = {"id": "w", "object": "chat.completion", "created": 0, "model": "w",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}]}

        async def once() -> None:
            transport = httpx2.MockTransport(lambda request: httpx2.Response(200, json=reply))
            async with openai.AsyncOpenAI(base_url="http://warm-up.invalid/v1", api_key="x", max_retries=0,
                                          http_client=httpx2.AsyncClient(transport=transport)) as c:
                resp = await c.chat.completions.create(model="w", messages=[{"role": "user", "content": ""}])
                resp.model_dump(mode="json", exclude_unset=True)

        # a thread of its own: the constructor may itself run inside an event loop
        th = threading.Thread(target=lambda: asyncio.run(once()), name="crucible-llm-warm-up")
        th.start()
        th.join()
        _warm_done.append(True)


async def probe_models(ep) -> bool:
    """The pool's health probe: ``GET <base_url>/models`` answers (vLLM, llama.cpp, hosted APIs all serve it)."""
    await ep.client.models.list()
    return True


