"""Terminal output of a local run: compact progress lines on screen, kfp.local's full log in a file.

kfp.local prints everything (its own logging and the tasks' streamed output) to sys.stdout; this
tee keeps all of it in the run's log file, without colour codes (a file is read in editors and
grep, not a terminal), and shows the lines that say where the run is, including one line per
tuning trial and a stage's warnings; of an executor input dump (~100-300 lines of JSON, 90% of a
cached re-run's log) one line (`--verbose` shows it). kfp.local's formats: kfp_local_internals.py.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from pipelines import kfp_local_internals as kfp_local

_TRIAL = re.compile(r"\[tune ([\w-]+)\] trial (\d+)(?:: (.*)| failed: (.*))")
# a stage's non-blocking finding, as its component logs it (components/validate/validate.py)
_WARNING = re.compile(r"^\s*(warning: [\w-]+: .+)")


def strip_ansi(text: str) -> str:
    return kfp_local.ANSI.sub("", text)


class ProgressTee:
    """A file-like stdout replacement: everything to `log`, progress lines to `screen`."""

    def __init__(
        self,
        log: TextIO,
        screen: TextIO,
        verbose: bool = False,
        cached_record: Callable[[str], Any] | None = None,
    ) -> None:
        """`cached_record(key prefix)`: the task record (`.task`, `.wall_s`) kept in a cache
        entry, to name a cached task as it ran (`tune-lightgbm`, not `tune`) with its time."""
        self.log, self.screen, self.verbose = log, screen, verbose
        self.cached_record = cached_record
        self._buffer = ""
        self._started: dict[str, list[float]] = {}
        self._executions: dict[str, int] = {}
        # a finished task that ran more than once, waiting for its record to name it
        self._pending: tuple[str, str, float] | None = None
        self.cache_hits: list[tuple[str, str]] = []  # (task, cache key prefix)
        self._dump: tuple[str, int] | None = None  # inside an executor input: (indent, lines)

    def write(self, text: str) -> int:
        if self.verbose:
            self.screen.write(text)
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            line = strip_ansi(line)  # whole lines: a code may be split across writes
            self._log(line)
            self._progress(line)
        return len(text)

    def _log(self, line: str) -> None:
        """The line to the log file, but for the JSON body of an executor input dump."""
        if self._dump is not None:
            indent, count = self._dump
            if line.startswith(indent + " ") or line == indent + "{":
                self._dump = (indent, count + 1)
                return
            if line == indent + "}":  # its end: one line instead of the body
                self._dump = None
                self.log.write(f"{indent}({count + 1} lines of JSON not kept in the log)\n")
                return
            self._dump = None  # not the JSON we expected: keep logging everything
        if m := kfp_local.EXECUTOR_INPUT.match(line):
            self._dump = (m.group(1), 0)
        self.log.write(line + "\n")

    def close(self) -> None:
        """The last partial line to the log, a finished task still waiting for its name."""
        if self._buffer:
            self.log.write(strip_ansi(self._buffer) + "\n")
            self._buffer = ""
        self._flush_pending()
        self.flush()

    def flush(self) -> None:
        self.log.flush()
        self.screen.flush()

    def isatty(self) -> bool:
        return False

    def _say(self, text: str) -> None:
        if not self.verbose:
            self.screen.write(text + "\n")
            self.screen.flush()

    def _done(self, name: str, status: str, took: float) -> None:
        self._say(f"  [{'done' if status == 'SUCCESS' else 'FAILED':7}] {name} ({took:.1f}s)")

    def _cached_line(self, name: str, key: str) -> str:
        """`tune-lightgbm (30.9s)`: its name and time from the run that computed it."""
        rec = self.cached_record(key) if self.cached_record else None
        if rec is None or not (rec.task == name or rec.task.startswith(name + "-")):
            return name
        return f"{rec.task} ({rec.wall_s:.1f}s)"

    def _flush_pending(self, name: str | None = None) -> None:
        if self._pending is not None:
            base, status, took = self._pending
            self._pending = None
            self._done(name or base, status, took)

    def _progress(self, line: str) -> None:
        m = kfp_local.RECORD_NAME.search(line) if self._pending is not None else None
        if m and self._pending and m.group(1).startswith(self._pending[0] + "-"):
            self._flush_pending(m.group(1))
            return
        if m := _WARNING.search(line):
            self._say(f"  {m.group(1)}")
        elif m := kfp_local.CACHE_HIT.search(line):
            self._flush_pending()
            self.cache_hits.append((m.group(1), m.group(2)))
            self._say(f"  [cached ] {self._cached_line(m.group(1), m.group(2))}")
        elif m := kfp_local.EXECUTING.search(line):
            self._flush_pending()
            name = m.group(1)
            self._started.setdefault(name, []).append(time.perf_counter())
            self._executions[name] = self._executions.get(name, 0) + 1
            self._say(f"  [running] {name} ...")
        elif m := kfp_local.FINISHED.search(line):
            self._flush_pending()
            name, status = m.group(1), m.group(2)
            starts = self._started.get(name) or [time.perf_counter()]
            took = time.perf_counter() - starts.pop(0)
            if self._executions.get(name, 0) > 1 and status == "SUCCESS":
                self._pending = (name, status, took)  # its outputs, printed next, name it
            else:
                self._done(name, status, took)
        elif m := _TRIAL.search(line):
            algorithm, number, ok, failed = m.groups()
            self._say(f"      tune {algorithm} #{number}: {ok or 'failed: ' + failed}")


def original_stdout() -> TextIO:
    return sys.__stdout__ or sys.stdout
