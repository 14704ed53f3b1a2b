"""What Katib trials read, put where they can read it: the project's own object store.

A KFP 2.17 task's input artifacts live in KFP's store (`minio://mlpipeline/...`, SeaweedFS behind
the Service `minio-service` in `kubeflow`, credentials in Secret `mlpipeline-minio-artifact` of
that namespace, ingress limited by KFP's NetworkPolicies). Trial pods run in the Experiment's
namespace and can reach none of that. So the tune task, which has the rows and the transformer as
local files (KFP's launcher downloaded them), copies them to a per-experiment prefix of the
project's own store (with the task's read-write `runtime.s3_secret`), which trial pods read with
the read-only credentials their template mounts (`katib.s3_secret`) and the endpoint of
`runtime.env_config_map`:

    <katib.staging_url | MLPIPE_STATE_DIR/katib-staging>/<algorithm>-<key>/
        train.parquet   the training rows (a file or a folder, as the features stage wrote them)
        transformer/    the fitted transformer and feature spec
        folds.npz       the folds: `fit_<i>` / `val_<i>` row indices, i = 0..k-1

`key` is derived from the inputs' identity (their KFP URIs when known), so a retried task stages to
the same prefix and its Experiment keeps the same name and spec. The tune task removes the prefix
when the Experiment is over (succeeded, failed or timed out); a task killed while waiting leaves it
behind until its retry finishes (same prefix), or for a lifecycle rule on `katib-staging/`.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.common.errors import StageError
from components.common.runtime_env import in_cluster, local_state_dir

STAGE = "tune"
STAGING_DIR = "katib-staging"
TRAIN, TRANSFORMER, FOLDS = "train.parquet", "transformer", "folds.npz"

Splits = Sequence[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Staged:
    prefix: str  # <base>/<algorithm>-<key>
    train_uri: str
    transformer_uri: str
    folds_uri: str


def staging_base(staging_url: str | None) -> str:
    """`staging_url`, else `<state store>/katib-staging`. In cluster mode it must be an object
    store URL: trial pods cannot see the task's folders."""
    base = (staging_url or "").strip() or f"{local_state_dir().rstrip('/')}/{STAGING_DIR}"
    if in_cluster() and ("://" not in base or base.startswith("file://")):
        raise StageError(
            STAGE,
            f"katib staging location {base!r}: trial pods read their inputs from it, so on a "
            "cluster it must be an object store URL (s3://...); set model_training.katib."
            "staging_url or MLPIPE_STATE_DIR",
            subject="katib.staging_url",
        )
    return base.rstrip("/")


def staging_key(algorithm: str, *identity: str) -> str:
    """`<algorithm>-<16 hex>`: the same inputs give the same prefix."""
    digest = hashlib.sha256("\n".join([algorithm, *identity]).encode()).hexdigest()[:16]
    return f"{algorithm.replace('_', '-')}-{digest}"


def write_folds(splits: Splits) -> bytes:
    arrays: dict[str, np.ndarray] = {}
    for i, (fit, val) in enumerate(splits):
        arrays[f"fit_{i}"] = np.asarray(fit, dtype=np.int64)
        arrays[f"val_{i}"] = np.asarray(val, dtype=np.int64)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def read_folds(path: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds of `write_folds`, in order; ValueError when the file is not such folds."""
    with np.load(path, allow_pickle=False) as data:
        names = set(data.files)
        k = len(names) // 2
        expected = {f"{p}_{i}" for i in range(k) for p in ("fit", "val")}
        if k < 2 or names != expected:
            raise ValueError(f"{path}: not a folds file (arrays {sorted(names)})")
        return [(data[f"fit_{i}"], data[f"val_{i}"]) for i in range(k)]


def _fs(url: str) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(url)


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def stage_inputs(
    train_path: str, transformer_dir: str, splits: Splits, base: str, key: str
) -> Staged:
    """Copy the rows, the transformer folder and the folds to `<base>/<key>/`. What is there is
    overwritten object by object, never removed first: the key is the inputs' identity, so it
    holds the same content, possibly read right now by the trials of a concurrent run that
    attached to the same Experiment (KFP's cache gives two runs the same artifacts)."""
    prefix = _join(base, key)
    fs, root = _fs(prefix)
    fs.makedirs(root, exist_ok=True)
    train_name = TRAIN
    src = Path(train_path)
    if src.is_dir():
        fs.put(str(src).rstrip("/") + "/", f"{root}/{train_name}", recursive=True)
    else:
        fs.put_file(str(src), f"{root}/{train_name}")
    fs.put(str(Path(transformer_dir)).rstrip("/") + "/", f"{root}/{TRANSFORMER}", recursive=True)
    fs.pipe_file(f"{root}/{FOLDS}", write_folds(splits))
    return Staged(
        prefix=prefix,
        train_uri=_join(prefix, train_name),
        transformer_uri=_join(prefix, TRANSFORMER),
        folds_uri=_join(prefix, FOLDS),
    )


def remove_staged(prefix: str) -> str | None:
    """Delete the staged prefix; the reason when it could not be deleted (never raises)."""
    try:
        fs, root = _fs(prefix)
        if fs.exists(root):
            fs.rm(root, recursive=True)
    except Exception as exc:  # cleanup must not hide the experiment's outcome
        return f"{type(exc).__name__}: {exc}"
    return None
