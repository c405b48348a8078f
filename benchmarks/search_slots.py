"""How busy a search keeps its slots: sum of the trials' wall times / (slots x the search's span,
first start to last finish), read from the store, as issue 27 measured it (57% for a search
whose trials train 25 or 200 epochs, when a batch waited for its slowest trial).

    python benchmarks/search_slots.py                  # 12 toy trials of 2 or 20 epochs, 2 slots
    python benchmarks/search_slots.py --trials 24 --epochs 1 40

The search samples the trial length (``train.epochs``) and the hidden size at random, so
short and long trials mix as they do in a PreRNN sweep (h=8 vs matched sizes). Runs the
CLI on the local backend in a temporary directory.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def spec(trials: int, epochs: list[int]) -> dict:
    return {"name": "slots", "task": "toy",
            "data": {"source": "toy", "train_videos": 16, "test_videos": 4, "frames": 4, "size": 8},
            "backbone": {"name": "mini_vgg", "pretrained": "none"},
            "train": {"epochs": epochs[0], "batch_size": 4, "lr": 0.01, "schedule": "constant"},
            "grid": [{"model": "traditional", "cell": "gru", "hidden_dim": 8}],
            "search": {"n_trials": trials, "sampler": "random", "pruner": "none", "seed": 0,
                       "space": {"train.epochs": {"choices": epochs},
                                 "hidden_dim": {"low": 2, "high": 64, "integer": True, "log": True}}}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--epochs", type=int, nargs="+", default=[2, 20], help="the trial lengths sampled")
    p.add_argument("--slots", type=int, default=2)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT) as d:
        path, results = Path(d) / "slots.yaml", Path(d) / "r"
        path.write_text(yaml.safe_dump(spec(a.trials, a.epochs)))
        out = subprocess.run([sys.executable, str(ROOT / "launch/sweep.py"), str(path), "--results-dir", str(results),
                              "--workers", str(a.slots)], capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(out.stdout + out.stderr)
        df = pd.read_parquet(results / "trials")
    span = (df.finished_at.max() - df.started_at.min()).total_seconds()
    busy = df.wall_seconds.sum() / (a.slots * span)
    print(f"{len(df)} trials, epochs {sorted(a.epochs)} sampled, {a.slots} slots: span {span:.1f} s, sum of trial times "
          f"{df.wall_seconds.sum():.1f} s, slots busy {100 * busy:.0f}% of the span")


if __name__ == "__main__":
    main()
