"""Scoring without pandas: the fitted ColumnTransformer's transform and the final estimator's
predict, replayed on a numpy matrix from their fitted attributes.

A DataFrame costs milliseconds per one-row request (components/serve/README.md, "Benchmark");
this path costs a fraction of a millisecond.
`build_scorer` returns the fast scorer when every step is one it knows (scalers standard /
minmax / robust / passthrough; encodings native / one-hot / ordinal; LightGBM, XGBoost, random
forest, logistic regression, binary) and otherwise the pipeline's own predict_proba on a
DataFrame, with a logged warning. tests/components/serve/test_fast_path.py proves both give the
same numbers.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

Block = Callable[[np.ndarray], np.ndarray]
# rows per request below which estimators predict on one thread (thread start-up dominates)
SMALL_BATCH = 64


class Unsupported(Exception):
    """A pipeline step the fast path does not replay."""


class Scorer:
    """P(label=1) for a raw feature matrix in feature-spec order."""

    kind = "pandas"
    reason = ""

    def __call__(self, raw: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


class PandasScorer(Scorer):
    """The pipeline itself on a DataFrame with the spec's dtypes (the reference, and fallback)."""

    def __init__(self, pipeline: Any, spec: dict[str, Any], reason: str = "") -> None:
        import pandas as pd

        self._pd = pd
        self.pipeline = pipeline
        self.names = [f["name"] for f in spec["features"]]
        self.dtypes = {
            f["name"]: "int64" if f["dtype"] != "float" else "float64" for f in spec["features"]
        }
        self.positive = _positive_column(pipeline)
        self.reason = reason

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        frame = self._pd.DataFrame(raw, columns=self.names).astype(self.dtypes)
        return self.pipeline.predict_proba(frame)[:, self.positive]


class FastScorer(Scorer):
    kind = "numpy"

    def __init__(self, pipeline: Any, spec: dict[str, Any]) -> None:
        steps = getattr(pipeline, "steps", None)
        if not steps or len(steps) != 2:
            raise Unsupported("not a two-step Pipeline(transformer, estimator)")
        names = [f["name"] for f in spec["features"]]
        self.blocks = _transform_blocks(steps[0][1], names)
        self.estimator_name, self.predict = _estimator_predict(steps[1][1])

    def transform(self, raw: np.ndarray) -> np.ndarray:
        parts = [block(raw) for block in self.blocks]
        return parts[0] if len(parts) == 1 else np.hstack(parts)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return self.predict(self.transform(raw))


def build_scorer(pipeline: Any, spec: dict[str, Any]) -> Scorer:
    """The numpy fast path if it covers this pipeline, else the pandas path (with a warning)."""
    try:
        return FastScorer(pipeline, spec)
    except Unsupported as exc:
        log.warning("fast path not available (%s): scoring through pandas (slower)", exc)
        return PandasScorer(pipeline, spec, reason=str(exc))


# ---------------------------------------------------------------- transformer


def _transform_blocks(transformer: Any, names: list[str]) -> list[Block]:
    from sklearn.compose import ColumnTransformer

    if not isinstance(transformer, ColumnTransformer):
        raise Unsupported(f"transformer {type(transformer).__name__} is not a ColumnTransformer")
    if transformer.sparse_output_:
        raise Unsupported("sparse ColumnTransformer output")
    blocks = []
    for _, step, columns in transformer.transformers_:
        if isinstance(step, str) and step == "drop":
            continue
        try:
            idx = np.array([names.index(c) for c in columns], dtype=np.intp)
        except (ValueError, TypeError) as exc:
            raise Unsupported(f"transformer columns {columns!r} are not feature names") from exc
        if len(idx) == 0:
            continue
        blocks.append(_block(step, idx))
    if not blocks:
        raise Unsupported("the transformer outputs nothing")
    return blocks


