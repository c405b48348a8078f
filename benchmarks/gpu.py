#!/usr/bin/env python
"""The paper-profile networks on a GPU: a few SGD steps of each on random data, fp32 and bf16.

    python benchmarks/gpu.py                    # every network, fp32 and bf16
    python benchmarks/gpu.py --steps 20 --precision bf16 --networks vgg16

Needs only torch, torchvision and this repository's ``prernn`` package (a GPU node may
have no package index and none of the project's other dependencies); run it from the
repository root. For each network and precision it prints frames per second (video
frames through the whole model, both streams for the two-stream one), the time of one
training step (forward, backward, SGD update), its FLOPs (matmuls and convolutions,
counted by torch's FlopCounterMode on the meta device) as TFLOP/s and as a share of the GPU's dense
tensor-core peak (``PEAKS``), peak GPU memory, and the step split into its parts, each
timed on its own on the inputs it saw in the step (forward and backward): the stem (the
convolutions), the PreRNN layers' input GEMMs (or convs), their time loop (the layers
whole, less their input GEMMs), and the optimizer's update; what is left is the head,
the loss and the launches between. Then the input pipeline: UCF101 in its on-disk
format (JPEG frames and TV-L1 flow, fabricated: noise, which decodes slower than video
frames) read and augmented by as many worker processes as a trial on this machine gets,
as frames per second beside the model's. The networks are the paper profiles':

  vgg16     PreLSTM fc6/7 on 16 frames of 224 x 224 (300VW, Table 1-2), 136 outputs
  c3d       PreGRU fc6/7 on 5 steps of 16-frame 112 x 112 clips (nvGesture), 25 classes
  resnet50  two-stream PreLSTM layer4 (1 x 1 U) on 16 frames of 224 x 224, RGB and
            10 stacked flow fields (UCF101, Table 3), 101 classes

batch 8, as in the paper's recipes. Each row is printed, and written to ``--json``, as
soon as it is measured; a network that raises becomes a row with its error and the others
still run (memory released between them). Without CUDA it says so, builds every network
on the meta device, counts the FLOPs of its training step there, and exits 0.
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
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from prernn.config import BackboneConfig, DataConfig, ModelConfig, TrainConfig, TrialConfig  # noqa: E402
from prernn.data import to_input  # noqa: E402
from prernn.tasks import TASKS  # noqa: E402
from prernn.train.device import Placement  # noqa: E402
from prernn.train.recipes import make_optimizer  # noqa: E402
from prernn.trial import build_network, data_workers  # noqa: E402

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


# dense tensor-core peaks in TFLOP/s (NVIDIA's datasheets; "tf32": fp32 matmuls with TF32 on,
# "fp32": IEEE fp32 on the CUDA cores), by a name the device's name contains, first match first
PEAKS = [("H200", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
         ("H100 PCIe", {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.2}),
         ("H100", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
         ("A100", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5})]


def peak_tflops(gpu: str | None, precision: str) -> float | None:
    """The device's dense peak for a trial's precision (fp32 counts as TF32 where it is on)."""
    if gpu is None:
        return None
    if precision == "fp32" and torch.backends.cuda.matmul.fp32_precision == "tf32":
        precision = "tf32"
    return next((peaks[precision] for key, peaks in PEAKS if key in gpu), None)


def _recorder(store: dict):
    """A forward pre-hook keeping what a module reads (detached), to time the module alone on it."""
    return lambda mod, args: store.__setitem__(mod, args[0].detach())


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
    inputs: dict = {}  # module -> what it read in the last step: each part is timed alone on it
    for stream in cfg.streams:
        net = place.prepare(build_network(cfg, stream=stream)).train()
        for module in (net.backbone.stem, *net.recurrent.values()):
            module.register_forward_pre_hook(_recorder(inputs))
        streams.append((net, make_optimizer(net, cfg.lr(stream)), batch(cfg, net, stream, size, place)))
    scaler = place.scaler()

    def step():
        for net, opt, (x, y) in streams:
            with place.autocast():
                pred = net(to_input(x, task.channels))
            loss = task.loss(pred.float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

    for _ in range(max(warmup, 1)):  # one at least: the parts are timed on what it read
        step()
    step_ms = mean_ms(step, steps, place)
    flop = meta_step(cfg, size)[1]  # counted on the meta device: no dispatch mode around compiled code here
    stems = [net.backbone.stem for net, *_ in streams]
    layers = [layer for net, *_ in streams for layer in net.recurrent.values()]

    def alone(modules, call=lambda m, x: m(x), grad_input: bool = True):
        """Forward and backward of each module on what it read in the step (and, with
        ``grad_input``, the gradient of that, as the step computes it past the stem)."""
        def run():
            for m in modules:
                x = inputs[m].requires_grad_(grad_input)
                with place.autocast():
                    out = call(m, x)
                out.float().sum().backward()
        run()
        return mean_ms(run, steps, place)

    stem_ms = alone(stems, grad_input=False)  # the frames need no gradient
    recurrence_ms = alone(layers)
    input_ms = alone(layers, lambda m, x: m._input_term(x.flatten(0, 1)))  # all gates' input terms, all steps
    optimizer_ms = mean_ms(lambda: [opt.step() for _, opt, _ in streams], steps, place)
    frames = size * cfg.data.frames * (cfg.data.clip_frames if cfg.task == "gesture" else 1)
    peak = torch.cuda.max_memory_allocated() / 2**30 if place.cuda else None
    tflops = flop / (step_ms / 1e3) / 1e12
    best = peak_tflops(place.gpu, precision)
    ms = lambda v: round(v, 2)  # noqa: E731
    return {"network": name, "precision": precision, "batch": size, "steps_per_video": cfg.data.frames,
            "step_ms": ms(step_ms), "frames_per_s": round(frames / step_ms * 1e3, 1),
            "flop_per_step": flop, "tflops": float(f"{tflops:.3g}"),  # 3 digits, never 0 on a slow CPU
            "peak_tflops": best, "of_peak": None if best is None else round(tflops / best, 3),
            "peak_gb": None if peak is None else round(peak, 2),
            "stem_ms": ms(stem_ms), "input_gemms_ms": ms(input_ms), "loop_ms": ms(recurrence_ms - input_ms),
            "optimizer_ms": ms(optimizer_ms), "other_ms": ms(step_ms - stem_ms - recurrence_ms - optimizer_ms),
            "recurrence_ms": ms(recurrence_ms), "recurrence_share": round(recurrence_ms / step_ms, 3),
            "parameters": sum(p.numel() for net, *_ in streams for p in net.parameters())}


def meta_step(cfg: TrialConfig, size: int) -> tuple[int, int]:
    """(parameters, FLOPs of one forward and backward of a batch of ``size``) of every stream,
    on the meta device: no memory, no time, the same count a GPU step makes."""
    parameters = flop = 0
    with torch.device("meta"):
        for stream in cfg.streams:
            net = build_network(cfg, stream=stream)
            shape = (*net.backbone.frame_shape[:-2], cfg.data.size, cfg.data.size)
            with FlopCounterMode(display=False) as counted:
                net(torch.zeros(size, cfg.data.frames, *shape)).float().sum().backward()
            parameters += sum(p.numel() for p in net.parameters())
            flop += counted.get_total_flops()
    return parameters, flop


def input_rate(workers: int, epochs: int = 2, batch: int = 8, frames: int = 16, flow_stack: int = 10,
               size: int = 224, source_frames: int = 40) -> dict:
    """Frames (time steps) per second that ``workers`` processes read from UCF101's on-disk format
    (``benchmarks/input_pipeline.py``'s), per stream, as a GPU trial's training reads them: fresh
    steps every epoch, the augmentation drawn and its warp left for the GPU. Two batches an
    epoch for every worker; 8 distinct videos, the others links to them."""
    import tempfile

    from benchmarks.input_pipeline import fabricate_ucf101, throughput
    from prernn.data import SOURCES
    from prernn.data.augment import Augment

    videos = 2 * batch * max(workers, 1)
    with tempfile.TemporaryDirectory() as tmp:
        fabricate_ucf101(Path(tmp), videos, source_frames, distinct=8)
        split = SOURCES["ucf101"].__wrapped__("train", None, frames, size, 0, tmp, flow_stack=flow_stack)
        rates = {stream: round(throughput(split.stream(stream), workers, epochs,
                                          Augment(flow=stream == "temporal", mirror=split.mirror), batch,
                                          warp_on_device=True), 1)
                 for stream in ("spatial", "temporal")}
    return {"workers": workers, "videos": videos, "frames_per_s": rates,
            "jpegs_per_frame": {"spatial": 1, "temporal": 2 * flow_stack}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    p.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (cuDNN autotuning; default 3)")
    p.add_argument("--batch", type=int, default=8, help="videos per step (default 8, the paper's)")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument("--input-epochs", type=int, default=2,
                   help="timed epochs of each stream of the input pipeline (0: not measured; default 2)")
    a = p.parse_args()
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda or 'none'}")
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure. Every network built on the meta device, with the FLOPs "
              f"of a training step of batch {a.batch} (forward and backward, matmuls and convolutions):")
        for name in a.networks:
            n, flop = meta_step(config(name, "fp32", device="cpu"), a.batch)
            print(f"  {name}: {n:,} parameters, {flop / 1e12:.2f} TFLOP a step")
        return 0
    print(f"GPU: {torch.cuda.get_device_name(0)}, batch {a.batch}, {a.steps} timed steps after {a.warmup}")
    rows = measure_all(a.networks, a.precision, a.steps, a.warmup, a.batch, a.json)
    if a.input_epochs > 0:
        workers = data_workers(config("resnet50", "bf16"))  # a trial's readers, given this machine's CPUs
        try:
            got = input_rate(workers, a.input_epochs, a.batch)
        except Exception as e:  # noqa: BLE001 - the model's rows are on disk already
            got = {"error": f"{type(e).__name__}: {e}"}
            traceback.print_exc()
        else:
            r = got["frames_per_s"]
            print(f"input pipeline, {workers} workers (UCF101 JPEGs, noise): spatial {r['spatial']:.0f} frames/s, "
                  f"temporal {r['temporal']:.0f} frames/s ({got['jpegs_per_frame']['temporal']} flow JPEGs a "
                  "frame); the model's frames/s are in the rows above", flush=True)
        rows.append({"network": "input pipeline", **got})
        if a.json is not None:
            _write(a.json, {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "rows": rows})
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
                      f"{row['flop_per_step'] / 1e12:.2f} TFLOP: {row['tflops']:.1f} TFLOP/s"
                      + (f" ({100 * row['of_peak']:.0f}% of {row['peak_tflops']:.0f})" if row["of_peak"] else "")
                      + f"  peak {row['peak_gb'] or 0:6.2f} GB  [{time.perf_counter() - t0:.0f} s]\n"
                      f"{'':15} stem {row['stem_ms']:.2f}, input GEMMs {row['input_gemms_ms']:.2f}, "
                      f"loop {row['loop_ms']:.2f}, optimizer {row['optimizer_ms']:.2f}, "
                      f"other {row['other_ms']:.2f} ms", flush=True)
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
