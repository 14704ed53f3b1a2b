"""`mlpipe`: run the pipeline locally, compile it for a cluster.

mlpipe run [--config F] [--schema F] [--set key=value ...] [--output-dir D] [-v]
mlpipe compile [--output F] [--pipeline training|monitoring]
mlpipe data list | show VERSION | watermarks | reset-watermark KEY
mlpipe approve VERSION | reject VERSION [--reason R] | rollback | models
mlpipe runs [--limit N] [--experiment E] | runs show ID | runs compare ID ID
mlpipe submit [--param k=v ...] [--wait] | schedule [--cron C] | schedule --list | --disable NAME
mlpipe serve [--model models:/NAME@champion | DIR] [--port 8080] [--request-log F]
             [--allow-faults --fault SPEC]
mlpipe monitor --batch FILE | --request-log FILE [--labels FILE] [--every 1h]
mlpipe simulate [--shift [YEAR ...]] [--sample N] [--years ...]
mlpipe clean [--keep N] [--all] [--dry-run]
mlpipe schema infer DATA --label COL [--time-column COL] [--id-column COL] [-o FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from components.common.config import REPO_ROOT, ConfigError
from pipelines.cli_args import (
    add_config_args,
    add_output_dir_arg,
    add_profile_arg,
    add_tfdv_python_arg,
    add_verbose_arg,
    settings_from_args,
)


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.local_run import append_summary, format_summary, run_local

    settings = settings_from_args(args)
    print(f"mlpipe: running the training pipeline locally (config {args.config})", flush=True)
    result = run_local(
        settings,
        args.output_dir,
        args.tfdv_python,
        verbose=args.verbose,
        use_cache=not args.no_cache,
    )
    summary = format_summary(result, settings)
    print(summary, flush=True)
    append_summary(result, summary)  # the log ends the way the console did
    return 0 if result.ok else 1


def cmd_compile(args: argparse.Namespace) -> int:
    from pipelines.kfp_package import compile_package

    settings = settings_from_args(args)
    output = Path(args.output or REPO_ROOT / "outputs" / f"{args.pipeline}_pipeline.yaml")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(compile_package(settings, args.pipeline).yaml_bytes)
    print(f"wrote {output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlpipe", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the training pipeline locally with kfp.local")
    add_config_args(run)
    add_output_dir_arg(run)
    add_tfdv_python_arg(run)
    add_verbose_arg(run)
    run.add_argument("--no-cache", action="store_true", help="execute every task again")
    run.set_defaults(func=cmd_run)

    comp = sub.add_parser("compile", help="write the pipeline spec YAML for KFP")
    add_config_args(comp)
    comp.add_argument("--output", default=None, help="default outputs/<pipeline>_pipeline.yaml")
    comp.add_argument("--pipeline", default="training", choices=["training", "monitoring"])
    add_profile_arg(comp)
    comp.set_defaults(func=cmd_compile)

    from pipelines.data_cli import add_data_parser

    add_data_parser(sub)  # mlpipe data list | show | watermarks | reset-watermark

    from pipelines.registry_cli import add_registry_parser

    add_registry_parser(sub)  # mlpipe approve | reject | rollback | models
    from pipelines.runs_cli import add_runs_parser

    add_runs_parser(sub)  # mlpipe runs | runs show | runs compare: past runs from MLflow
    from pipelines.submit_cli import add_submit_parser

    add_submit_parser(sub)  # mlpipe submit | schedule (a KFP cluster)
    from pipelines.serve_cli import add_serve_parser

    add_serve_parser(sub)  # mlpipe serve: the champion (or a model dir) in the foreground
    from pipelines.monitor_cli import add_monitor_parser

    add_monitor_parser(sub)  # mlpipe monitor | simulate
    from pipelines.schema_cli import add_schema_parser

    add_schema_parser(sub)  # mlpipe schema infer: a draft data schema from data
    from pipelines.clean_cli import add_clean_parser

    add_clean_parser(sub)  # mlpipe clean: old runs' outputs (the registry stays)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"mlpipe: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlpipe: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
