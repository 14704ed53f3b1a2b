"""A stand-in KFP API server (v2beta1): a real HTTP server with in-memory state, for tests and
rehearsals.

It implements the endpoints `components/common/kfp_client.py` reaches through `kfp.Client` (and its
generated `kfp_server_api` client) and holds every request to the KFP swagger
(`components/common/schemas/kfp-api-v2beta1.swagger.json`):

- query parameters must be declared for the operation and have the declared type;
- a JSON body must match the operation's body schema with `$ref`s resolved and **unknown fields
  refused**, as the API server does: its gateway unmarshals with `DiscardUnknown: false`
  (kubeflow/pipelines backend/src/apiserver/common/utils.go, `CustomMarshaler`). Like protojson
  there, an int64 may be a JSON number or a decimal string. `readOnly` fields are refused and
  formats checked (RFC 3339 date-times); an operation without a body takes none;
- a multipart upload (swagger 2.0 `formData`) must carry exactly the declared form fields, the
  required ones present, a `file` field as a file part;
- the bearer token, when the stand-in is given one (`Authorization: Bearer ...`; else 401).

On top of the swagger it applies the checks the real API server makes, after the upstream file
named (paths in kubeflow/pipelines, backend/src/apiserver/):

- uploads (server/pipeline_upload_server.go): the pipeline's name from `name`, else
  `display_name`, else the file name; the first version is named after the pipeline;
  `pipelineid` is required for a version; an existing name is 409; of the file's YAML documents
  exactly one is the pipeline spec, the platform spec rides along (template/v2_template.go);
- names unique per namespace: pipelines (model/pipeline.go, unique index namespace_name) and
  experiments (model/experiment.go, unique index idx_name_namespace); versions per pipeline;
- recurring runs (server/api_converter.go, `toModelJob`, `toModelJobEnabled`): max_concurrency
  in 1-10, the cron parsed as robfig/cron v1 `cron.Parse` does, an unspecified mode is disabled;
- list filters (server/list_request_util.go, `parseAPIFilter`): jsonpb, so field names in
  snake_case or lowerCamelCase and operations by name or number (kfp.Client sends `1`,
  `stringValue`); pipelines filter on `name` (model/pipeline.go, `pipelineAPIToModelFieldMap`);
  a page holds 20 items unless asked, at most 200 (`defaultPageSize`, `maxPageSize`);
- references to existing pipelines, versions and experiments (404).

Beyond upstream (a client bug, caught here): run parameters the pipeline spec does not declare.
Invalid requests get 400 with the message, as a `googleRpcStatus` body. Every answer is itself
checked against the operation's response schema (a mismatch is a 500: a stand-in bug, never
hidden).

Runs move through `run_states` (default PENDING, RUNNING, SUCCEEDED), one step per GET, so a
client's wait loop can be tested; `inject(operation, status)` queues failures (503, 403, ...);
`requests` records every request (`Recorded`) for assertions.

Standalone, for a rehearsal in which a container creates a run through it:

    python -m tests.support.kfp_standin --host 127.0.0.1 --port 8888 --record requests.jsonl

serves until killed and appends every request, accepted or refused, to the record file as a JSON
line (`Recorded.to_json`): time, method, path, operation, params, body (the JSON body; a form's
files as name, size and sha256), bearer (whether a token came), status, errors (validation),
message (any other refusal) and response.
"""

from __future__ import annotations

import argparse
import base64
import copy
import email.parser
import email.policy
import hashlib
import itertools
import json
import re
import signal
import sys
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from components.common.cron import robfig_parse_errors
from tests.support.servers import send_json