def _block(step: Any, idx: np.ndarray) -> Block:
    from sklearn.preprocessing import (
        FunctionTransformer,
        MinMaxScaler,
        OneHotEncoder,
        OrdinalEncoder,
        RobustScaler,
        StandardScaler,
    )

    kind = type(step)
    # a fitted ColumnTransformer stores "passthrough" as an identity FunctionTransformer
    passthrough = (isinstance(step, str) and step == "passthrough") or (
        kind is FunctionTransformer and step.func is None
    )
    if passthrough:
        return lambda raw: raw[:, idx]
    if kind is StandardScaler:
        mean = step.mean_ if step.with_mean else None
        scale = step.scale_ if step.with_std else None
        return lambda raw: _center_scale(raw[:, idx], mean, scale)
    if kind is RobustScaler:
        center = step.center_ if step.with_centering else None
        scale = step.scale_ if step.with_scaling else None
        return lambda raw: _center_scale(raw[:, idx], center, scale)
    if kind is MinMaxScaler:
        if step.clip:
            raise Unsupported("MinMaxScaler(clip=True)")
        mul, add = step.scale_, step.min_

        def minmax(raw: np.ndarray) -> np.ndarray:
            x = raw[:, idx]
            x *= mul
            x += add
            return x

        return minmax
    if kind is OneHotEncoder:
        return _onehot(step, idx)
    if kind is OrdinalEncoder:
        return _ordinal(step, idx)
    raise Unsupported(f"transformer step {kind.__name__}")


def _center_scale(x: np.ndarray, center: np.ndarray | None, scale: np.ndarray | None):
    # same operations in the same order as the scalers' transform (bit-identical results)
    if center is not None:
        x -= center
    if scale is not None:
        x /= scale
    return x


MAX_CODE_TABLE = 1 << 16  # integer codes per encoder that a lookup table may span


class _CodeTable:
    """Integer category code → position, for all of an encoder's columns in one lookup.

    Position -1 = unknown code (not among the categories the encoder was fitted on), including
    values that are not integers or lie outside the table."""

    def __init__(self, step: Any, idx: np.ndarray, positions: list[np.ndarray]) -> None:
        if getattr(step, "_infrequent_enabled", False):
            raise Unsupported("encoder with infrequent categories")
        cats = [np.asarray(c) for c in step.categories_]
        for c in cats:
            if c.dtype.kind not in "iuf" or not np.all(np.isfinite(c)) or np.any(c != np.round(c)):
                raise Unsupported("encoder categories that are not integer codes")
        self.low = int(min(c.min() for c in cats))
        size = int(max(c.max() for c in cats)) - self.low + 1
        if size > MAX_CODE_TABLE:
            raise Unsupported(f"category codes spanning {size} values")
        self.table = np.full((len(cats), size), -1, dtype=np.intp)
        for j, (c, pos) in enumerate(zip(cats, positions, strict=True)):
            self.table[j, c.astype(np.int64) - self.low] = pos
        self.idx, self.size = idx, size
        self.cols = np.arange(len(cats))

    def lookup(self, raw: np.ndarray) -> np.ndarray:
        codes = raw[:, self.idx] - self.low
        valid = (codes >= 0) & (codes < self.size) & (codes == np.floor(codes))
        pos = self.table[self.cols, np.where(valid, codes, 0).astype(np.intp)]
        pos[~valid] = -1
        return pos


def _onehot(step: Any, idx: np.ndarray) -> Block:
    if step.drop_idx_ is not None or step.handle_unknown != "ignore" or step.sparse_output:
        raise Unsupported("OneHotEncoder other than drop=None, handle_unknown='ignore', dense")
    sizes = [len(c) for c in step.categories_]
    offsets = np.cumsum([0, *sizes])
    codes = _CodeTable(step, idx, [offsets[j] + np.arange(n) for j, n in enumerate(sizes)])
    width = int(offsets[-1])

    def onehot(raw: np.ndarray) -> np.ndarray:
        pos = codes.lookup(raw)
        out = np.zeros((raw.shape[0], width), dtype=np.float64)
        rows, cols = np.nonzero(pos >= 0)  # unknown codes stay all-zero (handle_unknown='ignore')
        out[rows, pos[rows, cols]] = 1.0
        return out

    return onehot


