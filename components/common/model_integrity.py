"""Model integrity: a sha256 manifest of a model directory, checked before anything unpickles it.

Models are pickles (joblib for the train stage's model dirs, cloudpickle inside the MLflow model
the track stage logs): loading one runs code. So a model is loaded only after its files were
proven to be the ones recorded when it was made:

- manifest: {relative path: sha256 of the file} over every file of the directory;
- digest: sha256 of the manifest's canonical JSON (sorted keys, no spaces). One string to store
  where the model's writer can put it but an attacker who can write the artifact store cannot
  (a model-version tag in MLflow's database, an upstream artifact's metadata, the
  InferenceService spec).

`verify(dir, expected)` recomputes the manifest and raises ModelIntegrityError naming the files
that changed, are missing or are extra. Nothing here imports a stage.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

# Written by MLflow into every model it downloads from the registry (ModelsArtifactRepository:
# the name and version it was downloaded as), so it differs between two downloads of the same
# model and is not in the store at all. YAML, read with safe_load, never unpickled.
MLFLOW_DOWNLOAD_FILES = frozenset({"registered_model_meta"})
# The manifest file the train stage writes beside a model dir's files (it cannot list itself).
MANIFEST_FILE = "MANIFEST.json"
EXCLUDED = MLFLOW_DOWNLOAD_FILES | {MANIFEST_FILE}

# model-version tags written by the register stage (MLflow's database, not the artifact store)
MANIFEST_SHA256_TAG = "mlpipe.model_manifest_sha256"
MANIFEST_TAG = "mlpipe.model_manifest"
# the server's expected digest when it reads a model dir (KServe: /mnt/models)
SHA256_ENV = "MLPIPE_MODEL_SHA256"
MANIFEST_ENV = "MLPIPE_MODEL_MANIFEST"
# loads a registered version that has no manifest tag (registered before manifests existed)
ALLOW_UNVERIFIED_ENV = "MLPIPE_ALLOW_UNVERIFIED_MODELS"


class ModelIntegrityError(RuntimeError):
    """A model's files are not the ones recorded for it (or nothing was recorded): it must not
    be loaded, served or promoted."""


def _sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def manifest(path: str | Path) -> dict[str, str]:
    """{relative POSIX path: sha256} of every file under `path` but the excluded ones. Symlinks
    are refused: what they point at is outside what the manifest describes."""
    root = Path(path)
    if not root.is_dir():
        raise ModelIntegrityError(f"{root}: no such model directory")
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                raise ModelIntegrityError(f"{root}: {rel} is a symlink")
            if name in filenames and rel not in EXCLUDED:
                out[rel] = _sha256_file(full)
    return dict(sorted(out.items()))


def canonical(files: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(files.items())), sort_keys=True, separators=(",", ":"))


def digest_of(files: Mapping[str, str]) -> str:
    """The one digest over a manifest (sha256 of its canonical JSON)."""
    return hashlib.sha256(canonical(files).encode()).hexdigest()


def differences(actual: Mapping[str, str], expected: Mapping[str, str]) -> list[str]:
    """What differs, file by file: changed, missing, extra."""
    out = [f"changed: {f}" for f in sorted(actual) if f in expected and actual[f] != expected[f]]
    out += [f"missing: {f}" for f in sorted(set(expected) - set(actual))]
    out += [f"extra: {f}" for f in sorted(set(actual) - set(expected))]
    return out


def parse_manifest(text: str | None, expected_digest: str | None = None) -> dict[str, str] | None:
    """A stored manifest (JSON), if it is one and (given the digest) the one the digest names;
    else None (a file-by-file report is then not possible, the digest check still is)."""
    if not text:
        return None
    try:
        files = json.loads(text)
    except ValueError:
        return None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        return None
    if expected_digest and digest_of(files) != expected_digest:
        return None
    return files


def verify(
    path: str | Path,
    expected: str | Mapping[str, str],
    what: str = "model",
    recorded: Mapping[str, str] | None = None,
) -> str:
    """Raise ModelIntegrityError unless the files under `path` are those `expected` describes: a
    digest (`recorded`, the manifest it is the digest of, names the files that differ) or a
    manifest. Returns the digest."""
    if isinstance(expected, str):
        want_digest, want_files = expected, recorded
    else:
        want_digest, want_files = digest_of(expected), dict(expected)
    if not want_digest:
        raise ModelIntegrityError(f"{what}: no expected digest to check {path} against")
    actual = manifest(path)
    got = digest_of(actual)
    if got == want_digest:
        return got
    detail = differences(actual, want_files) if want_files is not None else []
    raise ModelIntegrityError(
        f"{what}: the files at {path} are not the recorded model (manifest sha256 {got[:16]}…, "
        f"expected {want_digest[:16]}…)"
        + (": " + "; ".join(detail) if detail else "")
        + ". Refusing to load it: a model file is a pickle and loading it runs code"
    )


def write_manifest(path: str | Path) -> str:
    """Write MANIFEST.json (the manifest of the directory's other files) into `path`; return
    the digest."""
    files = manifest(path)
    (Path(path) / MANIFEST_FILE).write_text(json.dumps(files, indent=2, sort_keys=True) + "\n")
    return digest_of(files)


def verify_model_dir(path: str | Path, expected: str | None = None, what: str = "model") -> str:
    """A model dir with its MANIFEST.json: its files must match the manifest file, and the
    manifest's digest must equal `expected` when the caller has it (an upstream artifact's
    metadata, the registry): the manifest file alone only proves the files were not changed
    without it. Returns the digest."""
    file = Path(path) / MANIFEST_FILE
    if not file.is_file():
        raise ModelIntegrityError(
            f"{what}: {path} has no {MANIFEST_FILE}: it was not written by this project's train "
            "stage (save_model) or was written before manifests existed; train it again"
        )
    files = parse_manifest(file.read_text())
    if files is None:
        raise ModelIntegrityError(f"{what}: {file} is not a manifest")
    if expected and digest_of(files) != expected:
        raise ModelIntegrityError(
            f"{what}: {file} is not the recorded manifest (sha256 {digest_of(files)[:16]}…, "
            f"expected {expected[:16]}…): the model dir was replaced. Refusing to load it"
        )
    return verify(path, files, what)


def unverified_allowed() -> bool:
    return os.environ.get(ALLOW_UNVERIFIED_ENV, "") in ("1", "true", "yes")


def version_expectation(tags: Mapping[str, str], what: str) -> tuple[str, dict[str, str] | None]:
    """(digest, manifest) recorded on a model version's tags. A version without them was
    registered before manifests existed: refused unless MLPIPE_ALLOW_UNVERIFIED_MODELS=1
    (returns ("", None) then)."""
    want = (tags or {}).get(MANIFEST_SHA256_TAG, "")
    if not want:
        if unverified_allowed():
            return "", None
        raise ModelIntegrityError(
            f"{what} has no {MANIFEST_SHA256_TAG} tag: it was registered before model manifests "
            "were recorded, so its files cannot be checked before unpickling. Re-register it: "
            "run the pipeline again (`mlpipe run`: the register step records a new version with "
            f"its manifest), or set {ALLOW_UNVERIFIED_ENV}=1 to load unverified versions "
            "(never a version whose manifest does not match)"
        )
    return want, parse_manifest((tags or {}).get(MANIFEST_TAG), want)


def verify_version(path: str | Path, tags: Mapping[str, str], what: str) -> str | None:
    """Check a downloaded registered version against its tags; the digest (None: unverified,
    allowed by MLPIPE_ALLOW_UNVERIFIED_MODELS)."""
    want, files = version_expectation(tags, what)
    if not want:
        return None
    return verify(path, want, what, recorded=files)
