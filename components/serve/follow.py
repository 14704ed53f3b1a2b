"""`mlpipe serve models:/NAME@ALIAS` follows the alias: every `interval_s` it asks the registry
which version the alias names and, when that changed (a deploy promoted another version,
`mlpipe rollback` put the previous one back), loads it and swaps it in. What is served locally is
then what the registry says is champion, as the InferenceService is on a cluster.

A version that fails to load is logged and retried at the next check; the server keeps serving
the model it has. Written here (not a library's): the swap needs the server's own app."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from components.serve.model_source import MODEL_URI, alias_version

log = logging.getLogger("mlpipe.serve")


class AliasFollower:
    def __init__(
        self,
        uri: str,
        current: Callable[[], str],
        load_version: Callable[[str], Any],
        swap: Callable[[Any], None],
        interval_s: float = 10.0,
    ) -> None:
        match = MODEL_URI.match(uri)
        if not match or not match["alias"]:
            raise ValueError(f"{uri}: only a models:/<name>@<alias> URI can be followed")
        self.uri = uri
        self.current = current
        self.load_version = load_version
        self.swap = swap
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> str | None:
        """Swap in the version the alias names now, if it changed; returns it (else None)."""
        version = alias_version(self.uri)
        if version == str(self.current()):
            return None
        model = self.load_version(version)
        self.swap(model)
        log.warning("%s now names version %s: serving it", self.uri, version)
        return version

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception as exc:  # keep serving what we have; the next check retries
                log.warning("following %s: %s (still serving version %s)", self.uri, exc,
                            self.current())  # fmt: skip

    def start(self) -> AliasFollower:
        self._thread = threading.Thread(target=self._loop, name="alias-follower", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
