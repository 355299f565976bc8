"""Any OpenAI-compatible chat-completions server over HTTP (OpenAI, vLLM, llama.cpp's server,
Ollama, LM Studio...), with timeouts, retries with exponential backoff and SSE streaming.

Retried: HTTP 429 and 5xx (500, 502, 503, 504), honouring ``Retry-After``, and failed
connections. Not retried: other 4xx (the request is wrong; the server's message is raised) and
read timeouts (a server that is too slow would only be slow again; the wait stays bounded).
A reply that is not JSON, JSON of the wrong shape or a malformed stream event raises
:class:`~rag_retrievers.generators.base.GeneratorResponseError`, quoting the start of the reply.

Secrets stay out of what is printed: credentials in the URL (``http://user:KEY@host``) are sent
as HTTP Basic auth and shown as ``***`` in the repr and in errors, and every error message is
passed through :func:`~rag_retrievers.generators.redact.redact_text` with the API key, so a
server that echoes the ``Authorization`` header does not leak it.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from rag_retrievers.errors import InvalidInputError
from rag_retrievers.generators.base import (
    STRUCTURED_PARAMS,
    GeneratorBase,
    GeneratorConnectionError,
    GeneratorError,
    GeneratorHTTPError,
    GeneratorResponseError,
    GeneratorTimeoutError,
    PromptOrMessages,
    check_params,
    to_messages,
)
from rag_retrievers.generators.redact import redact_text, redact_url

if TYPE_CHECKING:
    import httpx

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
#: characters of a reply quoted in an error message
SNIPPET_CHARS = 200
#: request headers whose values are credentials (their values are masked in every message)
SECRET_HEADERS = re.compile(r"authorization|api[-_]?key|token|secret|cookie", re.IGNORECASE)


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
        raise InvalidInputError(f"base_url must be an http(s) URL, got {redact_url(base_url)!r}")
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


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its user-info, and the ``(user, password)`` it held (percent-decoded).

    >>> split_credentials("http://me:s%40cret@127.0.0.1:8000/v1")
    ('http://127.0.0.1:8000/v1', ('me', 's@cret'))
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), (unquote(user), unquote(password))


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The start of a reply for an error message: one line, at most ``limit`` characters.

    >>> snippet("<html>\\n  <body>Bad gateway</body>\\n</html>", limit=24)
    "'<html> <body>Bad gateway...'"
    """
    flat = " ".join(str(text).split())
    return repr(flat[:limit] + "..." if len(flat) > limit else flat)


