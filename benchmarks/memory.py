"""Peak resident memory of one mini trial of each shipped sweep, each in a fresh process.

For every spec, the first PreRNN and the first traditional trial of its mini profile
run (2 epochs, pre-training cached by a first run) in a fresh child process, which
reports its own peak RSS (ru_maxrss: Python, torch and the data included), printed with the analytic weights + gradients + momentum memory
that ``--dry-run`` shows.

    python benchmarks/memory.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = ("table1.yaml", "gesture.yaml", "table3.yaml")

CHILD = """
import sys, json
sys.path.insert(0, {root!r})
from launch.spec import load_spec
from launch.expand import expand
from prernn.trial import run_trial
trial = [t for t in expand(load_spec({spec!r}, None, ["train.epochs=2", "train.temporal_epochs=null"]))
         if t.config.model.model == {kind!r}][0]
run_trial(trial.config, {run!r}, log=lambda m: None)
import resource
print(json.dumps([trial.label, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))
"""


def main() -> None:
    from launch.cost import estimate
    from launch.expand import expand
    from launch.spec import load_spec

    with tempfile.TemporaryDirectory(dir=ROOT) as d:
        env = {**os.environ, "PRERNN_CACHE": str(Path(d) / "cache")}
        print(f"{'spec':14} {'trial':36} {'peak RSS MB':>12} {'weights+grad+momentum MB':>25}")
        for spec in SPECS:
            path = str(ROOT / "sweeps" / spec)
            trials = expand(load_spec(path, None, ["train.epochs=2", "train.temporal_epochs=null"]))
            for kind in ("prernn", "traditional"):
                run = str(Path(d) / f"{spec}-{kind}")
                code = CHILD.format(root=str(ROOT), spec=path, kind=kind, run=run)
                subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)  # warm caches
                out = subprocess.run([sys.executable, "-c", code.replace(run, run + "-2")], env=env, check=True,
                                     capture_output=True, text=True)
                label, peak_kib = json.loads(out.stdout.strip().splitlines()[-1])
                trial = next(t for t in trials if t.config.model.model == kind)
                analytic = estimate(trial.config)["memory_gb"] * 1024
                print(f"{spec:14} {label:36} {peak_kib / 1024:12.0f} {analytic:25.1f}")


if __name__ == "__main__":
    main()
