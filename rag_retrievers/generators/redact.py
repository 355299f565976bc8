"""Keep secrets out of everything printed: credentials in URLs, API keys, ``Bearer`` tokens and
``Authorization`` headers that a server echoes back. Two pure functions, used by the generators'
reprs and error messages and by the ``ask`` command's output.

>>> redact_url("https://user:s3cret@api.example.com/v1?api_key=abc&lang=en")
'https://***@api.example.com/v1?api_key=***&lang=en'
>>> redact_text("401 for header Authorization: Bearer sk-abc123", secrets=["sk-abc123"])
'401 for header Authorization: ***'
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

MASK = "***"

#: query parameters whose value is a credential (matched anywhere in the name, any case)
SECRET_PARAM = re.compile(
    r"key|token|secret|passw|pwd|auth|signature|sig$|credential|session", re.IGNORECASE
)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>()\[\]{}]+")
#: a header or field that carries a credential, followed by ``:`` or ``=`` and its value
_HEADER = re.compile(
    r"""(?<![\w-])((?:proxy-)?authorization|x-api-key|api[-_]?key|apikey|x-auth-token|"""
    r"""(?:access|refresh|auth|id)[-_]?token|token|client[-_]?secret|secret|password|passwd|"""
    r"""(?:set-)?cookie)(?![\w-])(["']?\s*[:=]\s*["']?)([^"'\r\n,;&}\]]+)""",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(Bearer)\s+([^\s\"',;}\]]{8,})", re.IGNORECASE)
_BASIC = re.compile(r"\b(Basic)\s+([A-Za-z0-9+/]{4,}={0,2})", re.IGNORECASE)
#: well-known API key shapes (OpenAI/Anthropic ``sk-...``, Hugging Face ``hf_...``)
_KEY_SHAPES = re.compile(r"\b(?:sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{20,})")


def _redact_query(query: str) -> str:
    parts = []
    for item in query.split("&"):
        name, eq, value = item.partition("=")
        secret = eq and value and SECRET_PARAM.search(unquote(name))
        parts.append(f"{name}={MASK}" if secret else item)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """``url`` with its user-info (``user:password@``) and the values of query or fragment
    parameters named like credentials (``api_key``, ``token``, ``secret``...) replaced by ``***``.

    >>> redact_url("http://KEY@127.0.0.1:8000/v1")
    'http://***@127.0.0.1:8000/v1'
    >>> redact_url("http://127.0.0.1:8000/v1")
    'http://127.0.0.1:8000/v1'
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced IPv6 bracket: mask what looks like user-info
        return re.sub(r"(://)[^/?#@]*@", rf"\g<1>{MASK}@", url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = _redact_query(parts.query) if parts.query else ""
    fragment = _redact_query(parts.fragment) if "=" in parts.fragment else parts.fragment
    return urlunsplit(parts._replace(netloc=netloc, query=query, fragment=fragment))


def _bearer(match: re.Match[str]) -> str:
    # a token has a digit or is long, so "a bearer token is needed" stays as written
    token = match.group(2)
    secret = len(token) >= 24 or any(c.isdigit() for c in token)
    return f"{match.group(1)} {MASK}" if secret else match.group(0)


def _basic(match: re.Match[str]) -> str:
    # "Basic <base64 of user:password>": only what decodes to a user:password pair is masked,
    # so "Basic information" stays as written
    try:
        decoded = base64.b64decode(match.group(2), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return match.group(0)
    return f"{match.group(1)} {MASK}" if ":" in decoded else match.group(0)


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every known secret (an API key...) masked, also URL-encoded, and, whatever
    the secrets: credentials in URLs, ``Bearer``/``Basic`` tokens, the values of echoed headers
    or fields such as ``Authorization``, ``api-key`` or ``password``, and ``sk-...`` keys.

    >>> redact_text('{"headers": {"authorization": "Bearer abc"}, "model": "m"}')
    '{"headers": {"authorization": "***"}, "model": "m"}'
    >>> redact_text("cannot reach http://u:pw@host/v1 (key pw)", secrets=["pw"])
    'cannot reach http://***@host/v1 (key ***)'
    """
    text = str(text)
    for secret in sorted({s for s in secrets if s and s.strip()}, key=len, reverse=True):
        for form in dict.fromkeys((secret, quote(secret, safe=""), quote(secret))):
            text = text.replace(form, MASK)
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    text = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _BEARER.sub(_bearer, text)
    text = _BASIC.sub(_basic, text)
    return _KEY_SHAPES.sub(MASK, text)