def _ordinal(step: Any, idx: np.ndarray) -> Block:
    if step.handle_unknown != "use_encoded_value":
        raise Unsupported(f"OrdinalEncoder(handle_unknown={step.handle_unknown!r})")
    if np.dtype(step.dtype) != np.float64:
        raise Unsupported("OrdinalEncoder with a dtype other than float64")
    codes = _CodeTable(step, idx, [np.arange(len(c)) for c in step.categories_])
    unknown = float(step.unknown_value)

    def ordinal(raw: np.ndarray) -> np.ndarray:
        pos = codes.lookup(raw)
        return np.where(pos >= 0, pos, unknown).astype(np.float64)

    return ordinal


# ---------------------------------------------------------------- estimators


def _positive_column(model: Any) -> int:
    classes = list(getattr(model, "classes_", [0, 1]))
    if len(classes) != 2 or 1 not in classes:
        raise Unsupported(f"not a binary 0/1 classifier (classes {classes})")
    return classes.index(1)


def _estimator_predict(est: Any) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    kind = type(est).__name__
    positive = _positive_column(est)
    if kind == "FoldEnsemble":  # the mean of its fold models' probabilities, as predict_proba
        parts = [_estimator_predict(m) for m in est.members]
        names = sorted({name for name, _ in parts})
        scorers = [predict for _, predict in parts]

        def ensemble(x: np.ndarray) -> np.ndarray:
            return np.mean([predict(x) for predict in scorers], axis=0)

        return f"{'+'.join(names)} x{len(scorers)}", ensemble
    if kind == "LGBMClassifier":
        booster = est.booster_
        if est.objective_ != "binary":
            raise Unsupported(f"LightGBM objective {est.objective_!r}")
        single = _LightGBMSingleRow.create(booster)

        def lightgbm(x: np.ndarray) -> np.ndarray:
            if single is not None and len(x) == 1:
                p = single(x)
            else:
                p = booster.predict(x, num_threads=1 if len(x) < SMALL_BATCH else 0)
            return p if positive == 1 else 1.0 - p

        return "lightgbm", lightgbm
    if kind == "XGBClassifier":
        booster = est.get_booster()
        if est.objective not in ("binary:logistic", None):
            raise Unsupported(f"XGBoost objective {est.objective!r}")
        best = getattr(est, "best_iteration", None) if _has_best_iteration(est) else None
        rounds = (0, best + 1) if best is not None else (0, 0)
        single = _XGBoostSingleRow.create(booster, rounds)

        def xgboost(x: np.ndarray) -> np.ndarray:
            if single is not None and len(x) == 1:
                p = single(x)
            else:
                p = booster.inplace_predict(x, iteration_range=rounds, validate_features=False)
            return p if positive == 1 else 1.0 - p

        return "xgboost", xgboost
    if kind == "RandomForestClassifier":
        if est.n_outputs_ != 1:
            raise Unsupported("multi-output random forest")
        trees = [t.tree_ for t in est.estimators_]
        n = len(trees)

        def forest(x: np.ndarray) -> np.ndarray:
            # as predict_proba with one job: sum each tree's leaf fractions in order, then divide
            x32 = np.ascontiguousarray(x, dtype=np.float32)
            total = np.zeros(len(x32), dtype=np.float64)
            for tree in trees:
                total += tree.predict(x32)[:, positive]
            total /= n
            return total

        return "random_forest", forest
    if kind == "LogisticRegression":
        if est.coef_.shape[0] != 1:
            raise Unsupported("multinomial logistic regression")
        coef, intercept = est.coef_.T, est.intercept_
        from scipy.special import expit

        def logistic(x: np.ndarray) -> np.ndarray:
            p = expit((x @ coef + intercept).ravel())
            return p if positive == 1 else 1.0 - p

        return "logistic_regression", logistic
    raise Unsupported(f"estimator {kind}")


