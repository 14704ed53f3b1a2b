"""One search-space definition, two renderings: the Optuna distributions (local backend) and the
Katib parameter specs (cluster backend) must agree on names, types, bounds and scale, and Katib's
string assignments must decode back into values the Optuna distribution could have produced."""

from __future__ import annotations

import math

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from pydantic import ValidationError

from components.common.config import load_pipeline_config
from components.common.search_space import ParamSpec, decode, to_katib, to_optuna

# Used when the config holds no search spaces (and to cover what the config may not: booleans,
# mixed-type choices, a log-scale int).
EXTRA_SPACES = {
    "edge_cases": {
        "lr": ParamSpec(type="float", low=1e-4, high=0.3, log=True),
        "depth": ParamSpec(type="int", low=2, high=12),
        "leaves": ParamSpec(type="int", low=8, high=512, log=True),
        "ratio": ParamSpec(type="float", low=0.1, high=1.0),
        "mixed": ParamSpec(type="categorical", choices=["sqrt", 0.5, 3, True]),
    }
}
KATIB_TYPE = {"float": "double", "int": "int", "categorical": "categorical"}


def _spaces() -> dict[str, dict[str, ParamSpec]]:
    configured = load_pipeline_config().model_training.search_spaces
    return {**{k: dict(v) for k, v in configured.items()}, **EXTRA_SPACES}


SPACES = _spaces()


def test_the_config_defines_a_space_per_family():
    configured = load_pipeline_config().model_training.search_spaces
    if not configured:
        pytest.skip("config/pipeline_config.yaml has no model_training.search_spaces yet")
    assert set(configured) >= {"lightgbm", "xgboost", "random_forest", "logistic_regression"}


@pytest.mark.parametrize("family", sorted(SPACES))
def test_optuna_and_katib_agree(family):
    space = SPACES[family]
    optuna = to_optuna(space)
    katib = to_katib(space)
    assert list(optuna) == [p["name"] for p in katib] == list(space)
    for param in katib:
        name, spec, dist = param["name"], space[param["name"]], optuna[param["name"]]
        feasible = param["feasibleSpace"]
        assert param["parameterType"] == KATIB_TYPE[spec.type]
        if spec.type == "categorical":
            assert isinstance(dist, CategoricalDistribution)
            assert feasible == {"list": [str(c) for c in dist.choices]}
            continue
        expected = FloatDistribution if spec.type == "float" else IntDistribution
        assert type(dist) is expected, name
        # bounds: Katib's strings parse back to exactly Optuna's bounds
        assert float(feasible["min"]) == dist.low and float(feasible["max"]) == dist.high
        if spec.type == "int":
            assert feasible["min"] == str(int(dist.low)) and feasible["max"] == str(int(dist.high))
        # scale
        assert dist.log == spec.log
        assert feasible["distribution"] == ("logUniform" if dist.log else "uniform")
        assert set(feasible) == {"min", "max", "distribution"}  # no step: continuous on both


def _samples(spec: ParamSpec) -> list:
    if spec.type == "categorical":
        return list(spec.choices)
    if spec.type == "int":
        return [int(spec.low), int(spec.high), int((spec.low + spec.high) // 2)]
    mid = math.sqrt(spec.low * spec.high) if spec.log else (spec.low + spec.high) / 2
    return [spec.low, spec.high, mid]


@pytest.mark.parametrize("family", sorted(SPACES))
def test_decode_round_trips_katib_strings(family):
    space = SPACES[family]
    optuna = to_optuna(space)
    for name, spec in space.items():
        for value in _samples(spec):
            # Katib hands every assignment to the trial as text
            decoded = decode(space, {name: str(value)})[name]
            assert decoded == value and type(decoded) is type(value), (name, value)
            dist = optuna[name]
            assert dist._contains(dist.to_internal_repr(decoded)), (name, decoded)


def test_decode_int_from_a_float_string():
    # hyperopt's loguniform sampler returns floats even for int parameters
    space = {"leaves": ParamSpec(type="int", low=8, high=512, log=True)}
    assert decode(space, {"leaves": "87.0"}) == {"leaves": 87}
    assert type(decode(space, {"leaves": "87.0"})["leaves"]) is int


def test_decode_rejects_unknown_names_and_choices():
    space = EXTRA_SPACES["edge_cases"]
    with pytest.raises(ValueError, match="unknown parameter 'nope'"):
        decode(space, {"nope": "1"})
    with pytest.raises(ValueError, match="not one of"):
        decode(space, {"mixed": "log2"})
    with pytest.raises(ValueError):
        decode(space, {"depth": "deep"})


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"type": "float", "low": 1.0, "high": 0.5}, "must be below high"),
        ({"type": "float", "low": 0.5, "high": 0.5}, "must be below high"),
        ({"type": "int", "low": 1, "high": 10.5}, "integer bounds"),
        ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "low > 0"),
        ({"type": "float", "low": 0.1}, "needs `low` and `high`"),
        ({"type": "categorical"}, "needs `choices`"),
        ({"type": "categorical", "choices": []}, "at least 1"),
        ({"type": "categorical", "choices": [1, "1"]}, "distinct"),
        ({"type": "categorical", "choices": ["a"], "low": 0}, "not low/high/log"),
        ({"type": "int", "low": 1, "high": 5, "choices": [1]}, "not `choices`"),
        ({"type": "float", "low": 0, "high": 1, "step": 0.1}, "Extra inputs"),
        ({"type": "double", "low": 0, "high": 1}, "Input should be"),
    ],
)
def test_invalid_param_specs_are_rejected(spec, reason):
    with pytest.raises(ValidationError, match=reason):
        ParamSpec.model_validate(spec)
