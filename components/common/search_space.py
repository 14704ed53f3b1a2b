"""One search-space definition per algorithm, two renderings: Optuna distributions (the local
backend) and Katib v1beta1 parameter specs (the cluster backend).

A parameter is `{type: float|int|categorical, low, high, log, choices}`. Katib passes every value to
the trial as a string; `decode` turns it back into the parameter's type, so both backends hand the
estimator the same Python values.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Choice = int | float | str | bool


class ParamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: Annotated[list[Choice], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs `choices`")
            if self.low is not None or self.high is not None or self.log:
                raise ValueError("a categorical parameter takes `choices`, not low/high/log")
            if len({str(c) for c in self.choices}) != len(self.choices):
                raise ValueError("`choices` must be distinct (as text: Katib passes strings)")
            return self
        if self.choices is not None:
            raise ValueError(f"a {self.type} parameter takes low/high, not `choices`")
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs `low` and `high`")
        if self.low >= self.high:
            raise ValueError(f"low {self.low} must be below high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale parameter needs low > 0")
        if self.type == "int" and (
            not float(self.low).is_integer() or not float(self.high).is_integer()
        ):
            raise ValueError("an int parameter needs integer bounds")
        return self


SearchSpace = dict[str, ParamSpec]


# ---------------------------------------------------------------- Optuna


def to_optuna(space: SearchSpace) -> dict[str, Any]:
    """{name: optuna distribution}."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.type == "float":
            out[name] = FloatDistribution(spec.low, spec.high, log=spec.log)
        elif spec.type == "int":
            out[name] = IntDistribution(int(spec.low), int(spec.high), log=spec.log)
        else:
            out[name] = CategoricalDistribution(list(spec.choices))
    return out


# ---------------------------------------------------------------- Katib


def _number(value: float, as_int: bool) -> str:
    return str(int(value)) if as_int else repr(float(value))


def to_katib(space: SearchSpace) -> list[dict[str, Any]]:
    """Katib v1beta1 `parameters`: parameterType double|int|categorical, feasibleSpace as strings.

    Log scale is `feasibleSpace.distribution: logUniform` (Katib >= 0.18); linear is `uniform`.
    """
    params = []
    for name, spec in space.items():
        if spec.type == "categorical":
            feasible: dict[str, Any] = {"list": [str(c) for c in spec.choices]}
            kind = "categorical"
        else:
            as_int = spec.type == "int"
            feasible = {
                "min": _number(spec.low, as_int),
                "max": _number(spec.high, as_int),
                "distribution": "logUniform" if spec.log else "uniform",
            }
            kind = "int" if as_int else "double"
        params.append({"name": name, "parameterType": kind, "feasibleSpace": feasible})
    return params


def decode(space: SearchSpace, assignments: dict[str, str]) -> dict[str, Any]:
    """Katib's string assignments -> typed values (categorical: the matching choice itself)."""
    out: dict[str, Any] = {}
    for name, raw in assignments.items():
        spec = space.get(name)
        if spec is None:
            raise ValueError(f"unknown parameter {name!r}")
        if spec.type == "int":
            out[name] = int(float(raw))
        elif spec.type == "float":
            out[name] = float(raw)
        else:
            match = [c for c in spec.choices if str(c) == str(raw)]
            if not match:
                raise ValueError(f"{name}: {raw!r} is not one of {spec.choices}")
            out[name] = match[0]
    return out