ROOT = Path(__file__).resolve().parents[2]
SWAGGER = ROOT / "components" / "common" / "schemas" / "kfp-api-v2beta1.swagger.json"
# google.rpc.Code values used in error bodies
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster
_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 500: 13, 501: 12, 503: 14}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass
class Recorded:
    """One request as the stand-in saw it. `body` is the parsed JSON body; `form` maps form
    fields to (filename, bytes); `status` is the answer's HTTP status; `errors` why the request
    broke the swagger, `message` any other refusal."""

    method: str
    path: str
    operation: str | None
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any = None
    form: dict[str, tuple[str | None, bytes]] = field(default_factory=dict)
    status: int = 0
    response: Any = None
    errors: list[str] = field(default_factory=list)
    message: str = ""
    time: str = field(default_factory=lambda: _now())

    def to_json(self) -> dict[str, Any]:
        """The record file's line: the request in JSON terms (files by size and sha256; a
        version's pipeline_spec, which echoes the upload, left out of the response)."""
        response = self.response
        if isinstance(response, dict) and "pipeline_spec" in response:
            response = {**response, "pipeline_spec": "(omitted: the uploaded spec)"}
        return {
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "operation": self.operation,
            "params": {k: v[0] if len(v) == 1 else v for k, v in self.query.items()},
            "body": self.body,
            "form": {
                name: {"filename": filename, "size": len(data), "sha256": _sha256(data)}
                for name, (filename, data) in self.form.items()
            },
            "bearer": self.headers.get("authorization", "").startswith("Bearer "),
            "status": self.status,
            "errors": self.errors,
            "message": self.message,
            "response": response,
        }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- the swagger


def _strict(node: Any, request: bool = False) -> Any:
    """A copy of a schema whose objects that list their properties refuse unknown ones; in a
    request, an int64 string may also be a JSON number (protojson reads both)."""
    if isinstance(node, list):
        return [_strict(n, request) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v, request) for k, v in node.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if request and out.get("format") in ("int64", "uint64") and out.get("type") == "string":
        out["type"] = ["string", "integer"]
    return out


@cache
def _swagger() -> dict[str, Any]:
    return json.loads(SWAGGER.read_text())


@cache
def _operations() -> list[tuple[re.Pattern, str, dict]]:
    """(path regex, method, operation) for every swagger operation; literal paths first, so
    /pipelines/upload wins over /pipelines/{pipeline_id}."""
    ops = []
    for path, methods in _swagger()["paths"].items():
        pattern = re.sub(r"\{([^}]+)\}", lambda m: f"(?P<{_group(m[1])}>[^/:]+)", path)
        for method, op in methods.items():
            ops.append((path.count("{"), re.compile(f"^{pattern}$"), method.upper(), op))
    ops.sort(key=lambda o: o[0])
    return [(p, m, op) for _, p, m, op in ops]


def _group(name: str) -> str:
    return name.replace(".", "__")


def _format_checker() -> Any:
    from jsonschema import FormatChecker

    checker = FormatChecker(formats=())

    @checker.checks("int64")
    def _int64(value: Any) -> bool:
        return not isinstance(value, str) or re.fullmatch(r"-?\d+", value) is not None

    @checker.checks("int32")
    def _int32(value: Any) -> bool:
        return not isinstance(value, int) or -(2**31) <= value < 2**31

    @checker.checks("date-time")
    def _date_time(value: Any) -> bool:
        if not isinstance(value, str):
            return True
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return False
        return "T" in value

    @checker.checks("byte")
    def _byte(value: Any) -> bool:
        try:
            base64.b64decode(value, validate=True)
        except (ValueError, TypeError):
            return False
        return True

    return checker


def _read_only(validator: Any, value: Any, instance: Any, schema: dict) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if value is True:
        yield ValidationError("is output only: a request must not set it")


@cache
def _validator(ref: str, request: bool) -> Any:
    from jsonschema import Draft4Validator, validators

    definitions = _strict(_swagger()["definitions"], request)
    extra = {"readOnly": _read_only} if request else {}
    cls = validators.extend(Draft4Validator, extra)
    schema = {"definitions": definitions, **_strict(json.loads(ref), request)}
    return cls(schema, format_checker=_format_checker())


