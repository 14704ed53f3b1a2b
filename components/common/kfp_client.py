"""The Kubeflow Pipelines API (v2beta1) for `mlpipe submit | schedule` and monitoring's retraining.

`kfp.Client` (kfp 2.17.3, generated from the same API) does the HTTP, the multipart upload, the
models and the bearer token (given, or a file re-read per request: projected tokens rotate); its
answers leave as plain dicts (the server's JSON, unset fields absent). What this module adds is
what `kfp.Client` lacks:

- content-addressed versions: `ensure_pipeline_version` finds the pipeline by name in the
  namespace (`get_pipeline_id` takes none) and the version by name, uploading only what is missing;
  a version is named by the package's content, so re-submitting it reuses it. `ensure_experiment`
  likewise. A 409 on a create (someone else just made it) is answered by finding it;
- no retry on a create: kfp.Client keeps urllib3's default (3 immediate retries of a failed
  connection, POSTs included; none on 5xx; no timeout). `_Transport` retries GETs on connection
  errors and 5xx as `common/retry.py` says (backoff, `Retry-After` honoured) and never a POST:
  a create that timed out may have happened, and repeating it would duplicate a run. Every request
  has a timeout;
- errors naming the endpoint with the server's message: 400 `KfpInvalid`, 401/403 `KfpAuthError`,
  404 `KfpNotFound`, 409 `KfpAlreadyExists`, 5xx or unreachable `KfpUnavailable`;
- quiet creates: through the generated service APIs kfp.Client builds (`.runs`,
  `.pipeline_uploads`, ...), as its convenience methods print links to stdout and `run_pipeline`
  drops the run's description; `get_kfp_healthz` would retry auth errors 5 times, 5 s apart;
- a constructor without side effects: `kfp.Client()` applies ~/.config/kfp/context.json
  (namespace, cookie, auth header) and, without a namespace there, calls healthz and may write that
  file. `_Client` skips both; the namespace is explicit;
- `wait_for_run` reports each state and stops at CANCELED (`wait_for_run_completion` does not);
- KFP's 6-field cron (seconds first) comes from `cron.to_kfp_cron`; runs and recurring runs carry
  the pipeline's service account;
- `from_env`: `KFP_HOST`, `KFP_TOKEN`, else `KFP_TOKEN_FILE`, else the in-cluster KFP token
  (`KF_PIPELINES_SA_TOKEN_PATH`) if present, `KFP_NAMESPACE`, `KFP_UI_URL` (links; default: host).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.parse
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Inside a KFP task (`_KFP_RUNTIME=true`, which the component's command sets) kfp.dsl loads only
# what running a component needs, and kfp.client, which imports the compiler, then meets a
# circular import in kfp.dsl (pipeline_context <-> graph_component) unless component_factory
# loads first, as kfp.dsl's own compile-time imports do. The monitoring pipeline's act task
# creates runs from a task: keep this import first.
import kfp.dsl.component_factory  # noqa: F401 - import order, see above
import kfp_server_api
import urllib3
from kfp.client import (
    KF_PIPELINES_SA_TOKEN_ENV,
    KF_PIPELINES_SA_TOKEN_PATH,
    Client,
    ServiceAccountTokenVolumeCredentials,
)
from kfp_server_api import rest

from components.common.retry import retrying

TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"})


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
    """404."""


class KfpAlreadyExists(KfpError):
    """409."""


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


def name_filter(key: str, value: str) -> str:
    """A v2beta1 `filter` query value: `key` EQUALS `value`."""
    predicate = {"key": key, "operation": "EQUALS", "string_value": value}
    return json.dumps({"predicates": [predicate]})


def _server_message(exc: Any) -> str:
    body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else exc.body or ""
    try:
        answer = json.loads(body)
    except ValueError:
        return body.strip()[:500] or str(exc.reason or "")
    if isinstance(answer, dict):
        keys = ("message", "error_message", "error")
        return str(next((answer[k] for k in keys if answer.get(k)), answer))[:2000]
    return str(answer)[:2000]


class _Transport(rest.RESTClientObject):
    """kfp_server_api's HTTP layer with this module's policy: a timeout on every request, GETs
    retried on connection errors and 5xx, POSTs never, failures raised as `KfpError`s."""

    def __init__(self, configuration: Any, owner: KfpClient) -> None:
        configuration.retries = False  # urllib3 retries nothing: the policy is below
        super().__init__(configuration)
        self.owner = owner

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        owner = self.owner
        kwargs["_request_timeout"] = kwargs.get("_request_timeout") or (owner.timeout_s,) * 2
        endpoint = f"{method} {urllib.parse.urlsplit(url).path}"
        attempts = 1 + (owner.retries if method == "GET" else 0)
        return retrying(attempts, owner.backoff_s, (KfpUnavailable,), owner.sleep)(
            self._once, endpoint, method, url, *args, **kwargs
        )

    def _once(self, endpoint: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().request(*args, **kwargs)
        except (kfp_server_api.ApiException, urllib3.exceptions.HTTPError) as exc:
            raise self._error(exc, endpoint) from exc

    def _error(self, exc: Exception, endpoint: str) -> KfpError:
        status = getattr(exc, "status", None) or None  # 0: kfp_server_api's wrapped SSL error
        if status is None:
            text = f"cannot reach the KFP API at {self.owner.host} ({endpoint}): {exc}"
            return KfpUnavailable(text, endpoint)
        message = _server_message(exc)
        cls = _BY_STATUS.get(status, KfpUnavailable if status >= 500 else KfpError)
        text = f"KFP {endpoint} failed: HTTP {status}: {message}"
        if cls is KfpAuthError:
            text += " (check KFP_TOKEN / --token / --token-file and the namespace's access)"
        return cls(text, endpoint, status, message)


class _TokenFile(ServiceAccountTokenVolumeCredentials):
    """kfp's token-file credentials (re-read per request), failing as a `KfpAuthError`."""

    def _get_token(self) -> str:
        try:
            return super()._get_token()
        except OSError as exc:
            raise KfpAuthError(f"cannot read the KFP token file {self._token_path}: {exc}") from exc


