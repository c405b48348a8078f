"""Sweep makespan vs the ideal: how close a backend gets to perfect packing.

Runs a sweep through the CLI on one backend and reads its store:
ideal = sum of the trials' own wall times / parallel slots; ratio = makespan / ideal
(1.00 is perfect; start-up, pre-training and scheduling gaps push it up).

    python benchmarks/makespan.py --backend local
    python benchmarks/makespan.py --backend ray -- --ray-address 127.0.0.1:6390
    python benchmarks/makespan.py --backend slurm -- --wait
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="local")
    p.add_argument("--spec", default=str(ROOT / "sweeps/table1.yaml"))
    p.add_argument("--slots", type=int, default=2, help="trials that can run at once (2 cores here)")
    p.add_argument("extra", nargs="*", help="more CLI arguments, after --")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT) as d:
        results = Path(d) / "r"
        cmd = [sys.executable, str(ROOT / "launch/sweep.py"), a.spec, "--backend", a.backend,
               "--results-dir", str(results), *a.extra]
        start, wall_start = time.perf_counter(), time.time()
        out = subprocess.run(cmd, capture_output=True, text=True)
        makespan = time.perf_counter() - start
        if out.returncode != 0:
            sys.exit(out.stdout + out.stderr)
        df = pd.read_parquet(results / "trials")
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