class _LightGBMSingleRow:
    """LightGBM's C API for one row (LGBM_BoosterPredictForMatSingleRowFast): the Python
    Booster.predict builds a predictor and parses parameters on every call (~50-100 µs); this
    prepares them once. Same model, same iterations (the booster's best iteration, as predict
    uses), one thread."""

    def __init__(self, lib: Any, handle: ctypes.c_void_p, booster: Any) -> None:
        self._lib, self._handle, self._booster = lib, handle, booster  # keep the booster alive
        self._out = np.empty(1, dtype=np.float64)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._out_len = ctypes.c_int64(0)

    @classmethod
    def create(cls, booster: Any) -> _LightGBMSingleRow | None:
        try:
            from lightgbm.basic import _LIB

            handle = ctypes.c_void_p()
            ret = _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(0),  # C_API_PREDICT_NORMAL: probabilities
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(booster.best_iteration),  # <= 0: all (as Booster.predict)
                ctypes.c_int(1),  # C_API_DTYPE_FLOAT64
                ctypes.c_int32(booster.num_feature()),
                ctypes.c_char_p(b"num_threads=1"),
                ctypes.byref(handle),
            )
        except (ImportError, AttributeError) as exc:  # another LightGBM build: use predict
            log.info("LightGBM single-row API unavailable (%s)", exc)
            return None
        return cls(_LIB, handle, booster) if ret == 0 else None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        row = np.ascontiguousarray(x[0], dtype=np.float64)
        ret = self._lib.LGBM_BoosterPredictForMatSingleRowFast(
            self._handle,
            ctypes.c_void_p(row.ctypes.data),
            ctypes.byref(self._out_len),
            self._out_ptr,
        )
        if ret != 0:
            raise RuntimeError(self._lib.LGBM_GetLastError().decode())
        return self._out.copy()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._lib.LGBM_FastConfigFree(self._handle)


class _XGBoostSingleRow:
    """XGBoosterPredictFromDense for one row with its arguments prepared once, on a one-thread
    copy of the booster: `inplace_predict` re-derives the input type, arguments and output view
    on every call (~100 µs of Python for one row). Same call, same iterations, same result."""

    def __init__(self, lib: Any, booster: Any, args: bytes) -> None:
        self._lib, self._booster, self._args = lib, booster, args
        self._null = ctypes.c_void_p()

    @classmethod
    def create(cls, booster: Any, rounds: tuple[int, int]) -> _XGBoostSingleRow | None:
        try:
            from xgboost.core import _LIB, make_jcargs

            copy = booster.copy()
            copy.set_param({"nthread": 1})
            args = make_jcargs(
                type=0,  # probabilities, as inplace_predict(predict_type="value")
                training=False,
                iteration_begin=int(rounds[0]),
                iteration_end=int(rounds[1]),
                missing=float("nan"),
                strict_shape=False,
                cache_id=0,
            )
            lib = _LIB
        except (ImportError, AttributeError) as exc:  # another XGBoost: use inplace_predict
            log.info("XGBoost single-row call unavailable (%s)", exc)
            return None
        return cls(lib, copy, args)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import json

        from xgboost.core import XGBoostError, c_bst_ulong

        row = np.ascontiguousarray(x, dtype=np.float64)
        shape, dims = ctypes.POINTER(c_bst_ulong)(), c_bst_ulong()
        preds = ctypes.POINTER(ctypes.c_float)()
        ret = self._lib.XGBoosterPredictFromDense(
            self._booster.handle,
            json.dumps(row.__array_interface__).encode(),
            self._args,
            self._null,
            ctypes.byref(shape),
            ctypes.byref(dims),
            ctypes.byref(preds),
        )
        if ret != 0:
            raise XGBoostError(self._lib.XGBGetLastError().decode())
        return np.array([preds[0]], dtype=np.float32)


def _has_best_iteration(est: Any) -> bool:
    try:
        return est.best_iteration is not None
    except AttributeError:  # XGBoost raises when the model was fitted without early stopping
        return False
