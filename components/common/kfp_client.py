"""The one module that talks to the Kubeflow Pipelines REST API (v2beta1), over `requests`.

Why not `kfp.Client`: every request here is a plain, visible HTTP call that the tests check
against the KFP swagger (through the stand-in server, `kfp_standin.py`), and the CLI and the
monitoring component share one small surface:

- `healthz`;
- pipelines: `get_pipeline_by_name`, `upload_pipeline` (multipart), `upload_pipeline_version`,
  `find_pipeline_version`, `latest_pipeline_version`, `ensure_pipeline_version` (find or upload);
- experiments: `find_experiment`, `ensure_experiment`;
- runs: `create_run`, `get_run`, `wait_for_run`;
- recurring runs: `create_recurring_run`, `list_recurring_runs`, `disable_recurring_run`.

Connection: `KfpClient.from_env(...)` takes the host from `--host` or `KFP_HOST`, a bearer token
from `--token` / `KFP_TOKEN`, else a token file (`--token-file` / `KFP_TOKEN_FILE`, else the
in-cluster `KF_PIPELINES_SA_TOKEN_PATH`, default /var/run/secrets/kubeflow/pipelines/token, if it
exists; re-read on each request because projected tokens rotate), and an optional namespace
(`--namespace` / `KFP_NAMESPACE`).

Errors name the endpoint and carry the server's message: 400 → `KfpInvalid`, 401/403 →
`KfpAuthError` (never retried), 404 → `KfpNotFound`, 409 → `KfpAlreadyExists`, connection
failures and 5xx → `KfpUnavailable`. Only idempotent calls (reads, disable) are retried on
connection errors and 5xx, with exponential backoff (`Retry-After` honoured): a create that
timed out may have happened, and repeating it would duplicate a run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

API = "/apis/v2beta1"
TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"})
SA_TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
SA_TOKEN_DEFAULT = "/var/run/secrets/kubeflow/pipelines/token"
_RETRY_STATUS = {500, 502, 503, 504}


class KfpError(RuntimeError):
    """A KFP API call failed. `endpoint` is "METHOD /path", `status` the HTTP status (None when
    the server was not reached), `server_message` what the server said."""

    def __init__(
        self, message: str, endpoint: str = "", status: int | None = None, server_message: str = ""
    ) -> None:
        self.endpoint = endpoint
        self.status = status
        self.server_message = server_message
        super().__init__(message)


class KfpInvalid(KfpError):
    """400: the server refused the request's content."""


class KfpAuthError(KfpError):
    """401/403: missing, wrong or insufficient credentials."""


class KfpNotFound(KfpError):
    pass


class KfpAlreadyExists(KfpError):
    pass


class KfpUnavailable(KfpError):
    """The server could not be reached or kept answering 5xx."""


class KfpTimeout(KfpError):
    """`wait_for_run` gave up; `last` is the run as last seen."""

    def __init__(self, message: str, last: dict | None = None) -> None:
        self.last = last
        super().__init__(message)


_BY_STATUS: dict[int, type[KfpError]] = {
    400: KfpInvalid,
    401: KfpAuthError,
    403: KfpAuthError,
    404: KfpNotFound,
    409: KfpAlreadyExists,
}


def _server_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason or ""
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:2000]
    return str(body)[:2000]


def name_filter(key: str, value: str) -> str:
    """A v2beta1 `filter` query value: `key` EQUALS `value`."""
    predicate = {"key": key, "operation": "EQUALS", "string_value": value}
    return json.dumps({"predicates": [predicate]})


