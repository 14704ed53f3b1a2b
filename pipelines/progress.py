"""Terminal output of a local run: compact progress lines on screen, kfp.local's full log in a file.

kfp.local prints everything (its own logging and the tasks' streamed output) to sys.stdout; this
tee keeps all of it in the run's log file and shows the lines that say where the run is, including
one line per tuning trial and a stage's warnings.
"""

from __future__ import annotations

import re
import sys
import time
from typing import TextIO

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXECUTING = re.compile(r"Executing task '?([\w-]+)'?")
_CACHE_HIT = re.compile(r"Task '?([\w-]+)'? cache hit \(key=([0-9a-f]+)\)")
_FINISHED = re.compile(r"Task '?([\w-]+)'? finished with status (\w+)")
_TRIAL = re.compile(r"\[tune ([\w-]+)\] trial (\d+)(?:: (.*)| failed: (.*))")
# a stage's non-blocking finding, as its component logs it (components/validate/validate.py)
_WARNING = re.compile(r"^\s*(warning: [\w-]+: .+)")


class ProgressTee:
    """A file-like stdout replacement: everything to `log`, progress lines to `screen`."""

    def __init__(self, log: TextIO, screen: TextIO, verbose: bool = False) -> None:
        self.log, self.screen, self.verbose = log, screen, verbose
        self._buffer = ""
        self._started: dict[str, list[float]] = {}
        self.cache_hits: list[tuple[str, str]] = []  # (task, cache key prefix)

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
        if m := _WARNING.search(line):
            self._say(f"  {m.group(1)}")
        elif m := _CACHE_HIT.search(line):
            self.cache_hits.append((m.group(1), m.group(2)))
            self._say(f"  [cached ] {m.group(1)}")
        elif m := _EXECUTING.search(line):
            self._started.setdefault(m.group(1), []).append(time.perf_counter())
            self._say(f"  [running] {m.group(1)} ...")
        elif m := _FINISHED.search(line):
            name, status = m.group(1), m.group(2)
            starts = self._started.get(name) or [time.perf_counter()]
            took = time.perf_counter() - starts.pop(0)
            self._say(f"  [{'done' if status == 'SUCCESS' else 'FAILED':7}] {name} ({took:.1f}s)")
        elif m := _TRIAL.search(line):
            algorithm, number, ok, failed = m.groups()
            self._say(f"      tune {algorithm} #{number}: {ok or 'failed: ' + failed}")


def original_stdout() -> TextIO:
    return sys.__stdout__ or sys.stdout
