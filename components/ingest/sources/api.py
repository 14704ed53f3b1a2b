"""`api` sources: a REST endpoint answering JSON, page or cursor pagination, each request retried
as `components/common/retry.py` says."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from components.common.config import IngestionConfig
from components.common.retry import RETRY_STATUSES, retrying
from components.ingest.sources import AuthError, SourceError, read_secret, redact


def _dig(obj: Any, dotted: str) -> Any:
    for part in [p for p in dotted.split(".") if p]:
        if not isinstance(obj, dict) or part not in obj:
            raise KeyError(dotted)
        obj = obj[part]
    return obj


class ApiReader:
    """Pages of a REST JSON endpoint, each request retried with backoff when worth it."""

    def __init__(self, cfg: IngestionConfig, watermark: Any, sleep=time.sleep) -> None:
        import requests

        assert cfg.api is not None
        self.cfg, self.api, self.sleep = cfg, cfg.api, sleep
        self.url = cfg.source_url
        self.shown = redact(cfg.source_url)
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", **self.api.headers})
        secret = read_secret(self.api.auth_env, self.api.auth_file, "API credential", self.shown)
        if secret is not None:
            scheme = self.api.auth_scheme
            self.session.headers[self.api.auth_header] = f"{scheme} {secret}" if scheme else secret
        self.params: dict[str, Any] = dict(self.api.params)
        if self.api.watermark_param and watermark is not None:
            self.params[self.api.watermark_param] = watermark
        self.requests = 0
        self.retries = 0

    def get(self, params: dict[str, Any], page_no: int) -> Any:
        import requests

        api, where = self.api, f"page {page_no}"
        policy = retrying(
            api.max_retries + 1, api.backoff_s, (requests.RequestException,), self.sleep
        )
        before = self.requests
        try:
            resp = policy(self._request, params)
        except requests.RequestException as exc:
            lost = "connection lost while reading"  # e.g. ChunkedEncodingError
            kinds = {requests.Timeout: "timed out", requests.ConnectionError: "connection failed"}
            kind = next((k for t, k in kinds.items() if isinstance(exc, t)), lost)
            raise SourceError(
                self.shown,
                f"{where}: {kind} after {self.requests - before} attempts "
                f"({type(exc).__name__}: {_short(exc)})",
            ) from exc
        finally:
            self.retries += self.requests - before - 1
        status = resp.status_code
        if status in (401, 403):
            hint = (
                f" (credential from {api.auth_env or api.auth_file})"
                if api.auth_env or api.auth_file
                else " (no credential configured: set api.auth_env)"
            )
            raise AuthError(self.shown, f"{where}: authentication failed: HTTP {status}{hint}")
        if status in RETRY_STATUSES:
            raise SourceError(
                self.shown, f"{where}: HTTP {status} after {self.requests - before} attempts"
            )
        if status >= 400:
            raise SourceError(self.shown, f"{where}: HTTP {status}: {resp.text[:200]}")
        try:
            return resp.json() if resp.content else None
        except ValueError as exc:
            raise SourceError(
                self.shown, f"{where}: malformed response: not JSON ({resp.content[:80]!r})"
            ) from exc

    def _request(self, params: dict[str, Any]) -> Any:
        self.requests += 1
        # not streamed: the whole body is read here, so a cut connection raises (and is retried)
        return self.session.get(self.url, params=params, timeout=self.api.timeout_s)

    def records(self, page: Any, page_no: int) -> list[dict[str, Any]]:
        try:
            records = _dig(page, self.api.records_path)
        except KeyError:
            raise SourceError(
                self.shown,
                f"page {page_no}: malformed response: no {self.api.records_path!r} field",
            ) from None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise SourceError(
                self.shown,
                f"page {page_no}: malformed response: {self.api.records_path or 'the body'!r} "
                "is not a list of objects",
            )
        return records

    def pages(self) -> Iterator[list[dict[str, Any]]]:
        api = self.api
        page_no, cursor = 0, None
        while True:
            page_no += 1
            params = dict(self.params)
            if api.pagination == "page":
                params[api.page_param] = api.first_page + page_no - 1
                if api.page_size_param:
                    params[api.page_size_param] = api.page_size
            elif api.pagination == "cursor" and cursor is not None:
                params[api.cursor_param] = cursor
            body = self.get(params, page_no)
            records = self.records(body, page_no)
            if records:
                yield records
            if api.max_pages and page_no >= api.max_pages:
                return
            if api.pagination == "none" or not records:
                return
            if api.pagination == "page":
                if api.page_size_param and len(records) < api.page_size:
                    return
            else:
                try:
                    cursor = _dig(body, api.next_cursor_path)
                except KeyError:
                    cursor = None
                if cursor in (None, ""):
                    return


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else ""


def iter_api(cfg: IngestionConfig, watermark: Any, stats: dict[str, Any]) -> Iterator[pa.Table]:
    reader = ApiReader(cfg, watermark)
    buffer: list[dict[str, Any]] = []
    pages = 0
    try:
        for records in reader.pages():
            pages += 1
            buffer.extend(records)
            if len(buffer) >= cfg.batch_size:
                yield _records_table(buffer, reader.shown, pages)
                buffer = []
        if buffer or pages == 0:
            yield _records_table(buffer, reader.shown, pages)
    finally:
        stats.update(pages=pages, requests=reader.requests, retries=reader.retries)


def _records_table(records: list[dict[str, Any]], shown: str, page: int) -> pa.Table:
    try:
        return pa.Table.from_pylist(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SourceError(shown, f"page {page}: malformed records: {exc}") from exc
