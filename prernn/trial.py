"""run_trial: train and evaluate one fully resolved configuration, resumably.

The one entry point of every sweep backend; it knows nothing about sweeps. The
config is a ``prernn.config.TrialConfig`` (or its plain-data form): task, data,
backbone, model, train, seed. The trial trains on ``train.device`` in
``train.precision`` (``prernn.train.device``). Every epoch it evaluates on the test
split, appends a row of metrics to the history and atomically rewrites
``run_dir/checkpoint.pt`` (model, optimiser, schedule, gradient scaler, history); a
rerun with the same ``run_dir`` resumes after the last finished epoch - on this
device or another (checkpoints are mapped to where the trial runs now) - and ends
with the same numbers as an uninterrupted run on the same device (randomness is
re-seeded from (seed, epoch)). A NaN/inf loss or metric raises ``Diverged``. Once the
trial has ended and is recorded, the launcher deletes its checkpoint (``release``); the
weights ``train.keep`` asks for (last or best epoch) stay in ``run_dir/weights.pt`` (ours:
the paper keeps no weights; a paper-profile checkpoint with momentum is 2-7.5 GB).
Two-stream tasks (action) train one network per stream in the same trial and
report the fused metrics.
"""

from __future__ import annotations

import errno
import functools
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from . import backbones, make_recurrent, make_traditional
from .config import TrialConfig
from .data import SOURCES
from .data.augment import Augment
from .data.loader import Batches, warm
from .tasks import TASKS
from .train.device import Placement
from .train.features import Frozen, cached_features
from .train.loop import Diverged, evaluate_predictions, predict, train_epoch
from .train.pretrain import cached_pretrained, stream_backbone
from .train.reference import run_reference
from .train.recipes import SCHEDULES, make_optimizer, step_schedule

__all__ = ["Diverged", "build_network", "keep_weights", "release", "run_trial"]

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.pt"  # train.keep: last or best, once the trial has ended


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def _typed(cfg: TrialConfig | dict) -> TrialConfig:
    return cfg if isinstance(cfg, TrialConfig) else TrialConfig.from_dict(cfg)


def backbone_weights(cfg: TrialConfig, stream: str = "spatial", log=print, place: Placement | None = None):
    """backbone.pretrained: "cache" (mini pre-training), "default" (the published
    file, looked up locally), "none" (random init), or a file path. A temporal
    stream starts from the same file (its first conv adapted to flow, see resnet.py)
    or, with "cache", from its own pre-training on flow."""
    cfg = _typed(cfg)
    b = cfg.backbone
    if b.pretrained == "cache":
        return cached_pretrained(b.name, cfg.task, cfg.data.source, b.pretrain.to_dict(), log=log, place=place,
                                 **stream_inputs(cfg, stream))
    return {"default": True, "none": False}.get(b.pretrained, b.pretrained)


def stream_inputs(cfg: TrialConfig, stream: str) -> dict:
    """What a stream's network reads: the stream name, and for clip/flow data their lengths."""
    out = {"stream": stream}
    if cfg.task == "gesture":
        out["clip_frames"] = cfg.data.clip_frames
    if stream == "temporal":
        out["flow_stack"] = cfg.data.flow_stack
    return out


def build_network(cfg: TrialConfig | dict, pretrained=False, stream: str = "spatial") -> torch.nn.Module:
    cfg = _typed(cfg)
    task, m = TASKS[cfg.task], cfg.model
    backbone = backbones.create(cfg.backbone.name, pretrained=pretrained, num_outputs=task.num_outputs,
                                **stream_backbone(stream, cfg.data.flow_stack))
    if m.model == "traditional":
        return make_traditional(backbone, m.cell, m.hidden_dim, m.num_layers)
    if m.model in ("constant", "probe"):
        return backbone  # a probe reads the frozen backbone's features; a constant reads nothing
    if m.model == "per-frame":  # the pre-trained network frame by frame: a PreVRNN whose U stays zero
        net = make_recurrent(backbone, layers=m.layers, cell="vrnn", activation=m.activation,
                             recurrent_init="zeros", recurrent_kernel_size=m.conv_kernel or 1)
        for layer in net.recurrent.values():
            layer.weight_hh.requires_grad_(False)
        return net
    return make_recurrent(backbone, layers=m.layers, cell=m.cell, variant=m.variant, input_init=m.input_init,
                          recurrent_init=m.recurrent_init, extra_layers=m.extra_layers, activation=m.activation,
                          shared_gate=m.shared_gate, recurrent_kernel_size=m.conv_kernel or 1)


# set (e.g. by scripts/select_lr.py) where the test split must not be read: reading it raises
NO_TEST_SPLIT = "PRERNN_NO_TEST_SPLIT"


