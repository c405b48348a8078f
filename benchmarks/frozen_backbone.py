"""Frozen backbone with shared cached features vs fine-tuning the whole backbone.

Runs the same sweep through the CLI twice with a warm pre-training cache: once as
shipped, once with ``--set train.freeze_backbone=true`` (conv features computed once
per dataset, shared by every trial). Prints both wall times and the speed-up.

    python benchmarks/frozen_backbone.py                    # mini Table 1
    python benchmarks/frozen_backbone.py --spec sweeps/table2.yaml
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sweep(spec: str, results: Path, env: dict, *sets: str) -> float:
    cmd = [sys.executable, str(ROOT / "launch/sweep.py"), spec, "--results-dir", str(results)]
    for s in sets:
        cmd += ["--set", s]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(out.stdout + out.stderr)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", default=str(ROOT / "sweeps/table1.yaml"))
    a = p.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT) as d:
        env = {**os.environ, "PRERNN_CACHE": str(Path(d) / "cache")}
        # warm the pre-training cache with a one-epoch run, so neither timing includes it
        sweep(a.spec, Path(d) / "warm", env, "train.epochs=1", "train.milestones=[]")
        full = sweep(a.spec, Path(d) / "full", env)
        frozen = sweep(a.spec, Path(d) / "frozen", env, "train.freeze_backbone=true")
    print(f"spec={Path(a.spec).name} (pre-training cached before both runs)")
    print(f"fine-tuned backbone: {full:.1f} s; frozen backbone, shared features (incl. computing them): {frozen:.1f} s")
    print(f"speed-up = {full / frozen:.2f}x")


if __name__ == "__main__":
    main()