def schema_errors(instance: Any, schema: dict, *, request: bool = True) -> list[str]:
    """Why `instance` does not match a swagger `schema` ({"$ref": ...} or inline), strictly."""
    validator = _validator(json.dumps(schema, sort_keys=True), request)
    errors = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path))):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        message = error.message
        if error.validator == "additionalProperties" and error.validator_value is False:
            known = error.schema.get("properties", {})
            message = f"unknown field(s) {sorted(set(error.instance) - set(known))}"
        elif error.validator == "format":
            message = f"{error.instance!r} is not a valid {error.validator_value}"
        errors.append(f"{where.lstrip('.') or '(body)'}: {message}")
    return errors


# ---------------------------------------------------------------- request checks


def _check_query(op: dict, query: dict[str, list[str]]) -> list[str]:
    declared = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
    errors = []
    for name, values in query.items():
        param = declared.get(name)
        if param is None:
            errors.append(f"query parameter {name!r} is not declared (known: {sorted(declared)})")
            continue
        if len(values) > 1:
            errors.append(f"query parameter {name!r} given {len(values)} times")
        value = values[-1]
        if param.get("type") == "integer" and not re.fullmatch(r"-?\d+", value):
            errors.append(f"query parameter {name!r}: {value!r} is not an integer")
        if param.get("type") == "boolean" and value not in ("true", "false"):
            errors.append(f"query parameter {name!r}: {value!r} is not true or false")
    for name, param in declared.items():
        if param.get("required") and name not in query:
            errors.append(f"query parameter {name!r} is required")
    return errors


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise ApiError(400, "the body is not a multipart/form-data message")
    form: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            raise ApiError(400, "a form part has no name")
        if name in form:
            raise ApiError(400, f"form field {name!r} given twice")
        form[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return form


def _check_form(op: dict, form: dict[str, tuple[str | None, bytes]]) -> list[str]:
    declared = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "formData"}
    errors = [
        f"form field {name!r} is not declared (known: {sorted(declared)})"
        for name in form
        if name not in declared
    ]
    for name, param in declared.items():
        if name not in form:
            if param.get("required"):
                errors.append(f"form field {name!r} is required")
        elif param.get("type") == "file" and form[name][0] is None:
            errors.append(f"form field {name!r} must be a file part (with a filename)")
    return errors


# v2beta1 filter.proto's PredicateOperation numbers (as kfp.client.client._FILTER_OPERATIONS)
_OPERATIONS = {
    1: "EQUALS",
    2: "NOT_EQUALS",
    3: "GREATER_THAN",
    5: "GREATER_THAN_EQUALS",
    6: "LESS_THAN",
    7: "LESS_THAN_EQUALS",
    8: "IN",
    9: "IS_SUBSTRING",
}


def _protojson_filter(spec: Any) -> Any:
    """A filter as jsonpb reads it, in the swagger's spelling: lowerCamelCase field names to
    snake_case, operation numbers to names."""
    if isinstance(spec, list):
        return [_protojson_filter(item) for item in spec]
    if not isinstance(spec, dict):
        return spec
    out = {}
    for key, value in spec.items():
        key = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower()
        if key == "operation" and isinstance(value, int):
            value = _OPERATIONS.get(value, value)
        out[key] = _protojson_filter(value)
    return out


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # ordered within a second


# ---------------------------------------------------------------- the server


