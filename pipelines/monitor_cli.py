"""`mlpipe monitor`: run the monitoring pipeline locally, once or in a foreground loop.

mlpipe monitor --batch FILE|GLOB [--every 1h] [--no-retrain]
mlpipe monitor --request-log FILE [--labels FILE [--label-column COL]] [--every 1h]
mlpipe simulate [--shift [YEAR ...]] [--sample N] [--years 2016 2017 2018]

Each run compares the batch (or the logged traffic) with the registry champion's training
statistics, alerts once per incident and, when it decides `retrain`, runs the training pipeline
with the window extended to the batch (the gate still decides promotion). `--every` repeats it in
the foreground; a batch already monitored stays quiet (same incident, same trigger). Instead of
the loop, a cron line or a systemd timer can run `mlpipe monitor` once per interval (README).
Within one `--every` loop a batch whose content (and labels) it already assessed is skipped: each
interval assesses only new or changed files, and says "no new batch" when there is none.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path
from typing import Any

from components.common.config import REPO_ROOT, ConfigError, parse_duration
from pipelines.cli_args import (
    add_config_args,
    add_output_dir_arg,
    add_tfdv_python_arg,
    add_verbose_arg,
    settings_from_args,
)


def _files(args: argparse.Namespace) -> list[str]:
    if args.request_log:
        return [args.request_log]
    found = sorted(glob.glob(args.batch)) if glob.has_magic(args.batch) else [args.batch]
    if not found:
        raise ConfigError(f"--batch {args.batch}: no file matches")
    return found


def _batch_key(file: str, labels: str | None) -> str:
    """The batch's content (and its labels'): a file rewritten with the same rows is the same
    batch; a request log that grew, or new labels, is new. "" when unreadable (the run says)."""
    from components.common.artifacts import sha256_file

    try:
        return sha256_file(file) + (sha256_file(labels) if labels else "")
    except OSError:
        return ""


def _check_labels(args: argparse.Namespace, settings: Any) -> str | None:
    """A labels file without its columns is the user's mistake: say so before any run (no
    failed run, no pipeline_failure alert). The error names the columns the file has."""
    if args.label_column and not args.labels:
        return "--label-column needs --labels FILE"
    if not args.labels:
        return None
    from components.common.errors import DataError
    from components.monitor.batch import read_labels

    try:
        read_labels(
            args.labels,
            settings.schema_.label.name,
            settings.pipeline.data_ingestion.delimiter,
            args.label_column or "",
        )
    except DataError as exc:
        return str(exc)
    return None


def cmd_monitor(args: argparse.Namespace) -> int:
    from components.common.alerts import AlertSink
    from pipelines.monitoring_run import format_monitoring_summary, run_monitoring_local

    settings = settings_from_args(args)
    problem = _check_labels(args, settings)
    if problem:
        print(f"mlpipe monitor: {problem}", file=sys.stderr)
        return 2
    mon = settings.pipeline.monitoring
    every = parse_duration(args.every) if args.every else None
    sink = AlertSink.from_config(mon, Path(args.output_dir) / "logs")
    kind = "request_log" if args.request_log else "batch"
    iteration, worst = 0, 0
    assessed: set[str] = set()  # content digests of the batches this loop already assessed
    while True:
        iteration += 1
        fresh = 0
        for file in _files(args):
            key = _batch_key(file, args.labels)
            if key in assessed:  # the same rows again: no new MLflow run, report or alert
                continue
            fresh += 1
            print(f"mlpipe: monitoring {file} ({kind})", flush=True)
            run = run_monitoring_local(
                settings,
                file,
                kind,
                args.labels or "",
                args.output_dir,
                args.tfdv_python,
                retrain=not args.no_retrain,
                verbose=args.verbose,
                sink=sink,
                labels_column=args.label_column or "",
            )
            print(format_monitoring_summary(run), flush=True)
            worst = max(worst, 0 if run.ok else 1)
            if run.ok and key:  # a failed check is tried again next interval
                assessed.add(key)
        if not fresh:
            print(f"mlpipe: no new batch ({len(assessed)} already assessed)", flush=True)
        if every is None or (args.iterations and iteration >= args.iterations):
            return worst
        print(f"mlpipe: next check in {args.every} (Ctrl-C stops)", flush=True)
        time.sleep(every)


def cmd_simulate(args: argparse.Namespace) -> int:
    from pipelines.simulate import format_timeline, simulate

    settings = settings_from_args(args)
    started = time.perf_counter()
    timeline = simulate(
        settings,
        Path(args.output_dir),
        years=tuple(args.years),
        shift_years=tuple(args.shift or [2017]) if args.shift is not None else (),
        sample=args.sample,
        fast_training=not args.full_training,
    )
    print()
    print(format_timeline(timeline))
    print(f"simulated {len(timeline)} batches in {time.perf_counter() - started:.0f} s")
    return 0


def add_monitor_parser(sub: Any) -> None:
    """Register `mlpipe monitor` and `mlpipe simulate` on the CLI's subparsers."""
    p = sub.add_parser("monitor", help="drift and decay of a batch or the request log; alerts")
    add_config_args(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--batch", help="a batch file (Parquet, CSV, JSON lines) or a glob")
    what.add_argument("--request-log", help="the model server's JSON-lines request log")
    p.add_argument(
        "--labels",
        metavar="FILE",
        help="late labels for the request log: columns request_id, the label column "
        "(see --label-column) and optionally row",
    )
    p.add_argument(
        "--label-column",
        metavar="COL",
        help="the labels file's label column (default: the schema's label name)",
    )
    p.add_argument("--every", help="repeat in the foreground at this interval (e.g. 1h, 15m)")
    p.add_argument("--iterations", type=int, default=0, help="stop after N loops (0: never)")
    p.add_argument("--no-retrain", action="store_true", help="decide and alert, never retrain")
    add_output_dir_arg(p)
    add_tfdv_python_arg(p)
    add_verbose_arg(p)
    p.set_defaults(func=cmd_monitor)

    sim = sub.add_parser("simulate", help="replay 2016-2018: serve, monitor, retrain, canary")
    add_config_args(sim)
    sim.add_argument("--years", type=int, nargs="+", default=[2016, 2017, 2018])
    sim.add_argument(
        "--shift",
        type=int,
        nargs="*",
        metavar="YEAR",
        help="replace these years' batches by shifted ones (no year given: 2017)",
    )
    sim.add_argument("--sample", type=int, default=None, help="rows per year (default: all)")
    sim.add_argument("--full-training", action="store_true", help="the config's tuning too")
    add_output_dir_arg(sim, REPO_ROOT / "outputs" / "simulate")
    sim.set_defaults(func=cmd_simulate)
