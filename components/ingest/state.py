"""The ingest state store: per-source watermarks and the catalogue of dataset versions.

Layout under the state folder (`MLPIPE_STATE_DIR`; `mlpipe run` sets it to `outputs/state`; on a
cluster point it at shared storage, e.g. `s3://bucket/mlpipe-state`: every access goes through
fsspec):

    watermarks/<state_key>.json      {"value", "type", "column", "version", "committed_at", ...}
    versions/<content_sha256>.json   one catalogue entry per dataset version
    datasets/<content_sha256>.parquet  the version's rows (what a pinned run reads)

The folder comes from the environment, never from a task parameter, so it never enters kfp.local's
cache key. Writes are atomic (temporary file + rename locally, one PUT on an object store).
Ingest writes the catalogue entry (status `ingested`) and the data; only `commit` — run by the
pipeline after the Dataset has been validated and consumed — advances the watermark and marks the
version `committed`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from components.common import runtime_env
from components.common.errors import StageError
from components.common.keyed_store import KeyedStore

STAGE = "ingest"


class StateError(StageError):
    """The state store is missing, unreadable or moved under us."""

    def __init__(self, message: str, subject: str | None = None) -> None:
        super().__init__(STAGE, message, subject)


def state_dir(required_for: str | None = None) -> str | None:
    """The state folder from the environment (`runtime_env.state_dir`: required in cluster
    mode); an error naming `required_for` if it is needed and unset."""
    return runtime_env.state_dir(STAGE, required_for)


class WatermarkMoved(StateError):
    """Another run advanced the watermark first."""


class StateStore:
    """Watermarks and catalogue under one folder or object-store prefix."""

    def __init__(self, root: str | Path) -> None:
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        self.root = str(root).rstrip("/")
        self.fs, self.base = fsspec.core.url_to_fs(self.root)
        self.local = isinstance(self.fs, LocalFileSystem)

    # ------------------------------------------------------------ primitives

    def _path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def _url(self, *parts: str) -> str:
        """A sub-folder as a URL (or path) another fsspec user can open."""
        return "/".join([self.root, *parts])

    def _read_json(self, *parts: str) -> dict[str, Any] | None:
        path = self._path(*parts)
        try:
            with self.fs.open(path, "r") as fh:
                return json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            raise StateError(f"state store {self.root}: cannot read {path}: {exc}", path) from exc

    def _write_json(self, obj: dict[str, Any], *parts: str) -> None:
        text = json.dumps(obj, indent=2, sort_keys=True, default=str)
        path = self._path(*parts)
        if self.local:
            folder = Path(path).parent
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp.", dir=folder)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, text.encode())

    # ------------------------------------------------------------ watermarks

    def watermark(self, key: str) -> dict[str, Any] | None:
        return self._read_json("watermarks", f"{key}.json")

    def set_watermark(self, key: str, record: dict[str, Any]) -> None:
        self._write_json(record, "watermarks", f"{key}.json")

    def advance_watermark(self, key: str, expected: Any, record: dict[str, Any]) -> None:
        """Compare-and-set: move watermark `key` from `expected` to `record["value"]`, unless
        another run moved it from `expected` first (`WatermarkMoved`).

        A watermark only moves forward, so each transition away from a value happens once: the
        transition is claimed by creating the key `<key>@<digest of expected>` atomically
        (`KeyedStore.create`: an exclusive link locally, a conditional PUT on S3), then the
        watermark is written. A claim by the same batch (same content digest and target: a run
        that crashed after claiming) is re-used. Why not a read-check-write: two runs can both
        read `expected` before either writes. To reload a source from scratch:
        `reset_watermark`."""
        claims = self._claims()
        digest = hashlib.sha256(json.dumps(expected, default=str).encode()).hexdigest()[:16]
        claim = {k: record.get(k) for k in ("value", "content_sha256", "version")}
        claim["ts"] = time.time()
        if not claims.create(f"{key}@{digest}", claim):
            held = claims.get(f"{key}@{digest}") or {}
            if any(held.get(k) != claim[k] for k in ("value", "content_sha256")):
                raise WatermarkMoved(
                    f"watermark {key} was moved from {expected!r} to {held.get('value')!r} by "
                    f"another run (version {held.get('version')}) while this batch was "
                    "committed: re-run to load from the new watermark",
                    key,
                )
        self.set_watermark(key, record)

    def reset_watermark(self, key: str) -> bool:
        """Forget watermark `key` and its claims (a claim left behind would refuse the next
        run's first commit as a moved watermark); False if there is no such watermark."""
        path = self._path("watermarks", f"{key}.json")
        if not self.fs.exists(path):
            return False
        claims = self._claims()
        for claim in claims.entries():
            if str(claim.get("key", "")).startswith(f"{key}@"):
                claims.fs.rm(claims.path(claim["key"]))
        self.fs.rm(path)  # last: a reset cut short leaves the watermark, to be reset again
        return True

    def _claims(self) -> KeyedStore:
        return KeyedStore(self._url("watermark-claims"))

    def watermarks(self) -> dict[str, dict[str, Any]]:
        out = {}
        for path in sorted(self._ls("watermarks")):
            name = path.rsplit("/", 1)[-1]
            if name.endswith(".json") and not name.startswith("."):
                out[name[: -len(".json")]] = self._read_json("watermarks", name) or {}
        return out

    # ------------------------------------------------------------ catalogue

    def data_path(self, sha: str) -> str:
        return self._path("datasets", f"{sha}.parquet")

    def entry(self, sha: str) -> dict[str, Any] | None:
        return self._read_json("versions", f"{sha}.json")

    def entries(self) -> list[dict[str, Any]]:
        out = []
        for path in self._ls("versions"):
            name = path.rsplit("/", 1)[-1]
            if name.endswith(".json") and not name.startswith("."):
                entry = self._read_json("versions", name)
                if entry:
                    out.append(entry)
        return sorted(out, key=lambda e: e.get("created_at", 0))

    def resolve_version(self, prefix: str) -> dict[str, Any]:
        """The catalogue entry whose version id starts with `prefix` (unique)."""
        prefix = prefix.removeprefix("sha256:").lower()
        matches = [e for e in self.entries() if e["content_sha256"].startswith(prefix)]
        if not matches:
            raise StateError(
                f"dataset version {prefix!r} is not in the catalogue at {self.root} "
                "(mlpipe data list shows the versions)",
                subject=prefix,
            )
        if len(matches) > 1:
            ids = ", ".join(e["version"] for e in matches)
            raise StateError(f"dataset version {prefix!r} is ambiguous: {ids}", subject=prefix)
        return matches[0]

    def add_version(self, dataset_file: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Store the data (once per content) and record the version; idempotent."""
        sha = entry["content_sha256"]
        target = self.data_path(sha)
        if not self.fs.exists(target):
            if self.local:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                tmp = f"{target}.tmp{os.getpid()}"
                try:
                    os.link(dataset_file, tmp)  # same file system: no copy
                except OSError:
                    shutil.copyfile(dataset_file, tmp)
                os.replace(tmp, target)
            else:
                self.fs.put_file(dataset_file, target)
        old = self.entry(sha)
        now = time.time()
        merged = {**(old or {}), **entry, "data": target}
        merged["created_at"] = (old or {}).get("created_at", now)
        merged["last_ingested_at"] = now
        merged["ingest_count"] = (old or {}).get("ingest_count", 0) + 1
        merged["status"] = (old or {}).get("status", "ingested")
        # one content can be read from several sources (the bundled file, then an incremental
        # load that found the same rows): keep every one, first first, not only the newest
        sources = list((old or {}).get("sources") or [s for s in [(old or {}).get("source")] if s])
        if entry.get("source") and entry["source"] not in sources:
            sources.append(entry["source"])
        merged["sources"] = sources
        merged["source"] = sources[0] if sources else entry.get("source")
        self._write_json(merged, "versions", f"{sha}.json")
        return merged

    def mark_committed(self, sha: str) -> None:
        entry = self.entry(sha)
        if entry is not None and entry.get("status") != "committed":
            entry.update(status="committed", committed_at=time.time())
            self._write_json(entry, "versions", f"{sha}.json")

    def _ls(self, folder: str) -> list[str]:
        try:
            return [str(p) for p in self.fs.ls(self._path(folder), detail=False)]
        except FileNotFoundError:
            return []


def open_store(required_for: str | None = None) -> StateStore | None:
    root = state_dir(required_for)
    return StateStore(root) if root else None
