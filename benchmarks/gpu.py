#!/usr/bin/env python
"""The paper-profile networks on a GPU: a few SGD steps of each on random data, fp32 and bf16.

    python benchmarks/gpu.py                    # every network, fp32 and bf16
    python benchmarks/gpu.py --steps 20 --precision bf16 --networks vgg16

Needs only torch, torchvision and this repository's ``prernn`` package (a GPU node may
have no package index and none of the project's other dependencies); run it from the
repository root. For each network and precision it prints frames per second (video
frames through the whole model, both streams for the two-stream one), the time of one
training step (forward, backward, SGD update), peak GPU memory, and the share of the
step spent in the PreRNN recurrence (its layers' forward and backward timed on their
own, on the inputs they saw in the step). The networks are the paper profiles':

  vgg16     PreLSTM fc6/7 on 16 frames of 224 x 224 (300VW, Table 1-2), 136 outputs
  c3d       PreGRU fc6/7 on 5 steps of 16-frame 112 x 112 clips (nvGesture), 25 classes
  resnet50  two-stream PreLSTM layer4 (1 x 1 U) on 16 frames of 224 x 224, RGB and
            10 stacked flow fields (UCF101, Table 3), 101 classes

batch 8, as in the paper's recipes. Each row is printed, and written to ``--json``, as
soon as it is measured; a network that raises becomes a row with its error and the others
still run (memory released between them). Without CUDA it says so, checks that every
network builds (on the meta device) and exits 0.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from prernn.config import BackboneConfig, DataConfig, ModelConfig, TrainConfig, TrialConfig  # noqa: E402
from prernn.data import to_input  # noqa: E402
from prernn.tasks import TASKS  # noqa: E402
from prernn.train.device import Placement  # noqa: E402
from prernn.train.recipes import make_optimizer  # noqa: E402
from prernn.trial import build_network  # noqa: E402

NETWORKS = {
    "vgg16": dict(task="face", backbone="vgg16", cell="lstm",
                  data=dict(source="300vw", frames=16, size=224)),
    "c3d": dict(task="gesture", backbone="c3d", cell="gru",
                data=dict(source="nvgesture", frames=5, clip_frames=16, size=112)),
    "resnet50": dict(task="action", backbone="resnet50", cell="lstm",
                     data=dict(source="ucf101", frames=16, flow_stack=10, size=224)),
}


def config(name: str, precision: str, device: str = "cuda", networks: dict = NETWORKS) -> TrialConfig:
    n = networks[name]
    return TrialConfig(task=n["task"], data=DataConfig(**{"train_videos": None, "test_videos": None, **n["data"]}),
                       backbone=BackboneConfig(name=n["backbone"], pretrained="none"),
                       model=_resolved(n), train=TrainConfig(epochs=1, lr=1e-3, device=device, precision=precision))


def _resolved(n: dict) -> ModelConfig:
    from prernn.config import resolve_model

    return resolve_model(ModelConfig(model="prernn", cell=n["cell"]), n["backbone"], TASKS[n["task"]].num_outputs)


def batch(cfg: TrialConfig, net, stream: str, size: int, place: Placement):
    """Random uint8 frames of the stream's shape (on the GPU) and targets of the task."""
    task = TASKS[cfg.task]
    shape = (*net.backbone.frame_shape[:-2], cfg.data.size, cfg.data.size)
    frames = torch.randint(0, 256, (size, cfg.data.frames, *shape), dtype=torch.uint8, device=place.device)
    if task.landmarks:
        targets = torch.rand(size, cfg.data.frames, task.num_outputs, device=place.device)
    else:
        targets = torch.randint(0, task.num_outputs, (size,), device=place.device)
    return place.batch(frames), targets


def mean_ms(fn, repeats: int, place: Placement) -> float:
    """Mean milliseconds of ``fn()``: on the GPU's clock (CUDA events), else the wall clock."""
    if not place.cuda:
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - t0) * 1e3 / repeats
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