class _Client(Client):
    """`kfp.Client` without its constructor's side effects (see the module docstring)."""

    def __init__(self, namespace: str, **kwargs: Any) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP 2.0.0b2+"
            super().__init__(**kwargs)
        self._context_setting = {"namespace": namespace}

    def _load_context_setting_or_default(self) -> None:
        # not ~/.config/kfp/context.json; a namespace placeholder, so __init__ calls no healthz
        self._context_setting = {"namespace": "(set after __init__)"}


class KfpClient:
    """A KFP API server at `host` (e.g. http://localhost:8080 with the UI port-forwarded, or
    https://kubeflow.example.com/pipeline). `ui_url` is where run links point (default: host)."""

    page_size = 100

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
    ) -> None:
        if not host:
            raise KfpError("no KFP host: pass --host or set KFP_HOST (e.g. http://localhost:8080)")
        self.host = host.rstrip("/")
        self.namespace = namespace or None
        self.ui_url = (ui_url or self.host).rstrip("/")
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.sleep = sleep
        self.kfp = _Client(
            self.namespace or "",
            host=self.host,
            existing_token=token or None,
            credentials=_TokenFile(token_file) if token_file and not token else None,
        )
        api = self.kfp.runs.api_client  # the one ApiClient every generated service API shares
        api.rest_client = _Transport(api.configuration, self)
        self._api = api

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
            default = env.get(KF_PIPELINES_SA_TOKEN_ENV, KF_PIPELINES_SA_TOKEN_PATH)
            token_file = default if Path(default).is_file() else None
        return cls(
            host or env.get("KFP_HOST", ""),
            token=token,
            token_file=token_file,
            namespace=namespace or env.get("KFP_NAMESPACE") or None,
            ui_url=ui_url or env.get("KFP_UI_URL") or None,
            **kwargs,
        )

    # ------------------------------------------------------------ helpers

    def _plain(self, model: Any) -> Any:
        """A kfp_server_api model as the JSON the server sent (dates as ISO strings)."""
        return self._api.sanitize_for_serialization(model)

    def _named(self, list_call: Callable[..., Any], key: str, name: str, **kw: Any) -> dict | None:
        """The item named `name` (the filter's key depends on the kind), None if there is none."""
        kind_key = "display_name" if key == "experiments" else "name"
        found = getattr(list_call(filter=name_filter(kind_key, name), page_size=2, **kw), key)
        return self._plain(found[0]) if found else None

    def _all(self, list_page: Callable[..., Any], key: str, **kwargs: Any) -> list[dict]:
        """Every item of a paged list call."""
        items: list[dict] = []
        token = ""
        while True:
            page = list_page(page_token=token, page_size=self.page_size, **kwargs)
            items.extend(self._plain(item) for item in getattr(page, key) or [])
            token = page.next_page_token
            if not token:
                return items

    @staticmethod
    def _create_or_find(create: Callable[[], Any], find: Callable[[], dict | None]) -> Any:
        try:
            return create()
        except KfpAlreadyExists:  # created by someone else since the lookup
            found = find()
            if found is None:
                raise
            return found

    def _upload(self, upload: Callable[..., Any], package: bytes, **query: Any) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "pipeline.yaml"  # the generated client sends the file's name
            path.write_bytes(package)
            return self._plain(upload(str(path), **query))

    # ------------------------------------------------------------ health, pipelines, experiments

    def healthz(self) -> dict:
        """The server's health answer (multi_user, pipeline_store)."""
        return self._plain(self.kfp.healthzs.healthz_service_get_healthz())

    def find_pipeline(self, name: str) -> dict | None:
        return self._named(self.kfp.list_pipelines, "pipelines", name, namespace=self.namespace)

    def find_pipeline_version(self, pipeline_id: str, name: str) -> dict | None:
        list_versions = self.kfp.list_pipeline_versions
        return self._named(list_versions, "pipeline_versions", name, pipeline_id=pipeline_id)

    def ensure_pipeline_version(
        self, package: bytes, pipeline_name: str, version_name: str, description: str = ""
    ) -> tuple[dict, dict, bool]:
        """(pipeline, version, uploaded): the pipeline named `pipeline_name` with a version named
        `version_name`, uploading whichever is missing. KFP names a new pipeline's first version
        after the pipeline, so ours is always added as a version of its own."""
        uploads = self.kfp.pipeline_uploads
        pipeline = self.find_pipeline(pipeline_name) or self._create_or_find(
            lambda: self._upload(
                uploads.upload_pipeline, package, name=pipeline_name,
                description=description or None, namespace=self.namespace,
            ),
            lambda: self.find_pipeline(pipeline_name),
        )  # fmt: skip
        pipeline_id = pipeline["pipeline_id"]
        version = self.find_pipeline_version(pipeline_id, version_name)
        if version is not None:
            return pipeline, version, False
        version = self._create_or_find(
            lambda: self._upload(
                uploads.upload_pipeline_version, package, name=version_name,
                pipelineid=pipeline_id, description=description or None,
            ),
            lambda: self.find_pipeline_version(pipeline_id, version_name),
        )  # fmt: skip
        return pipeline, version, True

    def find_experiment(self, name: str) -> dict | None:
        return self._named(self.kfp.list_experiments, "experiments", name, namespace=self.namespace)

    def ensure_experiment(self, name: str, description: str = "") -> dict:
        experiment = kfp_server_api.V2beta1Experiment(
            display_name=name, description=description or None, namespace=self.namespace
        )
        return self.find_experiment(name) or self._create_or_find(
            lambda: self._plain(
                self.kfp.experiments.experiment_service_create_experiment(experiment=experiment)
            ),
            lambda: self.find_experiment(name),
        )

    # ------------------------------------------------------------ runs

    def create_run(
        self,
        display_name: str,
        pipeline_id: str,
        version_id: str,
        experiment_id: str,
        parameters: dict[str, Any] | None = None,
        description: str = "",
        service_account: str | None = None,
    ) -> dict:
        run = kfp_server_api.V2beta1Run(
            display_name=display_name,
            description=description or None,
            experiment_id=experiment_id,
            pipeline_version_reference=kfp_server_api.V2beta1PipelineVersionReference(
                pipeline_id=pipeline_id, pipeline_version_id=version_id
            ),
            runtime_config=kfp_server_api.V2beta1RuntimeConfig(parameters=dict(parameters or {})),
            service_account=service_account or None,
        )
        return self._plain(self.kfp.runs.run_service_create_run(run=run))

    def get_run(self, run_id: str) -> dict:
        return self._plain(self.kfp.get_run(run_id))

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
        version_id: str,
        experiment_id: str,
        cron: str,
        parameters: dict[str, Any] | None = None,
        **options: Any,
    ) -> dict:
        """`cron` is sent as given: pass it through `cron.to_kfp_cron` (KFP reads seconds first).
        `options` go to `kfp.Client.create_recurring_run`: max_concurrency (1), enabled (True),
        no_catchup (here True: a missed interval is not backfilled), description,
        service_account."""
        options = {"no_catchup": True, **options}
        recurring = self.kfp.create_recurring_run(
            experiment_id, display_name, cron_expression=cron, params=dict(parameters or {}),
            pipeline_id=pipeline_id, version_id=version_id, **options,
        )  # fmt: skip
        return self._plain(recurring)

    def list_recurring_runs(
        self, experiment_id: str | None = None, name: str | None = None
    ) -> list[dict]:
        return self._all(
            self.kfp.list_recurring_runs,
            "recurring_runs",
            experiment_id=experiment_id,
            namespace=self.namespace,
            filter=name_filter("display_name", name) if name else None,
        )

    def disable_recurring_run(self, recurring_run_id: str) -> None:
        self.kfp.disable_recurring_run(recurring_run_id)
