"""Any OpenAI-compatible chat-completions server over HTTP (OpenAI, vLLM, llama.cpp's server,
Ollama, LM Studio...), with timeouts, retries with exponential backoff and SSE streaming.

Retried: HTTP 429 and 5xx (500, 502, 503, 504), honouring ``Retry-After``, and failed
connections. Not retried: other 4xx (the request is wrong; the server's message is raised) and
read timeouts (a server that is too slow would only be slow again; the wait stays bounded).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from rag_retrievers.errors import InvalidInputError
from rag_retrievers.generators.base import (
    STRUCTURED_PARAMS,
    GeneratorBase,
    GeneratorConnectionError,
    GeneratorError,
    GeneratorHTTPError,
    GeneratorTimeoutError,
    PromptOrMessages,
    check_params,
    to_messages,
)

if TYPE_CHECKING:
    import httpx

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def normalise_base_url(base_url: str) -> str:
    """``http://host:port`` gains ``/v1``; a URL with a path is kept as given (without a final /).

    >>> normalise_base_url("http://127.0.0.1:8000")
    'http://127.0.0.1:8000/v1'
    >>> normalise_base_url("https://api.example.com/openai/v1/")
    'https://api.example.com/openai/v1'
    """
    if not isinstance(base_url, str):
        raise InvalidInputError(f"base_url must be a str, got {type(base_url).__name__}")
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInputError(f"base_url must be an http(s) URL, got {base_url!r}")
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path or '/v1'}"


def retry_delay(attempt: int, headers: Mapping[str, str], backoff: float, cap: float) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): the server's ``Retry-After`` (seconds
    or an HTTP date) when given, else ``backoff * 2**attempt``; never more than ``cap``.

    >>> retry_delay(2, {}, backoff=0.5, cap=10.0)
    2.0
    >>> retry_delay(0, {"retry-after": "3"}, backoff=0.5, cap=10.0)
    3.0
    """
    value = headers.get("retry-after")
    delay = backoff * 2**attempt
    if value:
        try:
            delay = float(value)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value) if value.strip() else None
            if when is not None:
                delay = when.timestamp() - time.time()
    return min(max(delay, 0.0), cap)


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        error = body.get("error", body) if isinstance(body, dict) else body
        message = error.get("message", error) if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = response.text
    return str(message)[:500]


