"""Request validation from the model's feature spec: V1 rows and V2 tensors → one float64 matrix.

Every rejection is a `RequestError` naming the field (and the row for batches); the server turns
it into HTTP 400 with a JSON message. Rules (see README): every feature present, nothing else;
integer features take JSON integers only (no floats, no booleans); float features take finite
numbers; categorical codes must be in the declared domain; numeric values inside min/max; string
features take one of their declared texts (V2 datatype BYTES), mapped to its code
(components/common/categories.py) so the matrix holds codes like the model's training data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.common import categories

DEFAULT_MAX_BATCH = 10_000
V2_DATATYPES = {"int": "INT64", "float": "FP64", "string": "BYTES"}
_TENSOR_KEYS = frozenset(("name", "shape", "datatype", "data", "parameters"))
# an Open Inference Protocol request's top-level fields (model_name / model_version: as sent by
# KServe's InferenceRESTClient; they must agree with the URL's)
_V2_KEYS = frozenset(("id", "parameters", "inputs", "outputs", "model_name", "model_version"))
# Below this many rows a Python loop beats building numpy arrays for the domain checks
_VECTOR_MIN_ROWS = 32


class RequestError(ValueError):
    """A request the model cannot answer: HTTP 400 (or `status`) with this message."""

    def __init__(
        self, message: str, field: str | None = None, row: int | None = None, status: int = 400
    ) -> None:
        self.field = field
        self.row = row
        self.status = status
        super().__init__(message)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": str(self)}
        if self.field is not None:
            body["field"] = self.field
        if self.row is not None:
            body["row"] = self.row
        return body


@dataclass(frozen=True)
class FeatureRule:
    """What one feature accepts, compiled from its feature-spec entry."""

    name: str
    integer: bool
    low: float | None
    high: float | None
    codes: frozenset[int] | None  # categorical codes given as a list (a range uses low/high)
    categorical: bool
    texts: dict[str, int] | None = None  # a string feature: declared text -> code

    @classmethod
    def from_spec(cls, entry: dict[str, Any]) -> FeatureRule:
        categorical = entry["kind"] == "categorical"
        if categories.is_string(entry):
            return cls(entry["name"], True, None, None, None, True, categories.mapping(entry))
        low, high, codes = entry.get("min"), entry.get("max"), None
        values = entry.get("values")
        if isinstance(values, dict):
            low, high = values["min"], values["max"]
        elif isinstance(values, list):
            codes = frozenset(int(v) for v in values)
            low, high = min(codes), max(codes)
        return cls(entry["name"], entry["dtype"] == "int", low, high, codes, categorical)

    @property
    def datatype(self) -> str:
        if self.texts is not None:
            return V2_DATATYPES["string"]
        return V2_DATATYPES["int" if self.integer else "float"]

    def describe_domain(self) -> str:
        if self.texts is not None:
            shown = list(self.texts)
            return f"one of {shown[:8]}" + (f" ({len(shown)} values)" if len(shown) > 8 else "")
        if self.codes is not None:
            return f"one of {sorted(self.codes)}"
        if self.categorical:
            return f"a code in [{self.low:g}, {self.high:g}]"
        return f"[{_num(self.low, '-inf')}, {_num(self.high, 'inf')}]"


def _num(value: float | None, unbounded: str = "") -> str:
    return unbounded if value is None else f"{value:g}"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


class SpecValidator:
    """Validates requests against a feature spec; returns the raw feature matrix (spec order)."""

    def __init__(
        self,
        spec: dict[str, Any],
        max_batch: int = DEFAULT_MAX_BATCH,
        model_name: str | None = None,
        model_version: str | None = None,
    ) -> None:
        self.model_name = model_name  # a V2 body's model_name / model_version must agree
        self.model_version = model_version
        self.rules = [FeatureRule.from_spec(f) for f in spec["features"]]
        self.names = [r.name for r in self.rules]
        self.name_set = frozenset(self.names)
        self.max_batch = max_batch

    # ------------------------------------------------------------------ V1

    def v1(self, body: Any) -> np.ndarray:
        """`{"instances": [{feature: value, ...}, ...]}` → matrix (n, features)."""
        if not isinstance(body, dict):
            raise RequestError(f"the body must be a JSON object, not {_type_name(body)}")
        if "instances" not in body:
            raise RequestError('the body must hold "instances": a list of rows', "instances")
        extra = [k for k in body if k != "instances"]
        if extra:
            raise RequestError(f"unknown top-level field {extra[0]!r}", extra[0])
        rows = body["instances"]
        if not isinstance(rows, list):
            raise RequestError(f'"instances" must be a list, not {_type_name(rows)}', "instances")
        self._check_size(len(rows), "instances")
        if len(rows) == 1 and (raw := self._one_row(rows[0])) is not None:
            return raw
        names, name_set, width = self.names, self.name_set, len(self.names)
        for i, row in enumerate(rows):
            if type(row) is not dict:
                raise RequestError(
                    f"row {i}: expected an object {{feature: value}}, not {_type_name(row)}",
                    row=i,
                )
            if len(row) != width or row.keys() != name_set:
                self._row_fields(row, i)
        columns = [[row[name] for row in rows] for name in names]
        return self._matrix(columns, len(rows))

    def _one_row(self, row: Any) -> np.ndarray | None:
        """The common case, a single valid row, without per-column lists; None → the general
        path (which also words the error)."""
        if type(row) is not dict or len(row) != len(self.names):
            return None
        values = []
        for rule in self.rules:
            value = row.get(rule.name)
            kind = type(value)
            if rule.texts is not None:
                if kind is not str or value not in rule.texts:
                    return None
                values.append(rule.texts[value])
            elif kind is int or (kind is float and not rule.integer and math.isfinite(value)):
                if (rule.low is not None and value < rule.low) or (
                    rule.high is not None and value > rule.high
                ):
                    return None
                if rule.codes is not None and value not in rule.codes:
                    return None
                values.append(value)
            else:
                return None
        return np.array([values], dtype=np.float64)

    def _row_fields(self, row: dict[str, Any], i: int) -> None:
        missing = [n for n in self.names if n not in row]
        if missing:
            raise RequestError(f"row {i}: missing field {missing[0]!r}", missing[0], i)
        extra = [k for k in row if k not in self.name_set]
        raise RequestError(f"row {i}: unknown field {extra[0]!r}", extra[0], i)

    # ------------------------------------------------------------------ V2

    def v2(self, body: Any) -> np.ndarray:
        """Open Inference Protocol: one tensor per feature, shape [n] → matrix (n, features)."""
        if not isinstance(body, dict):
            raise RequestError(f"the body must be a JSON object, not {_type_name(body)}")
        unknown = [k for k in body if k not in _V2_KEYS]
        if unknown:
            raise RequestError(f"unknown top-level field {unknown[0]!r}", unknown[0])
        if "id" in body and not isinstance(body["id"], str):
            raise RequestError('"id" must be a string', "id")
        if len(body) > 1 + ("id" in body):  # more than inputs (and id): the optional fields
            self._v2_optional(body)
        tensors = body.get("inputs")
        if not isinstance(tensors, list) or not tensors:
            raise RequestError('"inputs" must be a non-empty list of tensors', "inputs")
        by_name: dict[str, dict[str, Any]] = {}
        for k, tensor in enumerate(tensors):
            if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
                raise RequestError(f"inputs[{k}]: expected a tensor object with a name", "inputs")
            name = tensor["name"]
            if name not in self.name_set:
                raise RequestError(f"unknown input tensor {name!r}", name)
            if name in by_name:
                raise RequestError(f"input tensor {name!r} given twice", name)
            by_name[name] = tensor
        missing = [n for n in self.names if n not in by_name]
        if missing:
            raise RequestError(f"missing input tensor {missing[0]!r}", missing[0])
        n: int | None = None
        columns = []
        for rule in self.rules:
            tensor = by_name[rule.name]
            extra = tensor.keys() - _TENSOR_KEYS
            if extra:
                raise RequestError(f"tensor {rule.name!r}: unknown field {min(extra)!r}", rule.name)
            if tensor.get("datatype") != rule.datatype:
                raise RequestError(
                    f"tensor {rule.name!r}: datatype must be {rule.datatype}, "
                    f"not {tensor.get('datatype')!r}",
                    rule.name,
                )
            shape, data = tensor.get("shape"), tensor.get("data")
            if (
                not isinstance(shape, list)
                or len(shape) != 1
                or type(shape[0]) is not int
                or shape[0] < 0
            ):
                raise RequestError(
                    f"tensor {rule.name!r}: shape must be [n] (one dimension), not {shape!r}",
                    rule.name,
                )
            if not isinstance(data, list) or len(data) != shape[0]:
                raise RequestError(
                    f"tensor {rule.name!r}: data must be a flat list of {shape[0]} values "
                    f"(its shape)",
                    rule.name,
                )
            if n is None:
                n = shape[0]
                self._check_size(n, rule.name)
            elif shape[0] != n:
                raise RequestError(
                    f"tensor {rule.name!r}: shape [{shape[0]}] differs from the other "
                    f"tensors' [{n}]",
                    rule.name,
                )
            columns.append(data)
        if n == 1:  # the common one-row request: the scalar checks
            row = {name: column[0] for name, column in zip(self.names, columns, strict=True)}
            if (raw := self._one_row(row)) is not None:
                return raw
        return self._matrix(columns, n or 0)

    def _v2_optional(self, body: dict[str, Any]) -> None:
        """model_name / model_version (clients such as KServe's InferenceRESTClient repeat the
        URL's) must agree with the served model; `parameters` is an object; `outputs` may only
        ask for `predictions`."""
        for key, served in (("model_name", self.model_name), ("model_version", self.model_version)):
            if key not in body:
                continue
            value = body[key]
            if not isinstance(value, str):
                raise RequestError(f'"{key}" must be a string', key)
            if served is not None and value != served:
                raise RequestError(
                    f"{key} {value!r} does not match the served model's {served!r}", key
                )
        if "parameters" in body and not isinstance(body["parameters"], dict):
            raise RequestError('"parameters" must be an object', "parameters")
        if "outputs" in body:
            outputs = body["outputs"]
            if not isinstance(outputs, list):
                raise RequestError('"outputs" must be a list of requested outputs', "outputs")
            for k, output in enumerate(outputs):
                if not isinstance(output, dict) or not isinstance(output.get("name"), str):
                    raise RequestError(f"outputs[{k}]: expected an object with a name", "outputs")
                if output["name"] != "predictions":
                    raise RequestError(
                        f"unknown output {output['name']!r} (the model answers 'predictions')",
                        "outputs",
                    )
                extra = output.keys() - {"name", "parameters"}
                if extra:
                    raise RequestError(f"outputs[{k}]: unknown field {min(extra)!r}", "outputs")

    # ------------------------------------------------------------------ shared

    def _check_size(self, n: int, field: str) -> None:
        if n == 0:
            raise RequestError("empty batch: send at least one row", field)
        if n > self.max_batch:
            raise RequestError(
                f"batch of {n} rows exceeds the limit of {self.max_batch}", field, status=413
            )

    def _matrix(self, columns: list[list[Any]], n: int) -> np.ndarray:
        out = np.empty((n, len(self.rules)), dtype=np.float64)
        for j, (rule, values) in enumerate(zip(self.rules, columns, strict=True)):
            out[:, j] = _check_column(rule, values, n)
        return out


def _check_column(rule: FeatureRule, values: list[Any], n: int) -> np.ndarray | list[Any]:
    if rule.texts is not None:
        return _text_column(rule, values, n)
    types = set(map(type, values))
    allowed = {int} if rule.integer else {int, float}
    if not types <= allowed:
        i, value = next((i, v) for i, v in enumerate(values) if type(v) not in allowed)
        want = "an integer" if rule.integer else "a number"
        raise RequestError(
            f"{_where(i, n)}field {rule.name!r}: expected {want}, got {_type_name(value)} "
            f"{_short(value)}",
            rule.name,
            i,
        )
    if n < _VECTOR_MIN_ROWS:
        for i, value in enumerate(values):
            if not _in_domain(rule, value):
                _domain_error(rule, values, i, n)
        return values
    try:
        column = np.array(values, dtype=np.float64)
    except OverflowError:  # an integer beyond float range
        i = next(i for i, v in enumerate(values) if not _in_domain(rule, v))
        _domain_error(rule, values, i, n)
    bad = ~np.isfinite(column)
    if rule.low is not None:
        bad |= column < rule.low
    if rule.high is not None:
        bad |= column > rule.high
    if rule.codes is not None:
        bad |= ~np.isin(column, list(rule.codes))
    if bad.any():
        _domain_error(rule, values, int(np.flatnonzero(bad)[0]), n)
    return column


def _text_column(rule: FeatureRule, values: list[Any], n: int) -> list[int]:
    """A string feature's texts as their codes; a non-text or an undeclared text is a 400."""
    texts = rule.texts or {}
    out = []
    for i, value in enumerate(values):
        code = texts.get(value) if type(value) is str else None
        if code is None:
            problem = (
                f"value {_short(value)} is not one of the declared values "
                f"(allowed: {rule.describe_domain()})"
                if type(value) is str
                else f"expected a string, got {_type_name(value)} {_short(value)}"
            )
            raise RequestError(f"{_where(i, n)}field {rule.name!r}: {problem}", rule.name, i)
        out.append(code)
    return out


def _in_domain(rule: FeatureRule, value: int | float) -> bool:
    if type(value) is float and not math.isfinite(value):
        return False
    if rule.low is not None and value < rule.low:
        return False
    if rule.high is not None and value > rule.high:
        return False
    return rule.codes is None or value in rule.codes


def _domain_error(rule: FeatureRule, values: list[Any], i: int, n: int) -> None:
    value = values[i]
    if type(value) is float and not math.isfinite(value):
        problem = "is not a finite number"
    elif rule.categorical:
        problem = f"is an unseen category code (allowed: {rule.describe_domain()})"
    else:
        problem = f"is outside the declared domain {rule.describe_domain()}"
    raise RequestError(
        f"{_where(i, n)}field {rule.name!r}: value {_short(value)} {problem}", rule.name, i
    )


def _where(i: int, n: int) -> str:
    return f"row {i}: " if n > 1 else ""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
