"""One-time "pre-training" of mini backbones, cached on disk by its config (ours).

The paper starts from ImageNet/Sports-1M weights; the mini profile cannot, so a
mini backbone is trained once, feedforward, on single frames of a related
synthetic dataset (a different seed from every trial's data), and every trial
that asks for ``pretrained: cache`` with the same recipe starts from that file.
Concurrent trials (pool workers, SLURM array tasks) wait on a file lock so it is
trained once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from pathlib import Path

import torch

from .. import backbones
from ..data import SOURCES, to_input
from ..tasks import TASKS
from .device import Placement
from .loop import CPU
from .recipes import make_optimizer


def cache_dir() -> Path:
    return Path(os.environ.get("PRERNN_CACHE", "~/.cache/prernn")).expanduser()


def recipe_key(backbone: str, task: str, source: str, recipe: dict, inputs: dict) -> str:
    blob = json.dumps({"backbone": backbone, "task": task, "source": source, **recipe, **inputs}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_pretrained(backbone: str, task: str, source: str, recipe: dict, log=print, stream: str = "spatial",
                      place: Placement | None = None, **inputs) -> Path:
    """The weights file for this pre-training recipe, training it first if absent (on
    ``place``, default the CPU; in fp32 - the file is shared by trials of every precision).

    recipe: videos, frames, size, seed, epochs, batch_size, lr, optimizer. stream: which input
    the backbone reads (``temporal``: optical flow); inputs: clip_frames / flow_stack."""
    inputs = {"stream": stream, **inputs}
    key = recipe_key(backbone, task, source, recipe, inputs)
    path = cache_dir() / "pretrained" / f"{backbone}-{task}-{stream}-{key}.pt"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one trainer; the others find the file afterwards
        if not path.is_file():
            start = time.monotonic()
            log(f"pre-training {backbone} for {task} ({stream} stream) once (cached at {path})")
            net = pretrain(backbone, task, source, recipe, place=place or CPU, **inputs)
            backbones.save_backbone(net.cpu(), path)
            log(f"pre-training {backbone} took {time.monotonic() - start:.0f} s")
    return path


def stream_backbone(stream: str, flow_stack: int | None) -> dict:
    """Backbone arguments of a stream: the temporal one reads 2 x flow_stack flow channels."""
    return {"in_channels": 2 * flow_stack} if stream == "temporal" else {}


def pretrain(backbone: str, task_name: str, source: str, r: dict, stream: str = "spatial",
             place: Placement = CPU, **inputs) -> backbones.Backbone:
    """Feedforward training on single time steps (frames, clips or flow stacks) of a
    synthetic dataset drawn from the recipe's own seed."""
    task = TASKS[task_name]
    torch.manual_seed(r["seed"])
    data = SOURCES[source]("train", videos=r["videos"], frames=r["frames"], size=r["size"], seed=r["seed"],
                           **inputs).stream(stream)
    steps = data.frames.shape[1]
    frames = data.frames.flatten(0, 1).unsqueeze(1)  # single steps, as sequences of length 1
    targets = data.targets.repeat_interleave(steps) if data.targets.dim() == 1 else data.targets.flatten(0, 1)
    net = backbones.create(backbone, num_outputs=task.num_outputs, **stream_backbone(stream, inputs.get("flow_stack")))
    net = place.prepare(net)
    if r.get("optimizer", "sgd") == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=r["lr"])
    else:
        opt = make_optimizer(net, r["lr"])
    g = torch.Generator().manual_seed(r["seed"])
    net.train()
    for _ in range(r["epochs"]):
        order = torch.randperm(len(frames), generator=g)
        for i in range(0, len(frames), r["batch_size"]):
            idx = order[i:i + r["batch_size"]]
            x = to_input(place.batch(frames[idx]), task.channels).squeeze(1)
            loss = task.loss(net(x), targets[idx].to(place.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net