def load_split(cfg: TrialConfig, split: str):
    """The trial's ``train`` split (without the held-out validation videos) or the split it is
    evaluated on (``test``, or with ``data.evaluate_on: validation`` those held-out videos)."""
    d = cfg.data

    def source(name: str):
        if name == "test" and os.environ.get(NO_TEST_SPLIT):
            raise RuntimeError(f"the test split may not be read here (${NO_TEST_SPLIT} is set): evaluate "
                               "on data.evaluate_on: validation")
        split = SOURCES[d.source](name, videos=getattr(d, f"{name}_videos"), frames=d.frames, size=d.size,
                                  seed=cfg.data_seed, root=d.root, clip_frames=d.clip_frames, flow_stack=d.flow_stack,
                                  cache_dir=d.cache_dir)
        return split.cached(d.cache_dir) if d.cache_dir else split

    if split == "test" and d.evaluate_on == "test":
        return source("test")
    train = source("train")
    keep = len(train) - d.validation
    if keep < 1:
        raise ValueError(f"data.validation: {d.validation} held out of {len(train)} training videos leaves none")
    return train.subset(range(keep)) if split == "train" else train.subset(range(keep, len(train)))


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:  # Python's open: a read-only or forbidden directory is an OSError
            try:
                torch.save(obj, f)
            except RuntimeError as e:  # torch's zip writer says "unexpected pos" when the disk fills
                if shutil.disk_usage(tmp.parent).free < 2**20:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e
                raise
        os.replace(tmp, path)
    except BaseException:  # leave the last whole checkpoint and no partial one
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class Stream:
    """One network of a trial with its optimiser, schedule and epoch budget (two for action)."""

    name: str
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: object
    scaler: torch.amp.GradScaler
    epochs: int
    stopped: bool = False
    train: Batches | None = None  # this stream's view of the data (frames, flow, or cached features)
    test: Batches | None = None

    def state(self) -> dict:
        return {"model": self.net.state_dict(), "optimizer": self.opt.state_dict(),
                "schedule": self.sched.state_dict(), "scaler": self.scaler.state_dict(), "stopped": self.stopped}

    def load(self, state: dict) -> None:
        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["schedule"])
        if state.get("scaler"):  # checkpoints from before fp16 existed have none
            self.scaler.load_state_dict(state["scaler"])
        self.stopped = state["stopped"]

    @property
    def lr(self) -> float:
        return self.opt.param_groups[0]["lr"]


def make_streams(cfg: TrialConfig, place: Placement, log=print) -> list[Stream]:
    """The paper's two-stream setup trains each stream with its own lr and epochs
    (action: spatial 3e-3 / 90, temporal 1e-2 / 100): ``TrialConfig.lr`` / ``epochs``."""
    t = cfg.train
    streams = []
    for name in cfg.streams:
        net = build_network(cfg, backbone_weights(cfg, name, log, place), name)
        if t.freeze_backbone:
            net.backbone.stem = Frozen(net.backbone.stem)
        net = place.prepare(net)  # before the optimiser: it holds the parameters where they train
        opt = make_optimizer(net, cfg.lr(name), t.momentum, t.weight_decay)
        sched = SCHEDULES[t.schedule](opt, milestones=t.milestones, gamma=t.gamma, every=t.every,
                                      patience=t.patience)
        streams.append(Stream(name, net, opt, sched, place.scaler(), cfg.epochs(name)))
    return streams


CACHE_FEATURES = True  # tests switch it off to compare with a frozen stem run on the fly


def data_workers(cfg: TrialConfig) -> int:
    """``data.workers``, or by default one fewer than the trial's CPUs (``resources.cpus``, which
    every backend gives the trial as its torch threads, and no more than the machine has): the
    trial's own process trains."""
    if cfg.data.workers is not None:
        return cfg.data.workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(torch.get_num_threads(), cores) - 1)


def attach_data(cfg: TrialConfig, streams: list[Stream], place: Placement, log=print) -> None:
    """Give each stream its batches. With a frozen backbone (and no augmentation) the data become
    the stem's cached features and the stem leaves the network (see train/features.py)."""
    split = functools.cache(lambda name: load_split(cfg, name))  # read only if some stream needs it
    d, task, workers = cfg.data, TASKS[cfg.task], data_workers(cfg)
    cache = cfg.train.freeze_backbone and CACHE_FEATURES and not d.augment
    data_key = {k: v for k, v in d.to_dict().items() if k not in ("augment", "fail_at_epoch", "workers", "cache_dir")}
    data_key["seed"] = cfg.data_seed  # the draw the features are of (data.resample: the replicate's)
    for s in streams:
        if cache and not getattr(SOURCES[d.source], "redraws", False):  # fresh clips every epoch: no fixed features
            stem = s.net.backbone.stem.module
            key = {"backbone": cfg.backbone.name, "stream": s.name, "data": data_key}
            train, test = (cached_features(stem, lambda n=n: split(n).stream(s.name), task.channels,
                                           {**key, "split": n}, log, place, workers) for n in ("train", "test"))
            s.net.backbone.stem = torch.nn.Identity()
        else:
            train, test = split("train").stream(s.name), split("test").stream(s.name)
        augment = Augment(task.landmarks, s.name == "temporal", train.mirror) if d.augment else None
        s.train = Batches(train, cfg.train.batch_size, workers, place.cuda, augment, warp_on_device=place.cuda)
        s.test = Batches(test, 4 * cfg.train.batch_size, workers, place.cuda)  # no gradients: bigger batches
        if d.cache_dir:  # decoded once, up front, by all the trial's reading processes
            for b in (s.train, s.test):
                warm(b.split.frames, workers, log)