def _server_message(error: Any) -> str:
    """The text of an ``{"error": ...}`` object (``error.message`` when there is one)."""
    message = error.get("message", error) if isinstance(error, dict) else error
    return " ".join(str(message).split())[:500]


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return snippet(response.text, 500)
    return _server_message(body.get("error", body) if isinstance(body, dict) else body)


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
        given = normalise_base_url(base_url)
        self.base_url, self._auth = split_credentials(given)
        self.url = f"{self.base_url}/chat/completions"
        # what reprs and messages show: the URL with any credentials as ***
        self._shown_base = redact_url(given)
        self._shown_url = f"{self._shown_base}/chat/completions"
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
        # masked in every message: the key, the URL's password (or its user when that is all
        # it has, as in http://KEY@host) and the values of credential headers
        secrets: list[str | None] = [key]
        if self._auth is not None:
            secrets.append(self._auth[1] or self._auth[0])
        for header, sent in self._headers.items():
            if SECRET_HEADERS.search(header) and isinstance(sent, str):
                secrets += [sent, sent.partition(" ")[2]]
        self._secrets: tuple[str, ...] = tuple(s for s in secrets if s)
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAICompatible(base_url={self._shown_base!r}, model={self.model!r})"

    def redact(self, text: str) -> str:
        """``text`` with this client's API key and credentials masked (see :mod:`.redact`)."""
        return redact_text(text, self._secrets)

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
                self._client = httpx.Client(
                    timeout=self._timeouts(), headers=self._headers, auth=self._auth
                )
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
            self.redact(
                f"{self._shown_url} answered HTTP {response.status_code}"
                + (f" after {attempt + 1} attempts" if attempt else "")
                + f": {_error_message(response)}"
            ),
        )

    def _failed(self, exc: Exception, attempt: int) -> float:
        """The delay before retrying after a transport error, or raise the final error."""
        import httpx

        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            raise GeneratorTimeoutError(
                f"{self._shown_url} sent no data for {self.timeout}s (timeout={self.timeout})"
            ) from exc
        if attempt < self.max_retries:
            return retry_delay(attempt, {}, self.backoff, self.max_backoff)
        raise GeneratorConnectionError(
            self.redact(f"cannot reach {self._shown_url} after {attempt + 1} attempts: {exc}")
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
            raise GeneratorError(self.redact(str(exc))) from exc
        return self._content(self._json(response))

    def stream(self, prompt_or_messages: PromptOrMessages, **params: Any) -> Iterator[str]:
        payload = {**self._payload(prompt_or_messages, params), "stream": True}
        return self._stream(payload)

    def _stream(self, payload: dict[str, Any]) -> Iterator[str]:
        import httpx

        response = self._send(payload, stream=True)
        events, other = 0, list[str]()  # data: lines read; the start of the rest, for an error
        try:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    if sum(map(len, other)) < SNIPPET_CHARS:
                        other.append(line)
                    continue  # SSE comments, event names, blank separators
                events += 1
                piece = self._sse_piece(line)
                if piece is _DONE:
                    return
                if piece:
                    yield piece  # type: ignore[misc]
        except httpx.TimeoutException as exc:
            raise GeneratorTimeoutError(
                f"{self._shown_url} stopped sending for {self.timeout}s mid-stream"
            ) from exc
        except httpx.TransportError as exc:
            raise GeneratorConnectionError(
                self.redact(f"{self._shown_url} dropped the stream: {exc}")
            ) from exc
        finally:
            response.close()
        if not events:  # an HTML page, or a server that ignored "stream": true
            kind = response.headers.get("content-type", "no content-type")
            raise GeneratorResponseError(
                self.redact(
                    f"{self._shown_url} answered a streaming request with no server-sent events "
                    f"({kind}): {snippet(' '.join(other))}"
                )
            )

    async def agenerate(self, prompt_or_messages: PromptOrMessages, **params: Any) -> str:
        import httpx

        payload = self._payload(prompt_or_messages, params)
        async with httpx.AsyncClient(
            timeout=self._timeouts(), headers=self._headers, auth=self._auth
        ) as client:
            attempt = 0
            while True:
                try:
                    response = await client.post(self.url, json=payload)
                except httpx.TransportError as exc:
                    delay = self._failed(exc, attempt)
                else:
                    checked = self._check(response, attempt)
                    if checked is None:
                        return self._content(self._json(response))
                    delay = checked
                await asyncio.sleep(delay)
                attempt += 1

    # -- responses -----------------------------------------------------------------------------

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:  # JSONDecodeError, or bytes that are not text
            kind = response.headers.get("content-type", "no content-type")
            raise GeneratorResponseError(
                self.redact(
                    f"{self._shown_url} answered HTTP {response.status_code} with a reply that is "
                    f"not JSON ({kind}): {snippet(response.text)}"
                )
            ) from None

    def _wrong(self, what: str, problem: str, body: Any) -> GeneratorResponseError:
        text = json.dumps(body, ensure_ascii=False) if not isinstance(body, str) else body
        return GeneratorResponseError(
            self.redact(
                f"{self._shown_url} sent {what} of the wrong shape ({problem}): {snippet(text)}"
            )
        )

    def _content(self, body: Any) -> str:
        """``choices[0].message.content`` of a completion, checked at every step."""
        what = "a JSON reply"
        if isinstance(body, dict) and "error" in body and "choices" not in body:
            raise GeneratorError(
                self.redact(
                    f"{self._shown_url} answered with an error: {_server_message(body['error'])}"
                )
            )
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(body, dict):
            raise self._wrong(what, f"a JSON {type(body).__name__}, not an object", body)
        if choices is None or choices == []:
            raise self._wrong(what, "no choices", body)
        if not isinstance(choices, list):
            raise self._wrong(what, "choices is not a list", body)
        message = choices[0].get("message") if isinstance(choices[0], dict) else None
        if not isinstance(message, dict):
            raise self._wrong(what, "choices[0].message is not an object", body)
        content = message.get("content")
        if content is None:  # no text (e.g. only a refusal or tool calls): an empty answer
            return ""
        if not isinstance(content, str):
            raise self._wrong(
                what,
                f"choices[0].message.content is a {type(content).__name__}, not a string",
                body,
            )
        return content

    def _sse_piece(self, line: str) -> object:
        """The text of one ``data:`` line of a stream, ``None`` if it has none, or ``_DONE``."""
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            return _DONE
        what = "a stream event"
        try:
            event = json.loads(data)
        except ValueError:
            raise GeneratorResponseError(
                self.redact(
                    f"{self._shown_url} sent a stream event that is not JSON: {snippet(data)}"
                )
            ) from None
        if not isinstance(event, dict):
            raise self._wrong(what, f"a JSON {type(event).__name__}, not an object", event)
        if "error" in event:
            raise GeneratorError(
                self.redact(f"{self._shown_url} stream error: {_server_message(event['error'])}")
            )
        choices = event.get("choices")
        if choices == []:
            return None  # e.g. the usage-only event at the end
        if not isinstance(choices, list):
            raise self._wrong(what, "no choices list", event)
        delta = choices[0].get("delta") if isinstance(choices[0], dict) else None
        if not isinstance(delta, dict):
            raise self._wrong(what, "choices[0].delta is not an object", event)
        content = delta.get("content")
        if content is not None and not isinstance(content, str):
            raise self._wrong(
                what,
                f"choices[0].delta.content is a {type(content).__name__}, not a string",
                event,
            )
        return content


_DONE = object()
