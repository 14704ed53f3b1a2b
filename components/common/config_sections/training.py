"""`feature_engineering` and `model_training`: split, features, tuning and training."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from components.common.config_sections.base import StrictModel
from components.common.config_sections.ingestion import Bound, check_window
from components.common.search_space import ParamSpec

ALGORITHMS = ("lightgbm", "xgboost", "random_forest", "logistic_regression")


class SplitConfig(StrictModel):
    method: Literal["time", "random"] = "time"
    # numbers for a number time column, ISO dates/datetimes (an end date: its whole day) for a
    # timestamp one
    train_window: tuple[Bound, Bound] = (2015, 2015)
    test_window: tuple[Bound, Bound] = (2016, 2016)
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    seed: int = 42

    @model_validator(mode="after")
    def _windows(self) -> SplitConfig:
        from components.common import timekeys

        for name in ("train_window", "test_window"):
            try:
                check_window(*getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        if self.method == "time":
            kinds = {isinstance(b, str) for b in (*self.train_window, *self.test_window)}
            if len(kinds) > 1:
                raise ValueError("train_window and test_window: give numbers or dates, not both")
            time = {"kind": "timestamp" if kinds == {True} else "number"}
            if timekeys.overlap(self.train_window, self.test_window, time):
                raise ValueError("train_window and test_window overlap")
        return self


class DegradeConfig(StrictModel):
    """Deliberately worsen the training rows (the test rows stay intact): rehearses the quality
    gate with a model that must be blocked. Off by default."""

    label_noise: Annotated[float, Field(ge=0, le=0.5)] = 0.0  # share of train labels flipped
    drop_features: list[str] = []  # e.g. the strongest ones: [SCHL, AGEP]
    seed: int = 0

    @property
    def active(self) -> bool:
        return self.label_noise > 0 or bool(self.drop_features)


class FeatureConfig(StrictModel):
    split: SplitConfig = SplitConfig()
    scaling_method: Literal["standard", "minmax", "robust", "none"] = "standard"
    categorical_encoding: Literal["native", "onehot", "ordinal"] = "native"
    feature_selection: Literal["none", "rfe", "mutual_info", "importance"] = "none"
    max_features: Annotated[int, Field(ge=1)] | None = None
    degrade: DegradeConfig = DegradeConfig()

    @model_validator(mode="after")
    def _selection_needs_count(self) -> FeatureConfig:
        if self.feature_selection != "none" and self.max_features is None:
            raise ValueError(f"feature_selection {self.feature_selection!r} needs max_features")
        return self


class KatibConfig(StrictModel):
    """The Katib backend (`tuning_backend: katib`): where and how the Experiment runs.

    `namespace`: where the Experiment and its trial pods run: `mlpipe` (where manifests/ grants
    the pipeline's service account its Katib rights, labels the namespace for Katib's collector
    injection and lets trial pods reach the object store, not MLflow); null: the namespace the
    tune task's own pod runs in (its service-account mount tells). `staging_url`: where the tune
    task copies what trials read (default `<MLPIPE_STATE_DIR>/katib-staging`); `env_config_map`:
    the ConfigMap in that namespace the trials take the object store's endpoint from (default
    `runtime.env_config_map`); `s3_secret`: the Secret there with the trials' object-store
    credentials, a read-only key (trials only read what the tune task staged; default
    `mlpipe-s3-readonly`, which the model servers' ServiceAccount lists too); `s3_secret`,
    `env_from_secrets` and `env` may not give trials the MLflow login or `MLFLOW_*` settings
    (refused).
    `resources`: the trial container's requests and limits (both, cpu and memory; default
    requests 1 CPU / 2Gi, limits 2 CPU / 4Gi)."""

    namespace: str | None = "mlpipe"
    staging_url: str | None = None
    env_config_map: str = "mlpipe-pipeline-env"
    s3_secret: str = "mlpipe-s3-readonly"
    algorithm: str = "tpe"
    algorithm_settings: dict[str, Any] = {}
    parallel_trials: Annotated[int, Field(ge=1)] = 2
    max_failed_trials: Annotated[int, Field(ge=0)] | None = None
    goal: float | None = None
    early_stopping: dict[str, int] | None = {"min_trials_required": 5, "start_step": 1}
    timeout_s: Annotated[float, Field(gt=0)] = 3600.0
    poll_s: Annotated[float, Field(gt=0)] = 15.0
    image: str | None = None  # default: the project's pipeline image
    resources: dict[str, Any] | None = None
    env: dict[str, str] = {}
    env_from_secrets: list[str] = []  # Secrets mounted as env (S3 credentials for the data)
    service_account: str | None = None


class TrainingConfig(StrictModel):
    algorithms: Annotated[
        list[Literal["lightgbm", "xgboost", "random_forest", "logistic_regression"]],
        Field(min_length=1),
    ] = ["lightgbm"]
    cv_folds: Annotated[int, Field(ge=2, le=10)] = 3
    cv_strategy: Literal["stratified", "time"] = "stratified"
    # the final model: `folds` = the mean of the k cross-validation fold models of the best params
    # (components/common/fold_ensemble.py; stratified folds only: time folds train on ever fewer
    # rows, so those refit), `refit` = one model on all rows with the folds' rounds
    final_fit: Literal["folds", "refit"] = "folds"
    hyperparameter_tuning: bool = False
    tuning_backend: Literal["optuna", "katib"] = "optuna"
    # the study stops on a trial count (reproducible); time_budget_s is an optional wall-time cap
    # (when it binds, the result depends on machine speed and the tune result says so)
    max_trials: Annotated[int, Field(ge=1, le=1000)] = 12
    # the best params of up to this many earlier studies (same algorithm and features, the
    # champion's first) are the study's first trials after the configured params; 0 = off
    warm_start: Annotated[int, Field(ge=0, le=20)] = 3
    time_budget_s: Annotated[float, Field(gt=0)] | None = None
    tuning_parallelism: Annotated[int, Field(ge=1, le=8)] = 2
    threads_per_trial: Annotated[int, Field(ge=1, le=64)] = 1
    seed: int = 42
    params: dict[str, dict[str, Any]] = {}
    # values of searched params: the study's first trial, and the model's params untuned
    start_params: dict[str, dict[str, Any]] = {}
    search_spaces: dict[str, dict[str, ParamSpec]] = {}
    katib: KatibConfig = KatibConfig()

    @field_validator("algorithms")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each algorithm at most once")
        return value

    @field_validator("params", "search_spaces")
    @classmethod
    def _known_algorithms(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(ALGORITHMS))
        if unknown:
            raise ValueError(f"unknown algorithm(s) {unknown}; known: {list(ALGORITHMS)}")
        return value

    @model_validator(mode="after")
    def _spaces_for_tuning(self) -> TrainingConfig:
        if self.hyperparameter_tuning:
            missing = [a for a in self.algorithms if not self.search_spaces.get(a)]
            if missing:
                raise ValueError(f"hyperparameter_tuning needs search_spaces for {missing}")
        for algorithm, space in self.search_spaces.items():
            clash = sorted(set(space) & set(self.params.get(algorithm, {})))
            if clash:
                raise ValueError(f"{algorithm}: {clash} both fixed in params and searched")
        for algorithm, start in self.start_params.items():
            space = self.search_spaces.get(algorithm, {})
            fixed = sorted(set(start) - set(space))
            if fixed:
                raise ValueError(
                    f"start_params.{algorithm}: {fixed} not searched (fixed values go in params)"
                )
            for name, value in start.items():
                spec = space[name]
                inside = (
                    value in spec.choices
                    if spec.type == "categorical"
                    else (isinstance(value, (int, float)) and spec.low <= value <= spec.high)
                )
                if not inside:
                    raise ValueError(
                        f"start_params.{algorithm}.{name}: {value!r} is outside its search space"
                    )
        return self

    @property
    def algorithm(self) -> str:
        return self.algorithms[0]

    def params_for(self, algorithm: str) -> dict[str, Any]:
        """The fixed params (not searched)."""
        return dict(self.params.get(algorithm, {}))

    def start_for(self, algorithm: str) -> dict[str, Any]:
        """The start values of searched params: a study's trial 0, the model when untuned."""
        return dict(self.start_params.get(algorithm, {}))
