"""Per-trial overhead of a backend, measured with trivial trials.

Runs N trivial toy trials (1 epoch on one 8x8 frame) through the backend and the
real store. Overhead per trial = (makespan - sum of in-trial time / workers) / (N / workers):
the time a worker slot spends per trial outside ``run_trial``'s own work
(dispatch, result passing, worker start-up amortised over the sweep).

    python benchmarks/backend_overhead.py --backend local --trials 200
    python benchmarks/backend_overhead.py --backend ray --trials 40 --ray-address 127.0.0.1:6390
    python benchmarks/backend_overhead.py --backend slurm --trials 40
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from launch.backends import create  # noqa: E402
from launch.expand import expand  # noqa: E402
from launch.launcher import Launcher  # noqa: E402
from launch.spec import SweepSpec  # noqa: E402
from prernn.settings import parse  # noqa: E402

TRIVIAL = {
    "name": "overhead", "task": "toy", "profile": "mini",
    "data": {"source": "toy", "train_videos": 1, "test_videos": 1, "frames": 1, "size": 8},
    "backbone": {"name": "mini_vgg", "pretrained": "none"},
    "train": {"epochs": 1, "batch_size": 1, "lr": 0.01, "schedule": "constant"},
    "grid": [{"model": "traditional", "cell": "vrnn", "hidden_dim": 2}],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="local")
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--ray-address")
    a = p.parse_args()
    # each backend's options as the command line would give them
    options = {"local": {"workers": a.workers, "max_failures": 0}, "ray": {"ray_address": a.ray_address, "max_failures": 0},
               "slurm": {"wait": True}}[a.backend]
    spec = parse(SweepSpec, {**TRIVIAL, "seeds": list(range(a.trials))})
    trials = expand(spec)
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as root:  # SLURM jobs must see it
        backend = create(a.backend, spec, options)
        start, wall_start = time.perf_counter(), time.time()
        with Launcher(spec, trials, Path(root), backend) as launcher:  # the CLI's loop, without its printing
            launcher.start(trials)
            launcher.run(trials)
        makespan = time.perf_counter() - start
        df = pd.read_parquet(Path(root) / "trials")
    assert len(df) == a.trials and (df.status == "completed").all()
    inside = df.wall_seconds.sum()
    per_trial = (makespan - inside / a.workers) / (a.trials / a.workers)
    # steady state: from the first trial's start to the last one's end, start-up excluded
    span = (df.finished_at.max() - df.started_at.min()).total_seconds()
    steady = (span - inside / a.workers) / (a.trials / a.workers)
    startup = (df.started_at.min().timestamp() - wall_start)
    print(f"backend={a.backend} trials={a.trials} workers={a.workers}")
    print(f"makespan {makespan:.2f} s; in-trial time {inside:.2f} s (mean {df.wall_seconds.mean() * 1000:.1f} ms, "
          f"median {df.wall_seconds.median() * 1000:.1f} ms)")
    print(f"overhead per trial {per_trial * 1000:.1f} ms (worker start-up included, amortised)")
    print(f"start-up to the first trial {startup:.2f} s; steady-state overhead per trial {steady * 1000:.1f} ms")


if __name__ == "__main__":
    main()
