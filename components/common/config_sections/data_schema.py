"""config/data_schema.yaml: the columns, their kinds and checks."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from components.common.config_sections.base import (
    StrictModel,
)


class IntRange(StrictModel):
    min: int
    max: int

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class DriftCheck(StrictModel):
    metric: Literal["jensen_shannon", "linf"]
    threshold: Annotated[float, Field(gt=0, le=1)]


class FeatureSpec(StrictModel):
    kind: Literal["numeric", "categorical"]
    dtype: Literal["int", "float", "string"]
    description: str = ""
    # numeric: the declared range (blocking outside it)
    min: float | None = None
    max: float | None = None
    # categorical: the full set of codes, as a list or an inclusive range (blocking outside it);
    # dtype string: the list of texts, whose positions are the codes the model sees
    # (components/common/categories.py)
    values: list[int] | IntRange | list[str] | None = None
    max_missing_fraction: Annotated[float, Field(ge=0, le=1)] | None = None
    drift: DriftCheck | None = None

    @model_validator(mode="after")
    def _domain_matches_kind(self) -> FeatureSpec:
        texts = isinstance(self.values, list) and any(isinstance(v, str) for v in self.values)
        if self.dtype == "string":
            if self.kind != "categorical":
                raise ValueError("dtype string is for categorical features only")
            if not isinstance(self.values, list) or not texts:
                raise ValueError("a string feature lists its values: a non-empty list of strings")
            repeated = sorted({v for v in self.values if self.values.count(v) > 1})
            if repeated:
                raise ValueError(f"values {repeated} listed more than once")
        elif texts:
            raise ValueError(f"string values need dtype string (dtype is {self.dtype})")
        if self.kind == "categorical":
            if self.values is None:
                raise ValueError("a categorical feature must declare its codes in `values`")
            if self.min is not None or self.max is not None:
                raise ValueError("a categorical feature declares `values`, not min/max")
        else:
            if self.values is not None:
                raise ValueError("a numeric feature declares min/max, not `values`")
            if self.min is not None and self.max is not None and self.min > self.max:
                raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self

    def codes(self) -> list[int]:
        """Every allowed code of a categorical feature (a string feature: 0..len(values)-1)."""
        if self.dtype == "string":
            return list(range(len(self.values or [])))
        if isinstance(self.values, IntRange):
            return list(range(self.values.min, self.values.max + 1))
        return list(self.values or [])


class LabelSpec(StrictModel):
    name: str
    values: list[int] = [0, 1]
    min_positive_rate: Annotated[float, Field(ge=0, le=1)] = 0.01
    max_positive_rate: Annotated[float, Field(ge=0, le=1)] = 0.99


class SchemaChecks(StrictModel):
    min_rows: Annotated[int, Field(ge=1)] = 100
    max_duplicate_id_fraction: Annotated[float, Field(ge=0, le=1)] = 0.0
    # rows repeating an earlier row's features and label: people share profiles (the bundled
    # census data: 54 %), copied data does not (each row 10 times: 95 %) and leaks across folds
    warn_duplicate_row_fraction: Annotated[float, Field(ge=0, le=1)] = 0.75  # drift-kind finding
    max_duplicate_row_fraction: Annotated[float, Field(ge=0, le=1)] = 0.9  # blocking
    max_missing_fraction: Annotated[float, Field(ge=0, le=1)] = 0.0
    drift_threshold_default: Annotated[float, Field(gt=0, le=1)] = 0.1


class ColumnsSpec(StrictModel):
    """Columns of the data that are neither features, label, id nor time."""

    # read, then dropped before any check or training: never a feature. A column neither
    # declared nor listed here stays a blocking `unexpected_column`.
    ignore: list[str] = []

    @field_validator("ignore")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        repeated = sorted({c for c in value if value.count(c) > 1})
        if repeated:
            raise ValueError(f"{repeated} listed more than once")
        return value


class TimeSpec(StrictModel):
    """How the time column's values are read (components.common.timekeys)."""

    kind: Literal["number", "timestamp"] = "number"  # number: compared as is (integer years)
    timezone: str = "UTC"  # timestamp: the zone of naive values and naive window bounds
    unit: Literal["s", "ms"] = "s"  # timestamp: the unit of epoch numbers

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except (ValueError, KeyError):
            raise ValueError(f"unknown timezone {value!r} (an IANA name like UTC)") from None
        return value


class DataSchema(StrictModel):
    id_column: str | None = None
    time_column: str | None = None
    time: TimeSpec = TimeSpec()
    label: LabelSpec
    checks: SchemaChecks = SchemaChecks()
    features: dict[str, FeatureSpec]
    columns: ColumnsSpec = ColumnsSpec()  # after the roles it is checked against

    @field_validator("features")
    @classmethod
    def _not_empty(cls, value: dict[str, FeatureSpec]) -> dict[str, FeatureSpec]:
        if not value:
            raise ValueError("declare at least one feature")
        return value

    @field_validator("columns")
    @classmethod
    def _ignored_are_unused(cls, value: ColumnsSpec, info: ValidationInfo) -> ColumnsSpec:
        # a column is used or ignored, never both (only roles that validated are in info.data)
        roles = {name: "a feature" for name in info.data.get("features") or {}}
        label = info.data.get("label")
        for name, role in (
            (info.data.get("id_column"), "the id column"),
            (info.data.get("time_column"), "the time column"),
            (label.name if label else None, "the label"),
        ):
            if name:
                roles[name] = role
        clash = [f"{c!r} is {roles[c]}" for c in value.ignore if c in roles]
        if clash:
            raise ValueError(f"ignore lists columns the schema uses: {'; '.join(clash)}")
        return value

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)

    @property
    def categorical(self) -> list[str]:
        return [n for n, f in self.features.items() if f.kind == "categorical"]

    @property
    def numeric(self) -> list[str]:
        return [n for n, f in self.features.items() if f.kind == "numeric"]

    @property
    def required_columns(self) -> list[str]:
        extra = [c for c in (self.id_column, self.time_column) if c]
        return [*extra, *self.features, self.label.name]