# the share of an epoch the training loop may wait for its input before the trial says so
INPUT_WAIT = 0.25


def check_input_rate(s: "Stream", seconds: float, epoch: int, cfg: TrialConfig, log=print) -> None:
    """Say so when reading videos held the training back: the loop waited for its batches more
    than ``INPUT_WAIT`` of the epoch. Data in memory (the mini profiles) are never slow."""
    if not s.train.reads_videos or seconds <= 0 or s.train.waited / seconds <= INPUT_WAIT:
        return
    shape = s.train.split.frames.shape
    frames = len(s.train) * shape[1] * (shape[3] if len(shape) == 6 else 1)  # steps (x clip frames)
    log(f"warning: the {s.name} stream waited for its input {s.train.waited / seconds:.0%} of epoch {epoch}: videos "
        f"were read at {frames / seconds:.0f} frames/s, the model trains at "
        f"{frames / max(seconds - s.train.waited, 1e-9):.0f} frames/s. Give the trial more CPUs (resources.cpus; "
        f"data.workers is {data_workers(cfg)} now)" + ("" if cfg.data.cache_dir else
                                                        " or keep decoded frames with data.cache_dir"))


def evaluate(streams: list[Stream], changed: list[Stream], preds: dict, task, place: Placement) -> dict:
    """The task's metrics on the evaluation split; only streams that trained since are re-run."""
    for s in streams:
        if s in changed or s.name not in preds:
            preds[s.name] = predict(s.net, s.test, task, place)
    return evaluate_predictions(task, preds, streams[0].test.split)


def unmeasured(task) -> dict:
    """The metrics of an epoch without an evaluation (``train.eval_every``): NaN."""
    return {m: math.nan for m in task.metric_names}


def reference_streams(cfg: TrialConfig, place: Placement, log=print) -> dict:
    """For a reference trial: each stream's frozen pre-trained backbone (a probe's) and splits."""
    split = functools.cache(lambda name: load_split(cfg, name))
    out = {}
    for name in cfg.streams:
        backbone = None
        if cfg.model.model == "probe":
            backbone = build_network(cfg, backbone_weights(cfg, name, log, place), name).requires_grad_(False)
        out[name] = (backbone, split("train").stream(name), split("test").stream(name))
    return out


@torch.no_grad()
def start_at_the_mean(net: torch.nn.Module, targets: torch.Tensor) -> None:
    """A regression head starts out predicting the training set's mean target (ours; every
    network alike): the mean landmark shape, from which the features then move it. With
    torch's default head the first epochs only learn where the face is on average."""
    head = net.backbone.head
    head.bias.copy_(targets.float().mean((0, 1)).to(head.bias.device))
    head.weight.mul_(0.1)


def total_epochs(cfg: TrialConfig | dict) -> int:
    return _typed(cfg).total_epochs


def _keep_if_best(cfg: TrialConfig, streams: list[Stream], history: list[dict], run_dir: Path) -> None:
    """train.keep: best - the networks' weights whenever the last epoch's primary metric beats
    every earlier one (ties keep the earlier epoch; an epoch not evaluated never wins)."""
    task = TASKS[cfg.task]
    if cfg.train.keep != "best" or math.isnan(value := history[-1][task.primary]):
        return
    earlier = [r[task.primary] for r in history[:-1] if not math.isnan(r[task.primary])]
    if all(value < v if task.mode == "min" else value > v for v in earlier):
        _save_atomic({"epoch": history[-1]["epoch"], task.primary: value,
                      "streams": {s.name: s.net.state_dict() for s in streams}}, run_dir / WEIGHTS)


def keep_weights(cfg: TrialConfig | dict, run_dir: str | Path) -> None:
    """An ended trial's weights as ``train.keep`` says (``last``: its last epoch's, from the
    checkpoint; ``best``: written as it trained); then call ``release`` once it is recorded."""
    cfg, ckpt = _typed(cfg), Path(run_dir) / CHECKPOINT
    if cfg.train.keep == "last" and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        _save_atomic({"epoch": state["history"][-1]["epoch"],
                      "streams": {name: s["model"] for name, s in state["streams"].items()}}, Path(run_dir) / WEIGHTS)


