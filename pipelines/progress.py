"""Terminal output of a local run: compact progress lines on screen, kfp.local's full log in a file.

kfp.local prints everything (its own logging and the tasks' streamed output) to sys.stdout; this
tee keeps all of it in the run's log file and shows the lines that say where the run is.
"""

from __future__ import annotations

import re
import sys
import time
from typing import TextIO

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXECUTING = re.compile(r"Executing task '?([\w-]+)'?")
_CACHE_HIT = re.compile(r"Task '?([\w-]+)'? cache hit")
_FINISHED = re.compile(r"Task '?([\w-]+)'? finished with status (\w+)")


class ProgressTee:
    """A file-like stdout replacement: everything to `log`, progress lines to `screen`."""

    def __init__(self, log: TextIO, screen: TextIO, verbose: bool = False) -> None:
        self.log, self.screen, self.verbose = log, screen, verbose
        self._buffer = ""
        self._started: dict[str, float] = {}
        self.cache_hits: list[str] = []
        self.executed: list[str] = []

    def write(self, text: str) -> int:
        self.log.write(text)
        if self.verbose:
            self.screen.write(text)
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._progress(_ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        self.screen.flush()

    def isatty(self) -> bool:
        return False

    def _say(self, text: str) -> None:
        if not self.verbose:
            self.screen.write(text + "\n")
            self.screen.flush()

    def _progress(self, line: str) -> None:
        if m := _CACHE_HIT.search(line):
            self.cache_hits.append(m.group(1))
            self._say(f"  [cached ] {m.group(1)}")
        elif m := _EXECUTING.search(line):
            self._started[m.group(1)] = time.perf_counter()
            self._say(f"  [running] {m.group(1)} ...")
        elif m := _FINISHED.search(line):
            name, status = m.group(1), m.group(2)
            took = time.perf_counter() - self._started.get(name, time.perf_counter())
            if status == "SUCCESS":
                self.executed.append(name)
            self._say(f"  [{'done' if status == 'SUCCESS' else 'FAILED':7}] {name} ({took:.1f}s)")


def original_stdout() -> TextIO:
    return sys.__stdout__ or sys.stdout