def measure(name: str, precision: str, steps: int, warmup: int, size: int, device: str = "cuda",
            networks: dict = NETWORKS) -> dict:
    cfg = config(name, precision, device, networks)
    place = Placement.of_train(cfg.train)
    task = TASKS[cfg.task]
    torch.manual_seed(0)
    if place.cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    streams = []
    for stream in cfg.streams:
        net = place.prepare(build_network(cfg, stream=stream)).train()
        inputs: dict = {}
        for layer in net.recurrent.values():  # what each recurrent layer reads, for timing it alone
            layer.register_forward_pre_hook(lambda mod, args, inputs=inputs: inputs.__setitem__(mod, args[0].detach()))
        streams.append((net, make_optimizer(net, cfg.lr(stream)), batch(cfg, net, stream, size, place), inputs))
    scaler = place.scaler()

    def step():
        for net, opt, (x, y), _ in streams:
            with place.autocast():
                pred = net(to_input(x, task.channels))
            loss = task.loss(pred.float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

    for _ in range(warmup):
        step()
    step_ms = mean_ms(step, steps, place)

    def recurrence():
        for _, _, _, inputs in streams:
            for layer, h in inputs.items():
                h = h.requires_grad_()
                with place.autocast():
                    out = layer(h)
                out.float().sum().backward()

    recurrence()
    recurrence_ms = mean_ms(recurrence, steps, place)
    frames = size * cfg.data.frames * (cfg.data.clip_frames if cfg.task == "gesture" else 1)
    peak = torch.cuda.max_memory_allocated() / 2**30 if place.cuda else None
    return {"network": name, "precision": precision, "batch": size, "steps_per_video": cfg.data.frames,
            "step_ms": round(step_ms, 2), "frames_per_s": round(frames / step_ms * 1e3, 1),
            "peak_gb": None if peak is None else round(peak, 2),
            "recurrence_ms": round(recurrence_ms, 2), "recurrence_share": round(recurrence_ms / step_ms, 3),
            "parameters": sum(p.numel() for net, *_ in streams for p in net.parameters())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    p.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (cuDNN autotuning; default 3)")
    p.add_argument("--batch", type=int, default=8, help="videos per step (default 8, the paper's)")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    a = p.parse_args()
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda or 'none'}")
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure. Checking that every network builds (meta device):")
        for name in a.networks:
            cfg = config(name, "fp32", device="cpu")
            with torch.device("meta"):
                n = sum(p.numel() for s in cfg.streams for p in build_network(cfg, stream=s).parameters())
            print(f"  {name}: {n:,} parameters")
        return 0
    print(f"GPU: {torch.cuda.get_device_name(0)}, batch {a.batch}, {a.steps} timed steps after {a.warmup}")
    rows = measure_all(a.networks, a.precision, a.steps, a.warmup, a.batch, a.json)
    return 1 if any("error" in r for r in rows) else 0


def measure_all(names, precisions, steps: int, warmup: int, size: int, json_path: Path | None = None,
                device: str = "cuda", networks: dict = NETWORKS) -> list[dict]:
    """Every network at every precision, each row printed and written (``json_path``, atomically)
    the moment it is measured; a network that raises is a row with its error, and the rest run."""
    rows = []
    for name in names:
        for precision in precisions:
            t0 = time.perf_counter()
            try:
                row = measure(name, precision, steps, warmup, size, device, networks)
                print(f"{name:9} {precision:5} {row['frames_per_s']:9.1f} frames/s  step {row['step_ms']:8.2f} ms  "
                      f"peak {row['peak_gb'] or 0:6.2f} GB  recurrence {row['recurrence_ms']:7.2f} ms "
                      f"({100 * row['recurrence_share']:.1f}% of the step)  [{time.perf_counter() - t0:.0f} s]",
                      flush=True)
            except Exception as e:  # noqa: BLE001 - one network's failure must not lose the others' figures
                row = {"network": name, "precision": precision, "error": f"{type(e).__name__}: {e}"}
                print(f"{name:9} {precision:5} FAILED: {row['error']}", flush=True)
                traceback.print_exc()
            rows.append(row)
            gc.collect()  # the network, its optimizer state and batches go before the next one
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if json_path is not None:
                _write(json_path, {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                                   "torch": torch.__version__, "rows": rows})
    return rows


def _write(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
