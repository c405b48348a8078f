"""Sweep makespan vs the ideal: how close a backend gets to perfect packing.

Runs a sweep through the CLI on one backend and reads its store:
ideal = sum of the trials' own wall times / parallel slots; ratio = makespan / ideal
(1.00 is perfect; start-up, pre-training and scheduling gaps push it up).

    python benchmarks/makespan.py --backend local
    python benchmarks/makespan.py --backend ray -- --ray-address 127.0.0.1:6390
    python benchmarks/makespan.py --backend slurm -- --wait

``--search``: a random search instead (issue 27), 40 toy trials of E or 10E epochs (``--epochs``)
with distinct learning rates, so that trial lengths differ by 10x; busy fraction = sum of the
trials' wall times / (slots x span), the span from the first trial's start to the last one's
end, and the same over the whole command (start-up included).

    python benchmarks/makespan.py --search --backend local -- --workers 2
    python benchmarks/makespan.py --search --backend ray -- --ray-address 127.0.0.1:6390
    python benchmarks/makespan.py --search --backend slurm --epochs 8 80 -- --wait --max-running 2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def search_spec(trials: int, epochs: list[int]) -> dict:
    """A toy random search whose trials train ``epochs[0]`` or ``epochs[1]`` epochs (each a second or so on 2 cores)."""
    return {"name": "makespan", "task": "toy",
            "data": {"source": "toy", "train_videos": 48, "test_videos": 8, "frames": 4, "size": 32},
            "backbone": {"name": "mini_vgg", "pretrained": "none"},
            "train": {"epochs": epochs[0], "batch_size": 4, "lr": 0.01, "schedule": "constant"},
            "grid": [{"model": "traditional", "cell": "gru", "hidden_dim": 8}],
            "search": {"n_trials": trials, "sampler": "random", "pruner": "none", "seed": 0,
                       "space": {"train.epochs": {"choices": list(epochs)},
                                 "train.lr": {"low": 0.001, "high": 0.1, "log": True}}}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="local")
    p.add_argument("--spec", default=str(ROOT / "sweeps/table1.yaml"))
    p.add_argument("--slots", type=int, default=2, help="trials that can run at once (2 cores here)")
    p.add_argument("--search", action="store_true", help="the search scenario (issue 27)")
    p.add_argument("--trials", type=int, default=40, help="the search's trials")
    p.add_argument("--epochs", type=int, nargs=2, default=[2, 20], metavar=("SHORT", "LONG"),
                   help="the search's two trial lengths, in epochs")
    p.add_argument("extra", nargs="*", help="more CLI arguments, after --")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT) as d:
        results = Path(d) / "r"
        if a.search:
            a.spec = str(Path(d) / "search.yaml")
            Path(a.spec).write_text(yaml.safe_dump(search_spec(a.trials, a.epochs)))
        cmd = [sys.executable, str(ROOT / "launch/sweep.py"), a.spec, "--backend", a.backend,
               "--results-dir", str(results), *a.extra]
        start, wall_start = time.perf_counter(), time.time()
        out = subprocess.run(cmd, capture_output=True, text=True)
        makespan = time.perf_counter() - start
        if out.returncode != 0:
            sys.exit(out.stdout + out.stderr)
        df = pd.read_parquet(results / "trials")
    if a.search:
        span = (df.finished_at.max() - df.started_at.min()).total_seconds()
        busy = df.wall_seconds.sum()
        print(f"backend={a.backend} search trials={len(df)} epochs={a.epochs} slots={a.slots} "
              f"({(df.epochs_done == a.epochs[1]).sum()} long)")
        print(f"sum of trial times {busy:.1f} s; span {span:.1f} s; command {makespan:.1f} s")
        print(f"busy fraction {busy / (a.slots * span):.3f} over the span, {busy / (a.slots * makespan):.3f} "
              f"over the command; a slot idle {(a.slots * span - busy) / len(df):.2f} s per trial")
        print(f"{df.worker.str.split('/').str[:2].str.join('/').nunique()} workers ran them "
              "(local slots, Ray workers, SLURM jobs)")
        return
    ideal = df.wall_seconds.sum() / a.slots
    startup = df.started_at.min().timestamp() - wall_start
    ends = df.finished_at.sort_values()
    tail = (ends.iloc[-1] - ends.iloc[-2]).total_seconds() if len(ends) > 1 else 0.0  # the last trial alone
    print(f"backend={a.backend} spec={Path(a.spec).name} trials={len(df)} slots={a.slots}")
    print(f"makespan {makespan:.1f} s; sum of trial times {df.wall_seconds.sum():.1f} s; ideal {ideal:.1f} s")
    print(f"start-up to the first trial {startup:.1f} s (pre-training when not cached); "
          f"the last trial ran alone for {tail:.1f} s")
    print(f"makespan / ideal = {makespan / ideal:.3f}")


if __name__ == "__main__":
    main()
