"""Redaction of URLs and secrets before anything is logged, stored or tracked.

A Slack incoming webhook's secret is its path (`https://hooks.slack.com/services/T0/B0/XXXX`);
other URLs may carry a password (`user:pw@host`) or a token in the query. So:

- `redact_url`: a secret URL (a webhook) keeps its scheme and host only
  (`https://hooks.slack.com/…`); with `keep_path=True` (any other URL: a data source, where the
  path is what a reader needs) only userinfo, query and fragment go.
- `redact_text`: every URL in a text (an error message, a log line) keeps its scheme and host
  only; and every registered secret (`register_secret`: the webhook the alert sink posts to), and
  its path alone, is replaced too — `requests` errors name the path without the host
  (`... with url: /services/T0/B0/XXXX`).
- `redact_params`: flattened config or metadata about to become MLflow params: a value under a
  key that looks like a credential is dropped to `(redacted)`, URLs lose userinfo and query, and
  registered secrets are replaced.
- `RedactingFilter`: a logging filter that applies `redact_text` to a record (installed on the
  HTTP client's logger, whose debug lines name the request path).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ELLIPSIS = "…"
MIN_SECRET_PATH = 8  # a shorter URL path is not registered as a secret on its own
REDACTED = "(redacted)"
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]{},]+")
_SECRET_KEY_PARTS = ("password", "passwd", "secret", "token", "api_key", "apikey", "access_key")
_SECRET_KEYS = {"webhook_url", "key", "pwd", "signature", "sig", "auth", "authorization"}

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """From now on this value (and, for a URL, its path) never leaves `redact_*` unredacted."""
    if not value:
        return
    with _lock:
        _secrets.add(value)
        if "://" in value:
            parts = urlsplit(value)
            if len(parts.path) >= MIN_SECRET_PATH:  # "/" or "/h" is no secret
                _secrets.add(parts.path)
            if parts.query:  # HTTP clients' errors name "path?query"
                _secrets.add(f"{parts.path}?{parts.query}")


def redact_url(url: str, keep_path: bool = False) -> str:
    """`https://hooks.slack.com/services/T0/B0/XXXX` -> `https://hooks.slack.com/…`; with
    `keep_path`, only userinfo, query and fragment go. Not a URL: returned as it is."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return f"{url.split('://', 1)[0]}://{ELLIPSIS}" if "://" in url else url
    if not parts.scheme or "://" not in url:
        return url
    netloc = host if port is None else f"{host}:{port}"
    if keep_path:
        dropped = parts.username is not None or parts.query or parts.fragment
        path = parts.path + (ELLIPSIS if (parts.query or parts.fragment) else "")
        return urlunsplit((parts.scheme, netloc, path, "", "")) if dropped else url
    rest = parts.path not in ("", "/") or parts.query or parts.fragment or parts.username
    return f"{parts.scheme}://{netloc}/{ELLIPSIS}" if rest else f"{parts.scheme}://{netloc}"


def _replace_secrets(text: str) -> str:
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)  # a URL before its own path
    for secret in known:
        if secret not in text:
            continue
        if "://" in secret:
            text = text.replace(secret, redact_url(secret))
        else:  # a path alone: not inside another URL's "//host"
            text = re.sub(rf"(?<![\w/.-]){re.escape(secret)}", ELLIPSIS, text)
    return text


def redact_text(text: str | None, keep_path: bool = False) -> str | None:
    """Every URL in `text` redacted (scheme and host only, unless `keep_path`); every
    registered secret replaced."""
    if not text:
        return text
    text = _replace_secrets(str(text))
    return _URL.sub(lambda m: redact_url(m.group(0), keep_path), text)


def looks_secret(key: str) -> bool:
    """A param or config key whose value is a credential (`...password`, `token`, ...)."""
    name = key.rsplit(".", 1)[-1].lower().replace("-", "_")
    if name.endswith(("_env", "_file")):
        return False  # names where a secret is (a variable, a mounted file), not the secret
    return name in _SECRET_KEYS or any(
        name == part or name.endswith(f"_{part}") or name.startswith(f"{part}_")
        for part in _SECRET_KEY_PARTS
    )


def redact_params(params: dict[str, Any]) -> dict[str, Any]:
    """Flattened params made safe to track: credential-like keys' values dropped, URLs without
    userinfo or query (their path kept: a data source's path is what a reader wants), registered
    secrets replaced."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if looks_secret(key) and value not in (None, ""):
            out[key] = REDACTED
        elif isinstance(value, str):
            out[key] = redact_text(value, keep_path=True)
        else:
            out[key] = value
    return out


class RedactingFilter(logging.Filter):
    """Rewrites a record's message through `redact_text` (its args are merged in first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error path
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


_installed: set[str] = set()


def install_log_filter(*loggers: str) -> None:
    """Add a `RedactingFilter` to these loggers (once each)."""
    for name in loggers:
        if name not in _installed:
            logging.getLogger(name).addFilter(RedactingFilter())
            _installed.add(name)
