"""PreRNN layers vs torch's fused nn.RNN / nn.LSTM / nn.GRU of the same shapes.

Forward + backward of one layer over a (B, T, D) sequence, hidden size H, on the
CPU (or CUDA if --device cuda). Prints the median time of each (the two run
alternately) and the ratio PreRNN / fused (lower is better; <= 1.0 means at least
as fast as torch's kernel). Set PRERNN_KERNELS=0 to time the Python loop instead of
the C++ one.

    python benchmarks/recurrent_layers.py                      # B=8 T=16 D=H=1024, and the mini profile's fc6/fc7
    python benchmarks/recurrent_layers.py --sizes 8,16,1024,1024
    python benchmarks/recurrent_layers.py --threads 1          # as a sweep slot with one core runs it
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch import nn

from prernn.recurrent import CELLS, PreRNNLinear

COMBOS = [("vrnn", "gate"), ("lstm", "gate"), ("lstm", "sih"), ("gru", "gate"), ("gru", "sih")]


def median_ms(a, b, repeats: int, warmup: int = 3) -> tuple[float, float]:
    """Median times of two functions run alternately (a, b, a, b, ...), so that the
    machine's drift and neighbours' noise fall on both alike."""
    for _ in range(warmup):
        a(), b()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, ts in zip((a, b), times):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return 1000 * statistics.median(times[0]), 1000 * statistics.median(times[1])


def fwd_bwd(module: nn.Module, x: torch.Tensor):
    def step():
        module.zero_grad(set_to_none=True)
        y = module(x)
        y = y[0] if isinstance(y, tuple) else y
        y.sum().backward()
        if x.is_cuda:
            torch.cuda.synchronize()
    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # the paper-scale shape, then the mini profile's own layers (mini VGG fc6 256->128 and
    # fc7 128->128 at batch 8 x 16 frames, as sweeps/table1.yaml trains them)
    p.add_argument("--sizes", nargs="*", default=["8,16,1024,1024", "8,16,256,128", "8,16,128,128"],
                   help="B,T,D,H")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {a.device}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"{'B,T,D,H':>16} {'layer':>10} {'prernn ms':>10} {'fused ms':>9} {'ratio':>6}")
    for size in a.sizes:
        B, T, D, H = map(int, size.split(","))
        x = torch.randn(B, T, D, device=a.device, requires_grad=True)
        for cell, variant in COMBOS:
            ours = PreRNNLinear(nn.Linear(D, H), cell, variant, recurrent_init="orthogonal").to(a.device)
            fused = CELLS[cell].torch_rnn(D, H, batch_first=True).to(a.device)
            t_ours, t_fused = median_ms(fwd_bwd(ours, x), fwd_bwd(fused, x), a.repeats)
            print(f"{size:>16} {cell + '-' + variant:>10} {t_ours:10.1f} {t_fused:9.1f} {t_ours / t_fused:6.2f}")


if __name__ == "__main__":
    main()
