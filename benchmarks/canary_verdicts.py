"""Canary verdicts that separate breakage from change, on the real model server.

The stable model and every candidate are real LightGBM models trained by the features and train
stages (tests/components/deploy/real_models.py: 5000 rows of each of 2015 and 2016 of the bundled
data); the traffic is deploy's own replayer (components.deploy.replay) sending real 2016 rows as
V1 requests through the local router; the policy is the default one (`deployment.rollout.policy`),
the steps the default 10, 50, 100 %, the windows shorter (`--seconds`) so a run takes minutes.

Candidates:
- `seed1`..`seed5`: retrained challengers of equal quality — each on another sample with another
  training seed (a harder case than the pipeline's retrain on the same rows). Must be promoted.
- `invert`, `error:0.3`: the seed-1 model behind the server's fault switches. Must be rolled back.
- `blank-top3`: trained with its three strongest features set to one value (same feature spec,
  it learned nothing from them). Must be rolled back.
- `drop-top3`: trained without its three strongest features (another feature spec: it refuses
  the champion's requests with 400). Must be refused before any traffic.

For each it prints the offline figures on 2000 2016 rows (test AUC and its difference to the
champion's, PSI and KS of the score distributions, Spearman's rho of both models' scores on the
same rows), then the rollout's verdict, reason and the last window's figures, `--repeats` times
(the same replay must give the same verdict). Exit status 1 if any verdict is not the expected
one.

    uv run python benchmarks/canary_verdicts.py [--seconds 2] [--repeats 2] [--only seed1,invert]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from components.common.config import RolloutPolicy
from components.deploy.analysis import Policy, ks_statistic, psi, rank_correlation
from components.deploy.backend import ServeBackend
from components.deploy.local_target import LocalTarget
from components.deploy.replay import Replay
from components.deploy.rollout import Candidate, Rollout, WindowSpec
from tests.components.deploy.real_models import STRONGEST, train_lightgbm
from tests.conftest import DATA_FILE

NAME = "acs-employment"
EXPECTED = {
    **{f"seed{s}": "promoted" for s in range(1, 6)},
    "invert": "rolled_back",
    "error:0.3": "rolled_back",
    "blank-top3": "rolled_back",
    "drop-top3": "refused",
}


def strongest(model_dir: Path, frame: pd.DataFrame, y: np.ndarray, k: int = 3) -> list[str]:
    """The k features whose shuffling costs the most test AUC (permutation importance)."""
    from sklearn.metrics import roc_auc_score

    from components.serve.model_source import load_model_source

    pipe = load_model_source(model_dir).pipeline
    base = roc_auc_score(y, pipe.predict_proba(frame)[:, 1])
    rng = np.random.default_rng(0)
    loss = {}
    for name in frame.columns:
        shuffled = frame.assign(**{name: rng.permutation(frame[name].to_numpy())})
        loss[name] = base - roc_auc_score(y, pipe.predict_proba(shuffled)[:, 1])
    top = sorted(loss, key=loss.get, reverse=True)[:k]
    print("permutation importance (AUC lost):", {n: round(loss[n], 4) for n in top})
    return top


def offline(stable: Path, candidate: Path, rows: pd.DataFrame, invert: bool = False) -> str:
    from sklearn.metrics import roc_auc_score

    from components.serve.model_source import load_model_source

    def scores(model_dir: Path) -> np.ndarray:
        loaded = load_model_source(model_dir)
        names = [f["name"] for f in loaded.spec["features"]]
        return loaded.pipeline.predict_proba(rows[names])[:, 1]

    a, b = scores(stable), scores(candidate)
    b = 1 - b if invert else b
    y = rows["employed"].to_numpy()
    auc_a, auc_b = roc_auc_score(y, a), roc_auc_score(y, b)
    return (
        f"auc {auc_b:.4f} ({auc_b - auc_a:+.4f}) psi {psi(a, b):.3f} ks {ks_statistic(a, b):.3f} "
        f"rho {rank_correlation(a, b):.3f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    only = [c for c in args.only.split(",") if c] or list(EXPECTED)
    policy = Policy.from_config(RolloutPolicy())  # the default policy
    window = WindowSpec(args.seconds, policy.min_canary_requests, 300, 0.5)

    data = pd.read_parquet(DATA_FILE)
    work = Path(tempfile.mkdtemp(prefix="canary-verdicts-"))
    started = time.perf_counter()
    stable = train_lightgbm(work / "stable", 0, 7, data)
    names = [
        f["name"]
        for f in __import__("json").loads((stable / "feature_spec.json").read_text())["features"]
    ]
    rows = data[data.year == 2016].sample(2000, random_state=2016)
    top = strongest(stable, rows[names], rows["employed"].to_numpy())
    if tuple(top) != STRONGEST:
        print(f"note: the strongest features here are {top}, tests use {STRONGEST}")
    models: dict[str, tuple[Path, str | None]] = {}
    for s in range(1, 6):
        models[f"seed{s}"] = (train_lightgbm(work / f"seed{s}", s, s, data), None)
    models["invert"] = (models["seed1"][0], "invert")
    models["error:0.3"] = (models["seed1"][0], "error:0.3")
    models["blank-top3"] = (train_lightgbm(work / "blank", 0, 7, data, blank=tuple(top)), None)
    models["drop-top3"] = (train_lightgbm(work / "drop", 0, 7, data, drop=tuple(top)), None)
    print(f"trained {len(models) - 2} models in {time.perf_counter() - started:.0f} s\n")

    replay_rows = [
        {k: int(v) for k, v in r.items()} for r in rows[names].to_dict("records")
    ]  # the champion's requests: its feature spec's columns
    wrong = 0
    with ServeBackend(timeout_s=300) as backend:  # a loaded machine: imports take long
        for label in only:
            model_dir, fault = models[label]
            print(f"{label:11s} offline: {offline(stable, model_dir, rows, fault == 'invert')}")
            for run in range(args.repeats):
                with LocalTarget.serve(backend, str(stable), NAME, version="v1") as target:
                    rollout = Rollout(target, window=window, policy=policy)
                    with Replay(target.url, NAME, replay_rows, clients=2) as replay:
                        time.sleep(0.5)  # the champion answers requests before the candidate
                        result = rollout.run(Candidate(str(model_dir), label, fault))
                verdict = result.outcome
                if verdict == "rolled_back" and "refused before any traffic" in result.reason:
                    verdict = "refused"
                last = result.windows[-1].metrics if result.windows else {}
                figures = " ".join(
                    f"{k} {last[k]:.3g}"
                    for k in ("psi", "ks", "rank_correlation", "pairs", "canary_error_rate")
                    if k in last
                )
                if result.windows:  # the worst window: the first (fewest samples), usually
                    psis = [w.metrics["psi"] for w in result.windows if "psi" in w.metrics]
                    rhos = [
                        w.metrics["rank_correlation"]
                        for w in result.windows
                        if "rank_correlation" in w.metrics
                    ]
                    figures += f"; max psi {max(psis, default=float('nan')):.3g}"
                    figures += f" min rho {min(rhos, default=float('nan')):.3g}"
                ok = verdict == EXPECTED[label]
                wrong += not ok
                print(
                    f"  run {run + 1}: {verdict:11s} {'ok' if ok else 'UNEXPECTED'} "
                    f"steps {result.steps} {result.seconds:.1f} s; last window: {figures}; "
                    f"{result.reason[:300]}; clients: {replay.ok} ok, {dict(replay.failures)}"
                )
    print(
        f"\n{len(only) * args.repeats - wrong} of {len(only) * args.repeats} verdicts as expected"
    )
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
