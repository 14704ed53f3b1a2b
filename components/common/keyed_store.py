"""One JSON document per key, in a local folder or under an object-store prefix (fsspec).

What the alert log and the retraining triggers are stored in, locally and on a cluster alike.
Creating a key is atomic in both places, so two writers can never both claim it (one alert per
incident, one retraining run per batch): an exclusive link of a complete temporary file on a
local disk, a conditional PUT (`If-None-Match: *`, which S3, MinIO and moto honour) on an object
store. Updates overwrite the whole document. Why not a JSON-lines file with a lock, as before:
object stores have neither append nor locks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any


def _file_name(key: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", key)[:120]
    if safe != key:  # keep distinct keys distinct after the substitution
        safe += "-" + hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{safe}.json"


class KeyedStore:
    """JSON documents `<root>/<key>.json`; `root` is a folder or a URL such as s3://b/p."""

    def __init__(self, root: str | Path) -> None:
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        self.root = str(root).rstrip("/")
        self.fs, self.base = fsspec.core.url_to_fs(self.root)
        self.local = isinstance(self.fs, LocalFileSystem)

    def path(self, key: str) -> str:
        return f"{self.base}/{_file_name(key)}"

    def create(self, key: str, doc: dict[str, Any]) -> bool:
        """Store `doc` under `key` unless the key exists. True if this call created it."""
        data = json.dumps({"key": key, **doc}, sort_keys=True, default=str).encode()
        path = self.path(key)
        if self.local:
            return _create_local(Path(path), data)
        try:
            self.fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            return False
        except OSError:
            # some servers answer the precondition without saying which one: look
            self.fs.invalidate_cache(path)
            if self.fs.exists(path):
                return False
            raise
        return True

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            with self.fs.open(self.path(key), "rb") as fh:
                return json.loads(fh.read())
        except FileNotFoundError:
            return None

    def put(self, key: str, doc: dict[str, Any]) -> None:
        data = json.dumps({"key": key, **doc}, sort_keys=True, default=str).encode()
        path = self.path(key)
        if self.local:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp.", dir=Path(path).parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, data)

    def update(self, key: str, **fields: Any) -> dict[str, Any] | None:
        """Merge `fields` into an existing document; None if the key does not exist."""
        doc = self.get(key)
        if doc is None:
            return None
        doc.update(fields)
        self.put(key, doc)
        return doc

    def entries(self) -> list[dict[str, Any]]:
        """Every document, oldest first (by its `ts`); unreadable ones are skipped."""
        try:
            names = self.fs.ls(self.base, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            leaf = str(name).rsplit("/", 1)[-1]
            if not leaf.endswith(".json") or leaf.startswith("."):
                continue
            try:
                with self.fs.open(name, "rb") as fh:
                    out.append(json.loads(fh.read()))
            except (OSError, json.JSONDecodeError):
                continue  # a document being replaced, or not ours
        return sorted(out, key=lambda d: d.get("ts") or 0)


def _create_local(path: Path, data: bytes) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, path)  # fails if the key exists; readers never see a partial file
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)