class OpenAICompatible(GeneratorBase):
    """Chat completions from an OpenAI-compatible server at ``base_url``.

    ``api_key`` defaults to the environment variable named by ``api_key_env`` (none is sent if
    it is unset: local servers need none). ``timeout`` bounds each request's wait for data;
    ``max_retries`` retries of 429/5xx/unreachable, waiting ``backoff * 2**attempt`` seconds (or
    the server's ``Retry-After``), at most ``max_backoff`` each. ``model=None`` sends no model
    name, which single-model servers (llama.cpp) accept.

    >>> gen = OpenAICompatible("http://127.0.0.1:8000", model="smollm2", timeout=30)
    >>> gen.url
    'http://127.0.0.1:8000/v1/chat/completions'
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        temperature: float = 0.0,
        max_tokens: int = 256,
        seed: int | None = 0,
        headers: Mapping[str, str] | None = None,
        schema_format: Literal["json_schema", "json_object"] = "json_schema",
    ) -> None:
        self.base_url = normalise_base_url(base_url)
        self.url = f"{self.base_url}/chat/completions"
        for name, value in (
            ("timeout", timeout),
            ("connect_timeout", connect_timeout),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InvalidInputError(f"{name} must be a number > 0, got {value!r}")
        for name, value in (("backoff", backoff), ("max_backoff", max_backoff)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InvalidInputError(f"{name} must be a number >= 0, got {value!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise InvalidInputError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if model is not None and (not isinstance(model, str) or not model):
            raise InvalidInputError(f"model must be a non-empty str or None, got {model!r}")
        if schema_format not in ("json_schema", "json_object"):
            raise InvalidInputError(
                f"schema_format must be 'json_schema' or 'json_object', got {schema_format!r}"
            )
        self.model, self.schema_format = model, schema_format
        self.defaults: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
        if seed is not None:
            self.defaults["seed"] = seed
        check_params(self.defaults)
        self.timeout, self.connect_timeout = float(timeout), float(connect_timeout)
        self.max_retries, self.backoff, self.max_backoff = max_retries, backoff, max_backoff
        key = api_key if api_key is not None else os.environ.get(api_key_env)
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAICompatible(base_url={self.base_url!r}, model={self.model!r})"

    # -- requests ------------------------------------------------------------------------------

    def _payload(self, prompt_or_messages: PromptOrMessages, params: dict[str, Any]) -> dict:
        messages = to_messages(prompt_or_messages)
        check_params(params, STRUCTURED_PARAMS)
        payload: dict[str, Any] = {"messages": messages, **self.defaults, **params}
        schema = payload.pop("json_schema", None)
        if schema is not None:
            payload["response_format"] = self._response_format(dict(schema))
        if self.model is not None:
            payload["model"] = self.model
        return payload

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        """``json_schema``: OpenAI's structured outputs, which vLLM, Ollama and llama.cpp's
        llama-server also take; ``json_object``: the older form with the schema inline, which
        llama-cpp-python's server takes."""
        if self.schema_format == "json_object":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}

    def _timeouts(self) -> httpx.Timeout:
        import httpx

        return httpx.Timeout(self.timeout, connect=self.connect_timeout)

    def _client_(self) -> httpx.Client:
        import httpx

        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self._timeouts(), headers=self._headers)
            return self._client

    def close(self) -> None:
        """Close the HTTP connection pool (a later call opens a new one)."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _check(self, response: httpx.Response, attempt: int) -> float | None:
        """``None`` if the response is usable, else the delay before retrying; raises when the
        error is final."""
        if response.status_code < 400:
            return None
        if response.status_code in RETRY_STATUS and attempt < self.max_retries:
            return retry_delay(attempt, response.headers, self.backoff, self.max_backoff)
        raise GeneratorHTTPError(
            response.status_code,
            f"{self.url} answered HTTP {response.status_code}"
            + (f" after {attempt + 1} attempts" if attempt else "")
            + f": {_error_message(response)}",
        )

    def _failed(self, exc: Exception, attempt: int) -> float:
        """The delay before retrying after a transport error, or raise the final error."""
        import httpx

        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            raise GeneratorTimeoutError(
                f"{self.url} sent no data for {self.timeout}s (timeout={self.timeout})"
            ) from exc
        if attempt < self.max_retries:
            return retry_delay(attempt, {}, self.backoff, self.max_backoff)
        raise GeneratorConnectionError(
            f"cannot reach {self.url} after {attempt + 1} attempts: {exc}"
        ) from exc

    def _send(self, payload: dict[str, Any], *, stream: bool) -> httpx.Response:
        import httpx

        client = self._client_()
        attempt = 0
        while True:
            try:
                request = client.build_request("POST", self.url, json=payload)
                response = client.send(request, stream=stream)
            except httpx.TransportError as exc:
                delay = self._failed(exc, attempt)
            else:
                if stream and response.status_code >= 400:
                    response.read()
                try:
                    delay_or_ok = self._check(response, attempt)
                except GeneratorHTTPError:
                    response.close()
                    raise
                if delay_or_ok is None:
                    return response
                response.close()
                delay = delay_or_ok
            time.sleep(delay)
            attempt += 1

    def generate(self, prompt_or_messages: PromptOrMessages, **params: Any) -> str:
        import httpx

        payload = self._payload(prompt_or_messages, params)
        try:
            response = self._send(payload, stream=False)
        except httpx.HTTPError as exc:  # pragma: no cover - transport errors are mapped above
            raise GeneratorError(str(exc)) from exc
        return self._content(response.json())

    def stream(self, prompt_or_messages: PromptOrMessages, **params: Any) -> Iterator[str]:
        payload = {**self._payload(prompt_or_messages, params), "stream": True}
        return self._stream(payload)

    def _stream(self, payload: dict[str, Any]) -> Iterator[str]:
        import httpx

        response = self._send(payload, stream=True)
        try:
            for line in response.iter_lines():
                piece = self._sse_piece(line)
                if piece is _DONE:
                    return
                if piece:
                    yield piece  # type: ignore[misc]
        except httpx.TimeoutException as exc:
            raise GeneratorTimeoutError(
                f"{self.url} stopped sending for {self.timeout}s mid-stream"
            ) from exc
        except httpx.TransportError as exc:
            raise GeneratorConnectionError(f"{self.url} dropped the stream: {exc}") from exc
        finally:
            response.close()

    async def agenerate(self, prompt_or_messages: PromptOrMessages, **params: Any) -> str:
        import httpx

        payload = self._payload(prompt_or_messages, params)
        async with httpx.AsyncClient(timeout=self._timeouts(), headers=self._headers) as client:
            attempt = 0
            while True:
                try:
                    response = await client.post(self.url, json=payload)
                except httpx.TransportError as exc:
                    delay = self._failed(exc, attempt)
                else:
                    checked = self._check(response, attempt)
                    if checked is None:
                        return self._content(response.json())
                    delay = checked
                await asyncio.sleep(delay)
                attempt += 1

    # -- responses -----------------------------------------------------------------------------

    def _content(self, body: Any) -> str:
        try:
            content = body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise GeneratorError(
                f"{self.url} sent no choices[0].message.content: {str(body)[:300]}"
            ) from None
        return content or ""

    def _sse_piece(self, line: str) -> object:
        if not line.startswith("data:"):
            return None  # SSE comments, event names, blank separators
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            return _DONE
        try:
            event = json.loads(data)
        except ValueError:
            raise GeneratorError(
                f"{self.url} sent a malformed stream event: {data[:200]}"
            ) from None
        if isinstance(event, dict) and "error" in event:
            raise GeneratorError(f"{self.url} stream error: {event['error']}")
        try:
            return event["choices"][0]["delta"].get("content") if event["choices"] else None
        except (KeyError, IndexError, TypeError, AttributeError):
            raise GeneratorError(
                f"{self.url} sent an unexpected stream event: {data[:200]}"
            ) from None


_DONE = object()
