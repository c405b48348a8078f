#!/usr/bin/env python
"""A paper-size PreLSTM fc6 (25088 -> 4 x 4096 gates, 8 videos x 16 frames) on this machine's CPU:
the time of one forward and backward, and the process's peak resident memory beside what the
layer must hold (its parameters and their gradients).

    python benchmarks/gate_gemms.py                 # fp32, 128 rows
    python benchmarks/gate_gemms.py --rows 32        # a smaller batch (B x T rows)

What it shows: the input GEMMs (one for the shared weight, one for the stacked copies) make no
copy of the gate weights joined; BENCHMARKS.md has the figures of the code that joined them.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from prernn.recurrent import PreRNNLinear  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=128, help="B x T input rows, 16 frames a video (default 128)")
    p.add_argument("--repeats", type=int, default=5, help="timed steps after one untimed (default 5)")
    a = p.parse_args()
    D, H = 25088, 4096
    torch.manual_seed(0)
    layer = PreRNNLinear(nn.Linear(D, H), "lstm")
    x = torch.randn(max(a.rows // 16, 1), 16, D)
    held = sum(p.numel() for p in layer.parameters()) * 4 * 2 / 2**30  # fp32 weights and their gradients
    times = []
    for _ in range(a.repeats + 1):  # as a training step: gradients set to None, then made afresh
        layer.zero_grad(set_to_none=True)
        start = time.perf_counter()
        layer(x).sum().backward()
        times.append(time.perf_counter() - start)
    times = sorted(times[1:])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"PreLSTM fc6, {x.shape[0] * 16} rows, {torch.get_num_threads()} threads: forward+backward median "
          f"{times[len(times) // 2]:.2f} s (min {times[0]:.2f}, max {times[-1]:.2f}), peak resident {peak:.2f} GB "
          f"(parameters and gradients: {held:.2f} GB)")


if __name__ == "__main__":
    main()