class KfpStandin:
    """Start with `with KfpStandin() as kfp:`; `kfp.url` is the host to give the client.

    `token`: require `Authorization: Bearer <token>`. `run_states`: the states a run passes
    through, one per GET. `multi_user`: what healthz reports. `host`/`port`: where to listen
    (default: 127.0.0.1, a free port). `record`: a file to append each request to (JSON lines)."""

    def __init__(
        self,
        token: str | None = None,
        run_states: Sequence[str] = ("PENDING", "RUNNING", "SUCCEEDED"),
        multi_user: bool = False,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        record: str | Path | None = None,
    ) -> None:
        self.token = token
        self.host, self.port = host, port
        self.record = Path(record) if record else None
        self.run_states = list(run_states)
        self.multi_user = multi_user
        self.requests: list[Recorded] = []
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}  # version id -> version (with pipeline_id)
        self.specs: dict[str, dict] = {}  # version id -> pipeline spec
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.recurring_runs: dict[str, dict] = {}
        self._steps: dict[str, int] = {}
        self._faults: dict[str, list[tuple[int, str]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> KfpStandin:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                standin._serve(self)

            do_GET = do_POST = do_DELETE = do_PATCH = _handle

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )  # a short poll: stop() returns at once
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> KfpStandin:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the stand-in first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def inject(self, operation: str, status: int, times: int = 1, message: str = "") -> None:
        """The next `times` calls of `operation` (a swagger operationId) answer `status`."""
        text = message or f"injected failure {status}"
        self._faults.setdefault(operation, []).extend([(status, text)] * times)

    def calls(self, operation: str) -> list[Recorded]:
        return [r for r in self.requests if r.operation == operation]

    # ------------------------------------------------------------ dispatch

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(handler.path)
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        record = Recorded(
            handler.command,
            parsed.path,
            None,
            query,
            {k.lower(): v for k, v in handler.headers.items()},
        )
        try:
            status, answer = 200, self._dispatch(handler, parsed.path, query, raw, record)
        except ApiError as exc:
            status, answer = exc.status, {"code": _CODES.get(exc.status, 2), "message": str(exc)}
            record.message = "" if record.errors else str(exc)
        record.status, record.response = status, answer
        with self._lock:
            self.requests.append(record)
            if self.record is not None:
                with self.record.open("a") as out:
                    out.write(json.dumps(record.to_json(), default=str) + "\n")
        send_json(handler, status, answer)

    def _dispatch(
        self,
        handler: BaseHTTPRequestHandler,
        path: str,
        query: dict[str, list[str]],
        raw: bytes,
        record: Recorded,
    ) -> Any:
        route = self._route(handler.command, path)
        op, params = route
        name = op.get("operationId", "")
        record.operation = name
        faults = self._faults.get(name)
        if faults:
            status, message = faults.pop(0)
            raise ApiError(status, message)
        if self.token is not None:
            auth = handler.headers.get("Authorization", "")
            if auth != f"Bearer {self.token}":
                why = "no bearer token" if not auth else "the bearer token is not valid"
                raise ApiError(401, f"Unauthenticated: {why}")
        errors = _check_query(op, query)
        body, form = self._read_body(op, handler.headers.get("Content-Type", ""), raw, errors)
        record.body, record.form, record.errors = body, form, errors
        if errors:
            raise ApiError(400, f"Invalid input for {name}: " + "; ".join(errors))
        handle = getattr(self, f"_op_{name}", None)
        if handle is None:
            raise ApiError(501, f"{name} is not implemented by the KFP stand-in")
        args = {k: v[-1] for k, v in query.items()}
        with self._lock:
            answer = handle(params, args, body, form)
        problems = schema_errors(answer, op["responses"]["200"]["schema"], request=False)
        if problems:
            raise ApiError(500, f"stand-in bug: the {name} answer breaks the swagger: {problems}")
        return answer

    def _route(self, method: str, path: str) -> tuple[dict, dict[str, str]]:
        allowed = []
        for pattern, op_method, op in _operations():
            match = pattern.match(path)
            if match:
                if op_method == method:
                    params = {k.replace("__", "."): v for k, v in match.groupdict().items()}
                    return op, {k: urllib.parse.unquote(v) for k, v in params.items()}
                allowed.append(op_method)
        if allowed:
            raise ApiError(405, f"{method} {path}: method not allowed (allowed: {allowed})")
        raise ApiError(404, f"{method} {path}: no such endpoint in the KFP v2beta1 API")

    @staticmethod
    def _read_body(
        op: dict, content_type: str, raw: bytes, errors: list[str]
    ) -> tuple[Any, dict[str, tuple[str | None, bytes]]]:
        params = op.get("parameters", [])
        body_param = next((p for p in params if p["in"] == "body"), None)
        if any(p["in"] == "formData" for p in params):
            if not content_type.startswith("multipart/form-data"):
                raise ApiError(400, f"expected multipart/form-data, got {content_type!r}")
            form = _parse_multipart(content_type, raw)
            errors.extend(_check_form(op, form))
            return None, form
        if body_param is None:
            if raw.strip():
                errors.append(f"{op['operationId']} takes no request body")
            return None, {}
        if not content_type.startswith("application/json"):
            raise ApiError(400, f"expected an application/json body, got {content_type!r}")
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise ApiError(400, f"the body is not JSON: {exc}") from exc
        if body is None and body_param.get("required"):
            errors.append(f"body {body_param['name']!r} is required")
        elif body is not None:
            errors.extend(schema_errors(body, body_param["schema"]))
        return body, {}

    # ------------------------------------------------------------ helpers

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):04d}"

    @staticmethod
    def _filter(items: list[dict], text: str | None) -> list[dict]:
        """Apply a v2beta1 Filter (EQUALS / NOT_EQUALS / IN / IS_SUBSTRING on string fields)."""
        if not text:
            return items
        try:
            spec = json.loads(text)
        except ValueError as exc:
            raise ApiError(400, f"filter is not JSON: {exc}") from exc
        spec = _protojson_filter(spec)
        errors = schema_errors(spec, {"$ref": "#/definitions/v2beta1Filter"})
        if errors:
            raise ApiError(400, "Invalid filter: " + "; ".join(errors))
        for pred in spec.get("predicates", []):
            key, op = pred.get("key"), pred.get("operation")
            value = pred.get("string_value")
            tests = {
                "EQUALS": lambda v, value=value: v == value,
                "NOT_EQUALS": lambda v, value=value: v != value,
                "IS_SUBSTRING": lambda v, value=value: value is not None and value in (v or ""),
                "IN": lambda v, pred=pred: v in pred.get("string_values", {}).get("values", []),
            }
            if op not in tests:
                raise ApiError(400, f"filter operation {op!r} is not supported by the stand-in")
            items = [i for i in items if tests[op](i.get(key))]
        return items

    @staticmethod
    def _page(items: list[dict], key: str, args: dict[str, str]) -> dict:
        start = int(args.get("page_token") or 0)
        size = min(int(args.get("page_size") or 0) or 20, 200)  # list_request_util.go
        page = items[start : start + size]
        answer: dict[str, Any] = {key: page, "total_size": len(items)}
        if start + size < len(items):
            answer["next_page_token"] = str(start + size)
        return answer

    @staticmethod
    def _sorted(items: list[dict], sort_by: str | None) -> list[dict]:
        if not sort_by:
            return items
        field_name, _, order = sort_by.partition(" ")
        return sorted(items, key=lambda i: str(i.get(field_name, "")), reverse=order == "desc")

    def _pipeline_spec(self, form: dict[str, tuple[str | None, bytes]]) -> dict:
        """The upload's pipeline spec. Like template/v2_template.go `NewV2SpecTemplate`: the
        YAML documents are read in turn, exactly one is the pipeline spec, the others (the
        platform spec kfp-kubernetes adds) ride along."""
        filename, content = form["uploadfile"]
        if len(content) > 32 * 1024 * 1024:
            raise ApiError(400, "the pipeline file is larger than 32MB")
        try:
            docs = [d for d in yaml.load_all(content, Loader=_YAML_LOADER) if d is not None]
        except yaml.YAMLError as exc:
            raise ApiError(400, f"{filename}: not YAML: {exc}") from exc
        specs = [d for d in docs if isinstance(d, dict) and "pipelineInfo" in d]
        if len(specs) > 1:
            raise ApiError(400, f"{filename}: multiple pipeline specs provided")
        spec = specs[0] if specs else (docs[0] if docs else None)
        missing = [k for k in ("pipelineInfo", "root", "schemaVersion") if not (spec or {}).get(k)]
        if not isinstance(spec, dict) or missing:
            raise ApiError(400, f"{filename}: not a KFP pipeline spec (missing {missing})")
        return json.loads(json.dumps(spec, default=str))  # JSON-able, as the server stores it

    def _new_version(self, pipeline_id: str, name: str, description: str, spec: dict) -> dict:
        if any(
            v["pipeline_id"] == pipeline_id and v["name"] == name for v in self.versions.values()
        ):
            raise ApiError(409, f"Already exist error: pipeline version {name!r} exists")
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": self._id("version"),
            "name": name,
            "display_name": name,
            "created_at": _now(),
            "pipeline_spec": spec,
        }
        if description:
            version["description"] = description
        self.versions[version["pipeline_version_id"]] = version
        self.specs[version["pipeline_version_id"]] = spec
        return version

    def _resolve(self, ref: dict | None) -> str:
        """The version a pipeline_version_reference points at (the latest if unset)."""
        if not ref or not ref.get("pipeline_id"):
            raise ApiError(400, "pipeline_version_reference.pipeline_id is required")
        if ref["pipeline_id"] not in self.pipelines:
            raise ApiError(404, f"pipeline {ref['pipeline_id']} not found")
        version_id = ref.get("pipeline_version_id")
        if version_id:
            version = self.versions.get(version_id)
            if version is None or version["pipeline_id"] != ref["pipeline_id"]:
                raise ApiError(404, f"pipeline version {version_id} not found")
            return version_id
        own = [v for v in self.versions.values() if v["pipeline_id"] == ref["pipeline_id"]]
        return max(own, key=lambda v: v["created_at"])["pipeline_version_id"]

    def _check_parameters(self, version_id: str, runtime_config: dict | None) -> None:
        declared = self.specs[version_id]["root"].get("inputDefinitions", {}).get("parameters", {})
        unknown = sorted(set((runtime_config or {}).get("parameters", {})) - set(declared))
        if unknown:
            raise ApiError(400, f"parameters {unknown} are not declared by the pipeline")

    def _check_experiment(self, experiment_id: str | None) -> None:
        if experiment_id and experiment_id not in self.experiments:
            raise ApiError(404, f"experiment {experiment_id} not found")

    # ------------------------------------------------------------ operations

    def _op_HealthzService_GetHealthz(self, params, args, body, form) -> dict:
        return {"multi_user": self.multi_user, "pipeline_store": "database"}

    def _op_PipelineService_ListPipelines(self, params, args, body, form) -> dict:
        namespace = args.get("namespace", "")
        found = [p for p in self.pipelines.values() if p.get("namespace", "") == namespace]
        found = self._sorted(self._filter(found, args.get("filter")), args.get("sort_by"))
        return self._page(found, "pipelines", args)

    def _op_PipelineService_GetPipelineByName(self, params, args, body, form) -> dict:
        namespace = args.get("namespace", "")
        for pipeline in self.pipelines.values():
            if pipeline["name"] == params["name"] and pipeline.get("namespace", "") == namespace:
                return pipeline
        raise ApiError(404, f"pipeline {params['name']!r} not found")

    def _op_UploadPipeline(self, params, args, body, form) -> dict:
        spec = self._pipeline_spec(form)
        name = args.get("name") or spec["pipelineInfo"].get("name")
        namespace = args.get("namespace", "")
        if any(
            p["name"] == name and p.get("namespace", "") == namespace
            for p in self.pipelines.values()
        ):
            raise ApiError(409, f"Already exist error: a pipeline named {name!r} exists")
        pipeline = {
            "pipeline_id": self._id("pipeline"),
            "name": name,
            "display_name": args.get("display_name") or name,
            "created_at": _now(),
        }
        if args.get("description"):
            pipeline["description"] = args["description"]
        if namespace:
            pipeline["namespace"] = namespace
        self.pipelines[pipeline["pipeline_id"]] = pipeline
        # like KFP: the first version is named after the pipeline
        self._new_version(pipeline["pipeline_id"], name, args.get("description", ""), spec)
        return pipeline

    def _op_UploadPipelineVersion(self, params, args, body, form) -> dict:
        pipeline_id = args.get("pipelineid")
        if not pipeline_id:
            raise ApiError(400, "pipelineid is required to upload a pipeline version")
        if pipeline_id not in self.pipelines:
            raise ApiError(404, f"pipeline {pipeline_id} not found")
        spec = self._pipeline_spec(form)
        name = args.get("name") or form["uploadfile"][0] or ""
        if not name:
            raise ApiError(400, "a pipeline version needs a name")
        return self._new_version(pipeline_id, name, args.get("description", ""), spec)

    def _op_PipelineService_ListPipelineVersions(self, params, args, body, form) -> dict:
        if params["pipeline_id"] not in self.pipelines:
            raise ApiError(404, f"pipeline {params['pipeline_id']} not found")
        own = [v for v in self.versions.values() if v["pipeline_id"] == params["pipeline_id"]]
        own = self._sorted(self._filter(own, args.get("filter")), args.get("sort_by"))
        return self._page(own, "pipeline_versions", args)

    def _op_ExperimentService_ListExperiments(self, params, args, body, form) -> dict:
        namespace = args.get("namespace", "")
        found = [e for e in self.experiments.values() if e.get("namespace", "") == namespace]
        found = self._sorted(self._filter(found, args.get("filter")), args.get("sort_by"))
        return self._page(found, "experiments", args)

    def _op_ExperimentService_CreateExperiment(self, params, args, body, form) -> dict:
        name = body.get("display_name")
        if not name:
            raise ApiError(400, "Experiment name cannot be empty")
        namespace = body.get("namespace", "")
        for experiment in self.experiments.values():
            if experiment["display_name"] == name and experiment.get("namespace", "") == namespace:
                raise ApiError(409, f"Already exist error: experiment {name!r} exists")
        experiment = {
            **copy.deepcopy(body),
            "experiment_id": self._id("experiment"),
            "created_at": _now(),
            "storage_state": "AVAILABLE",
        }
        self.experiments[experiment["experiment_id"]] = experiment
        return experiment

    def _op_RunService_CreateRun(self, params, args, body, form) -> dict:
        if not body.get("display_name"):
            raise ApiError(400, "Run name cannot be empty")
        version_id = self._resolve(body.get("pipeline_version_reference"))
        self._check_parameters(version_id, body.get("runtime_config"))
        experiment_id = body.get("experiment_id") or args.get("experiment_id")
        self._check_experiment(experiment_id)
        now = _now()
        run = {
            **copy.deepcopy(body),
            "run_id": self._id("run"),
            "created_at": now,
            "scheduled_at": now,
            "storage_state": "AVAILABLE",
            "state": self.run_states[0],
            "state_history": [{"update_time": now, "state": self.run_states[0]}],
        }
        if experiment_id:
            run["experiment_id"] = experiment_id
        self.runs[run["run_id"]] = run
        self._steps[run["run_id"]] = 0
        return run

    def _op_RunService_GetRun(self, params, args, body, form) -> dict:
        run = self.runs.get(params["run_id"])
        if run is None:
            raise ApiError(404, f"run {params['run_id']} not found")
        step = min(self._steps[run["run_id"]] + 1, len(self.run_states) - 1)
        self._steps[run["run_id"]] = step
        state = self.run_states[step]
        if state != run["state"]:
            now = _now()
            run["state"] = state
            run["state_history"].append({"update_time": now, "state": state})
            if state in ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"):
                run["finished_at"] = now
        return run

    def _op_RecurringRunService_CreateRecurringRun(self, params, args, body, form) -> dict:
        if not body.get("display_name"):
            raise ApiError(400, "Recurring run's name cannot be empty")
        concurrency = int(body.get("max_concurrency") or 0)
        if not 1 <= concurrency <= 10:
            raise ApiError(
                400,
                "Max concurrency of a recurring run must be at least 1 and at most 10. "
                f"Received {concurrency}",
            )
        trigger = body.get("trigger") or {}
        cron = (trigger.get("cron_schedule") or {}).get("cron")
        periodic = trigger.get("periodic_schedule")
        if cron is None and not periodic:
            raise ApiError(400, "a recurring run needs a trigger (cron_schedule or periodic)")
        if cron is not None:
            problems = robfig_parse_errors(cron)
            if problems:
                raise ApiError(
                    400,
                    "Schedule cron is not a supported format(https://godoc.org/github.com/"
                    f"robfig/cron). Error: {'; '.join(problems)}",
                )
        version_id = self._resolve(body.get("pipeline_version_reference"))
        self._check_parameters(version_id, body.get("runtime_config"))
        self._check_experiment(body.get("experiment_id"))
        enabled = body.get("mode") == "ENABLE"  # KFP: an unspecified mode is disabled
        now = _now()
        recurring = {
            **copy.deepcopy(body),
            "recurring_run_id": self._id("recurring"),
            "created_at": now,
            "updated_at": now,
            "mode": "ENABLE" if enabled else "DISABLE",
            "status": "ENABLED" if enabled else "DISABLED",
            "max_concurrency": str(concurrency),  # protojson writes an int64 as a string
        }
        if periodic and "interval_second" in periodic:
            recurring["trigger"]["periodic_schedule"]["interval_second"] = str(
                periodic["interval_second"]
            )
        self.recurring_runs[recurring["recurring_run_id"]] = recurring
        return recurring

    def _op_RecurringRunService_ListRecurringRuns(self, params, args, body, form) -> dict:
        found = list(self.recurring_runs.values())
        if args.get("experiment_id"):
            found = [r for r in found if r.get("experiment_id") == args["experiment_id"]]
        found = self._sorted(self._filter(found, args.get("filter")), args.get("sort_by"))
        return self._page(found, "recurringRuns", args)

    def _op_RecurringRunService_DisableRecurringRun(self, params, args, body, form) -> dict:
        recurring = self.recurring_runs.get(params["recurring_run_id"])
        if recurring is None:
            raise ApiError(404, f"recurring run {params['recurring_run_id']} not found")
        recurring.update(mode="DISABLE", status="DISABLED", updated_at=_now())
        return {}


# ---------------------------------------------------------------- standalone


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.kfp_standin",
        description="Serve the stand-in KFP API until killed, recording every request.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--record", default=None, help="append each request here (JSON lines)")
    parser.add_argument("--token", default=None, help="require this bearer token")
    parser.add_argument(
        "--run-states", default="PENDING,RUNNING,SUCCEEDED", help="a run's states, one per GET"
    )
    parser.add_argument("--multi-user", action="store_true", help="what healthz reports")
    args = parser.parse_args(argv)
    standin = KfpStandin(
        token=args.token,
        run_states=args.run_states.split(","),
        multi_user=args.multi_user,
        host=args.host,
        port=args.port,
        record=args.record,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # killed: stop cleanly
    standin.start()
    print(f"KFP stand-in listening on {standin.url}", flush=True)
    try:
        signal.pause() if hasattr(signal, "pause") else threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