class KfpClient:
    """A KFP API server at `host` (e.g. http://localhost:8080 with the UI port-forwarded, or
    https://kubeflow.example.com/pipeline). `ui_url` is where run links point (default: host)."""

    def __init__(
        self,
        host: str,
        *,
        token: str | None = None,
        token_file: str | None = None,
        namespace: str | None = None,
        ui_url: str | None = None,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        if not host:
            raise KfpError("no KFP host: pass --host or set KFP_HOST (e.g. http://localhost:8080)")
        self.host = host.rstrip("/")
        self.token = token
        self.token_file = token_file
        self.namespace = namespace or None
        self.ui_url = (ui_url or self.host).rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.session = session or requests.Session()

    @classmethod
    def from_env(
        cls,
        host: str | None = None,
        token: str | None = None,
        token_file: str | None = None,
        namespace: str | None = None,
        ui_url: str | None = None,
        **kwargs: Any,
    ) -> KfpClient:
        """Arguments win over the environment (`KFP_HOST`, `KFP_TOKEN`, `KFP_TOKEN_FILE`,
        `KFP_NAMESPACE`, `KFP_UI_URL`); without a token, the in-cluster token file if present."""
        env = os.environ
        token = token or env.get("KFP_TOKEN") or None
        token_file = token_file or env.get("KFP_TOKEN_FILE") or None
        if not token and not token_file:
            default = env.get(SA_TOKEN_ENV, SA_TOKEN_DEFAULT)
            token_file = default if Path(default).is_file() else None
        return cls(
            host or env.get("KFP_HOST", ""),
            token=token,
            token_file=token_file,
            namespace=namespace or env.get("KFP_NAMESPACE") or None,
            ui_url=ui_url or env.get("KFP_UI_URL") or None,
            **kwargs,
        )

    # ------------------------------------------------------------ transport

    def _headers(self) -> dict[str, str]:
        token = self.token
        if not token and self.token_file:
            try:
                token = Path(self.token_file).read_text().strip()
            except OSError as exc:
                raise KfpAuthError(
                    f"cannot read the KFP token file {self.token_file}: {exc}"
                ) from exc
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict | None = None,
        files: dict | None = None,
        idempotent: bool = False,
    ) -> Any:
        url = f"{self.host}{API}{path}"
        endpoint = f"{method} {API}{path}"
        params = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=body,
                    files=files,
                    headers=self._headers(),
                    timeout=self.timeout_s,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if last:
                    raise KfpUnavailable(
                        f"cannot reach the KFP API at {self.host} ({endpoint}): {exc}", endpoint
                    ) from exc
                self.sleep(self.backoff_s * 2**attempt)
                continue
            if response.status_code in _RETRY_STATUS and not last:
                self.sleep(self._retry_after(response) or self.backoff_s * 2**attempt)
                continue
            if response.status_code >= 400:
                raise self._error(response, endpoint)
            if not response.content:
                return {}
            try:
                return response.json()
            except ValueError as exc:
                raise KfpError(
                    f"KFP {endpoint}: the answer is not JSON: {response.text[:200]!r}",
                    endpoint,
                    response.status_code,
                ) from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    @staticmethod
    def _retry_after(response: requests.Response) -> float | None:
        try:
            return min(float(response.headers.get("Retry-After", "")), 60.0)
        except ValueError:
            return None

    def _error(self, response: requests.Response, endpoint: str) -> KfpError:
        status = response.status_code
        message = _server_message(response)
        cls = _BY_STATUS.get(status, KfpUnavailable if status >= 500 else KfpError)
        text = f"KFP {endpoint} failed: HTTP {status}: {message}"
        if cls is KfpAuthError:
            text += " (check KFP_TOKEN / --token / --token-file and the namespace's access)"
        return cls(text, endpoint, status, message)

    # ------------------------------------------------------------ health and pipelines

    def healthz(self) -> dict:
        """The server's health answer (multi_user, pipeline_store)."""
        return self._request("GET", "/healthz", idempotent=True)

    def get_pipeline_by_name(self, name: str) -> dict | None:
        try:
            return self._request(
                "GET",
                f"/pipelines/names/{requests.utils.quote(name, safe='')}",
                params={"namespace": self.namespace},
                idempotent=True,
            )
        except KfpNotFound:
            return None

    def upload_pipeline(
        self, package: bytes, name: str, description: str = "", filename: str = "pipeline.yaml"
    ) -> dict:
        """A new pipeline (and its first version) from a compiled spec; `KfpAlreadyExists` if
        the name is taken."""
        return self._request(
            "POST",
            "/pipelines/upload",
            params={"name": name, "description": description, "namespace": self.namespace},
            files={"uploadfile": (filename, package, "application/x-yaml")},
        )

    def upload_pipeline_version(
        self,
        pipeline_id: str,
        package: bytes,
        name: str,
        description: str = "",
        filename: str = "pipeline.yaml",
    ) -> dict:
        return self._request(
            "POST",
            "/pipelines/upload_version",
            params={"pipelineid": pipeline_id, "name": name, "description": description},
            files={"uploadfile": (filename, package, "application/x-yaml")},
        )

    def list_pipeline_versions(
        self, pipeline_id: str, *, filter: str | None = None, sort_by: str | None = None
    ) -> list[dict]:
        """Every version of the pipeline (all pages)."""
        return self._list(
            f"/pipelines/{pipeline_id}/versions",
            "pipeline_versions",
            {"filter": filter, "sort_by": sort_by},
        )

    def find_pipeline_version(self, pipeline_id: str, name: str) -> dict | None:
        found = self.list_pipeline_versions(pipeline_id, filter=name_filter("name", name))
        return found[0] if found else None

    def latest_pipeline_version(self, pipeline_id: str) -> dict:
        found = self._request(
            "GET",
            f"/pipelines/{pipeline_id}/versions",
            params={"sort_by": "created_at desc", "page_size": 1},
            idempotent=True,
        ).get("pipeline_versions")
        if not found:
            raise KfpNotFound(f"pipeline {pipeline_id} has no versions")
        return found[0]

    def ensure_pipeline_version(
        self, package: bytes, pipeline_name: str, version_name: str, description: str = ""
    ) -> tuple[dict, dict, bool]:
        """(pipeline, version, uploaded): the pipeline named `pipeline_name` with a version named
        `version_name`, uploading whichever is missing. Naming versions by content makes a
        re-submit of the same package reuse its version."""
        pipeline = self.get_pipeline_by_name(pipeline_name)
        if pipeline is None:
            pipeline = self.upload_pipeline(package, pipeline_name, description)
            first = self.latest_pipeline_version(pipeline["pipeline_id"])
            if first.get("name") == version_name:
                return pipeline, first, True
            # KFP names the first version after the pipeline: add ours so runs pin the content
            version = self.upload_pipeline_version(
                pipeline["pipeline_id"], package, version_name, description
            )
            return pipeline, version, True
        version = self.find_pipeline_version(pipeline["pipeline_id"], version_name)
        if version is not None:
            return pipeline, version, False
        version = self.upload_pipeline_version(
            pipeline["pipeline_id"], package, version_name, description
        )
        return pipeline, version, True

    # ------------------------------------------------------------ experiments

    def find_experiment(self, name: str) -> dict | None:
        found = self._list(
            "/experiments",
            "experiments",
            {"filter": name_filter("display_name", name), "namespace": self.namespace},
        )
        return found[0] if found else None

    def ensure_experiment(self, name: str, description: str = "") -> dict:
        found = self.find_experiment(name)
        if found is not None:
            return found
        body: dict[str, Any] = {"display_name": name}
        if description:
            body["description"] = description
        if self.namespace:
            body["namespace"] = self.namespace
        try:
            return self._request("POST", "/experiments", body=body)
        except KfpAlreadyExists:  # created by someone else since the lookup
            found = self.find_experiment(name)
            if found is None:
                raise
            return found

    # ------------------------------------------------------------ runs

    @staticmethod
    def _source(pipeline_id: str, version_id: str | None, parameters: dict | None) -> dict:
        ref = {"pipeline_id": pipeline_id}
        if version_id:
            ref["pipeline_version_id"] = version_id
        return {
            "pipeline_version_reference": ref,
            "runtime_config": {"parameters": dict(parameters or {})},
        }

    def create_run(
        self,
        display_name: str,
        pipeline_id: str,
        version_id: str | None,
        experiment_id: str,
        parameters: dict[str, Any] | None = None,
        description: str = "",
        service_account: str | None = None,
    ) -> dict:
        body = {
            "display_name": display_name,
            "experiment_id": experiment_id,
            **self._source(pipeline_id, version_id, parameters),
        }
        if description:
            body["description"] = description
        if service_account:
            body["service_account"] = service_account
        return self._request("POST", "/runs", body=body)

    def get_run(self, run_id: str) -> dict:
        return self._request("GET", f"/runs/{run_id}", idempotent=True)

    def wait_for_run(
        self,
        run_id: str,
        timeout_s: float = 3600.0,
        poll_s: float = 10.0,
        on_change: Callable[[dict], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> dict:
        """Poll until the run reaches a terminal state; `on_change(run)` on each new state."""
        deadline = clock() + timeout_s
        seen = None
        while True:
            run = self.get_run(run_id)
            state = run.get("state", "RUNTIME_STATE_UNSPECIFIED")
            if state != seen:
                seen = state
                if on_change:
                    on_change(run)
            if state in TERMINAL_STATES:
                return run
            if clock() >= deadline:
                raise KfpTimeout(
                    f"run {run_id} still {state} after {timeout_s:g} s (it keeps running)", run
                )
            self.sleep(poll_s)

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_url}/#/runs/details/{run_id}"

    def recurring_run_url(self, recurring_run_id: str) -> str:
        return f"{self.ui_url}/#/recurringrun/details/{recurring_run_id}"

    # ------------------------------------------------------------ recurring runs

    def create_recurring_run(
        self,
        display_name: str,
        pipeline_id: str,
        version_id: str | None,
        experiment_id: str,
        cron: str,
        parameters: dict[str, Any] | None = None,
        *,
        max_concurrency: int = 1,
        enabled: bool = True,
        no_catchup: bool = True,
        description: str = "",
    ) -> dict:
        """`cron` is sent as given: pass it through `cron.to_kfp_cron` (KFP reads seconds first).
        `mode` is always explicit: KFP treats an unspecified mode as disabled."""
        body = {
            "display_name": display_name,
            "experiment_id": experiment_id,
            **self._source(pipeline_id, version_id, parameters),
            "trigger": {"cron_schedule": {"cron": cron}},
            "max_concurrency": str(max_concurrency),  # int64: a JSON string in proto3 JSON
            "mode": "ENABLE" if enabled else "DISABLE",
            "no_catchup": no_catchup,
        }
        if description:
            body["description"] = description
        return self._request("POST", "/recurringruns", body=body)

    def list_recurring_runs(
        self, experiment_id: str | None = None, name: str | None = None
    ) -> list[dict]:
        return self._list(
            "/recurringruns",
            "recurringRuns",  # sic: the one camelCase list key of the v2beta1 API
            {
                "experiment_id": experiment_id,
                "namespace": self.namespace,
                "filter": name_filter("display_name", name) if name else None,
            },
        )

    def disable_recurring_run(self, recurring_run_id: str) -> None:
        self._request("POST", f"/recurringruns/{recurring_run_id}:disable", idempotent=True)

    # ------------------------------------------------------------ paging

    def _list(self, path: str, key: str, params: dict[str, Any], page_size: int = 100) -> list:
        items: list = []
        token = None
        while True:
            page = self._request(
                "GET",
                path,
                params={**params, "page_size": page_size, "page_token": token},
                idempotent=True,
            )
            items.extend(page.get(key) or [])
            token = page.get("next_page_token")
            if not token:
                return items
