"""The one place that reads and writes artifact files.

Every write is atomic (temporary file, then rename into place), so a failed task never leaves a
half-written artifact behind. Heavy imports stay inside the functions: this module is also imported
by the validate wrapper, which may run in the tfdv environment (pandas 1.5, pyarrow 10).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

MODEL_FILE = "model.joblib"
FEATURE_SPEC_FILE = "feature_spec.json"


def restore_ints(value: Any) -> Any:
    """`value` with every whole-number float turned back into an int, in nested dicts and lists.

    KFP passes dict parameters and artifact metadata through protobuf Struct, whose only number
    type is a double: the 137911 rows or the year 2015 a stage wrote come back as 137911.0 and
    2015.0. Apply where such values are read back, so they print as the user wrote them.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: restore_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [restore_ints(v) for v in value]
    return value


@contextmanager
def atomic_path(path: str | Path, suffix: str = ""):
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600: a reader in another container may differ
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextmanager
def atomic_dir(path: str | Path):
    """Yield a temporary directory beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_dir(path: str | Path) -> str:
    """A digest of a directory's files (names and content), independent of walk order."""
    digest = hashlib.sha256()
    root = Path(path)
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


def write_dataset(df: pd.DataFrame, path: str | Path) -> dict[str, Any]:
    """Write a Dataset artifact (Parquet) and return the metadata every Dataset carries."""
    with atomic_path(path, ".parquet") as tmp:
        df.to_parquet(tmp, index=False)
    return {
        "rows": len(df),
        "columns": [str(c) for c in df.columns],
        "sha256": sha256_file(path),
        "format": "parquet",
    }


def read_dataset(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(path, columns=columns)


def write_json(obj: Any, path: str | Path) -> None:
    with atomic_path(path, ".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_text(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_model(model: Any, path: str | Path, feature_spec: dict[str, Any]) -> dict[str, Any]:
    """Write a Model artifact: a directory holding the fitted object, its feature spec and
    MANIFEST.json (sha256 of each file). `sha256` in the returned metadata is the manifest's
    digest: what `load_model(path, expected)` checks the dir against."""
    import joblib

    from components.common.model_integrity import write_manifest

    with atomic_dir(path) as tmp:
        joblib.dump(model, tmp / MODEL_FILE)
        (tmp / FEATURE_SPEC_FILE).write_text(json.dumps(feature_spec, indent=2, sort_keys=True))
        digest = write_manifest(tmp)
    return {"sha256": digest, "format": "joblib"}


def load_model(path: str | Path, expected_sha256: str | None = None) -> tuple[Any, dict[str, Any]]:
    """(fitted object, feature spec) of a model dir, after checking its files against its
    MANIFEST.json and, when the caller has it (the upstream artifact's `sha256` metadata), the
    manifest against `expected_sha256`: model.joblib is a pickle, loading it runs code.
    ModelIntegrityError otherwise."""
    import joblib

    from components.common.model_integrity import verify_model_dir

    path = Path(path)
    verify_model_dir(path, expected_sha256, what=f"model dir {path}")
    return joblib.load(path / MODEL_FILE), json.loads((path / FEATURE_SPEC_FILE).read_text())


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays, paths
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