def release(run_dir: str | Path) -> None:
    """Delete an ended trial's checkpoint (its optimiser state: 2-7.5 GB for a paper-profile network)."""
    (Path(run_dir) / CHECKPOINT).unlink(missing_ok=True)


def run_trial(cfg: TrialConfig | dict, run_dir: str | Path, on_epoch: Callable[[dict, list[dict]], None] | None = None,
              log: Callable[[str], None] = print, place: Placement | None = None) -> dict:
    """Train ``cfg`` to its last epoch (resuming from ``run_dir``); return
    {"metrics": last epoch's metrics, "history": per-epoch rows, "parameters": n,
    "device": where it trained, "gpu": the GPU's name or None}.

    Each epoch trains every stream that has epochs left, evaluates all of them and
    records one row (train_loss: the mean over the streams trained; lr: the first's)."""
    cfg = _typed(cfg)
    place = place or Placement.of_train(cfg.train)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    task, t = TASKS[cfg.task], cfg.train
    torch.manual_seed(cfg.seed)
    if cfg.model.model in ("constant", "probe"):  # reference rows: fitted in closed form, no epochs
        result = run_reference(cfg, reference_streams(cfg, place, log), place, log)
        if on_epoch:
            on_epoch(result["history"][0], result["history"])
        return {**result, "device": place.name, "gpu": place.gpu}
    streams = make_streams(cfg, place, log)
    parameters = sum(p.numel() for s in streams for p in s.net.parameters())
    attach_data(cfg, streams, place, log)
    if task.landmarks:
        for s in streams:
            start_at_the_mean(s.net, s.train.targets)
    history: list[dict] = []
    ckpt = run_dir / CHECKPOINT
    if ckpt.is_file():
        state = torch.load(ckpt, map_location=place.device, weights_only=True)  # any device's checkpoint
        for s in streams:
            s.load(state["streams"][s.name])
        history = state["history"]
        log(f"resuming after epoch {len(history)} on {place.name}")
    else:
        log(f"training on {place.name}" + (f" ({place.gpu})" if place.gpu else "") + f", {place.precision}")
    fail_at = cfg.data.fail_at_epoch
    first = len(history)  # the first epoch this process trains: its input rate is checked
    preds: dict[str, torch.Tensor] = {}
    for epoch in range(len(history), cfg.total_epochs):
        for s in streams:
            if not s.stopped and t.min_lr and s.lr <= t.min_lr * (1 + 1e-9):
                s.stopped = True
                log(f"{s.name} stream: stopping after epoch {epoch - 1}: lr reached train.min_lr = {t.min_lr}")
        active = [s for s in streams if not s.stopped and epoch < s.epochs]
        if not active:
            break
        start = time.monotonic()
        if fail_at is not None and epoch == fail_at:  # fault injection for tests of the sweep machinery
            raise RuntimeError(f"injected failure at epoch {epoch} (data.fail_at_epoch)")
        losses = []
        for s in active:
            torch.manual_seed(_epoch_seed(cfg.seed, epoch))  # dropout etc.: same on resume
            began = time.monotonic()
            losses.append(train_epoch(s.net, s.opt, s.train, task, _epoch_seed(cfg.seed, epoch), cfg.data.augment,
                                      place, s.scaler))
            if epoch == first:
                check_input_rate(s, time.monotonic() - began, epoch, cfg, log)
        due = (epoch + 1) % t.eval_every == 0 or epoch + 1 == cfg.total_epochs
        metrics = evaluate(streams, active, preds, task, place) if due else unmeasured(task)
        lr = streams[0].lr
        for s, loss in zip(active, losses):
            step_schedule(s.sched, loss)
        row = {"epoch": epoch, "train_loss": sum(losses) / len(losses), "lr": lr, **metrics,
               "epoch_seconds": time.monotonic() - start}
        history.append(row)
        _save_atomic({"streams": {s.name: s.state() for s in streams}, "history": history}, ckpt)
        _keep_if_best(cfg, streams, history, run_dir)
        if on_epoch:
            on_epoch(row, history)
    if not history:
        raise RuntimeError("no epoch ran: every stream stopped before its first epoch (check train.min_lr)")
    if math.isnan(history[-1][task.primary]):  # stopped early between two evaluations: measure the last epoch
        history[-1].update(evaluate(streams, streams, preds, task, place))
        _save_atomic({"streams": {s.name: s.state() for s in streams}, "history": history}, ckpt)
        _keep_if_best(cfg, streams, history, run_dir)
        if on_epoch:
            on_epoch(history[-1], history)
    return {"metrics": cfg.final_metrics(history[-1]), "history": history, "parameters": parameters,
            "device": place.name, "gpu": place.gpu}
