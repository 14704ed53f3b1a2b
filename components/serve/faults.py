"""Fault injection for rollout tests: a server that answers wrongly, fails or is slow on purpose,
so a canary controller can be shown to roll it back.

Spec (CLI `--fault`, repeatable or comma-separated; env MLPIPE_SERVE_FAULT):
  invert        return 1 - p instead of p (a model that answers differently)
  error:0.3     30 % of predict requests answer HTTP 500
  latency:20    add 20 ms to every predict request (non-blocking sleep)

A fault takes effect only with an explicit switch that the production images never set: CLI
`--allow-faults` or env MLPIPE_ALLOW_FAULTS=1. A fault configured without it is refused at
startup (`FaultsNotAllowed`), so a stray MLPIPE_SERVE_FAULT cannot break a production server.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

FAULT_ENV = "MLPIPE_SERVE_FAULT"
ALLOW_ENV = "MLPIPE_ALLOW_FAULTS"


class FaultsNotAllowed(ValueError):
    """A fault was configured without `--allow-faults` / MLPIPE_ALLOW_FAULTS=1."""


@dataclass(frozen=True)
class Faults:
    invert: bool = False
    error_rate: float = 0.0
    latency_ms: float = 0.0
    seed: int | None = None

    @property
    def active(self) -> bool:
        return self.invert or self.error_rate > 0 or self.latency_ms > 0

    def describe(self) -> str:
        parts = ["invert"] if self.invert else []
        if self.error_rate:
            parts.append(f"error:{self.error_rate:g}")
        if self.latency_ms:
            parts.append(f"latency:{self.latency_ms:g}")
        return ",".join(parts) or "none"

    def rng(self) -> random.Random:
        return random.Random(self.seed)


def parse_faults(specs: list[str] | str | None, seed: int | None = None) -> Faults:
    """`["invert", "error:0.3"]` or `"invert,latency:20"` → Faults; ValueError on a bad spec."""
    if specs is None:
        specs = []
    if isinstance(specs, str):
        specs = [specs]
    invert, error_rate, latency_ms = False, 0.0, 0.0
    for item in (p.strip() for spec in specs for p in spec.split(",")):
        if not item or item == "none":
            continue
        name, _, arg = item.partition(":")
        try:
            if name == "invert" and not arg:
                invert = True
            elif name == "error":
                error_rate = float(arg)
                if not 0.0 <= error_rate <= 1.0:
                    raise ValueError
            elif name == "latency":
                latency_ms = float(arg)
                if latency_ms < 0:
                    raise ValueError
            else:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"bad fault {item!r}: use invert, error:<rate 0..1> or latency:<ms>"
            ) from None
    return Faults(invert, error_rate, latency_ms, seed)


def faults_allowed(flag: bool = False) -> bool:
    """The explicit switch: the CLI flag, or MLPIPE_ALLOW_FAULTS=1."""
    return flag or os.environ.get(ALLOW_ENV, "").strip() == "1"


def require_allowed(faults: Faults, allow: bool = False) -> Faults:
    """`faults`, or FaultsNotAllowed if any is active without the explicit switch."""
    if faults.active and not faults_allowed(allow):
        raise FaultsNotAllowed(
            f"fault injection ({faults.describe()}) is off in this server: pass --allow-faults "
            f"or set {ALLOW_ENV}=1 to inject faults (tests and local rollouts only)"
        )
    return faults


def faults_from_env(cli: list[str] | None = None, allow: bool = False) -> Faults:
    """The CLI's faults, else MLPIPE_SERVE_FAULT's; FaultsNotAllowed (a ValueError) if any is
    set without `allow` (`--allow-faults`) or MLPIPE_ALLOW_FAULTS=1."""
    seed = os.environ.get("MLPIPE_SERVE_FAULT_SEED")
    faults = parse_faults(cli or os.environ.get(FAULT_ENV), int(seed) if seed else None)
    return require_allowed(faults, allow)
