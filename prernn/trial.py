"""run_trial: train and evaluate one fully resolved configuration, resumably.

The one entry point of every sweep backend; it knows nothing about sweeps. The
config is a plain nested dict (see ``launch.spec.TrialConfig`` for its schema):
task, data, backbone, model, train, seed. Every epoch it evaluates on the test
split, appends a row of metrics to the history and atomically rewrites
``run_dir/checkpoint.pt`` (model, optimiser, schedule, history); a rerun with the
same ``run_dir`` resumes after the last finished epoch and ends with the same
numbers as an uninterrupted run (randomness is re-seeded from (seed, epoch)).
A NaN/inf loss or metric raises ``Diverged``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import torch

from . import backbones, make_recurrent, make_traditional
from .data import SOURCES
from .tasks import TASKS
from .train.loop import Diverged, evaluate, train_epoch
from .train.pretrain import cached_pretrained
from .train.recipes import SCHEDULES, make_optimizer, step_schedule

__all__ = ["Diverged", "build_network", "run_trial"]

CHECKPOINT = "checkpoint.pt"


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def backbone_weights(cfg: dict, log=print):
    """backbone.pretrained: "cache" (mini pre-training), "default" (the published
    file, looked up locally), "none" (random init), or a file path."""
    b = cfg["backbone"]
    how = b["pretrained"]
    if how == "cache":
        return cached_pretrained(b["name"], cfg["task"], cfg["data"]["source"], b["pretrain"], log=log)
    return {"default": True, "none": False}.get(how, how)


def build_network(cfg: dict, pretrained=False) -> torch.nn.Module:
    task, m = TASKS[cfg["task"]], cfg["model"]
    backbone = backbones.create(cfg["backbone"]["name"], pretrained=pretrained, num_outputs=task.num_outputs)
    if m["model"] == "traditional":
        return make_traditional(backbone, m["cell"], m["hidden_dim"], m["num_layers"])
    return make_recurrent(backbone, layers=m["layers"], cell=m["cell"], variant=m["variant"],
                          input_init=m["input_init"], recurrent_init=m["recurrent_init"],
                          extra_layers=m["extra_layers"])


def load_split(cfg: dict, split: str):
    d = cfg["data"]
    return SOURCES[d["source"]](split, d[f"{split}_videos"], d["frames"], d["size"], d["seed"], d["root"])


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def run_trial(cfg: dict, run_dir: str | Path, on_epoch: Callable[[dict, list[dict]], None] | None = None,
              log: Callable[[str], None] = print) -> dict:
    """Train ``cfg`` to its last epoch (resuming from ``run_dir``); return
    {"metrics": last epoch's metrics, "history": per-epoch rows, "parameters": n}."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    task, t = TASKS[cfg["task"]], cfg["train"]
    torch.manual_seed(cfg["seed"])
    net = build_network(cfg, backbone_weights(cfg, log))
    opt = make_optimizer(net, t["lr"], t["momentum"], t["weight_decay"])
    sched = SCHEDULES[t["schedule"]](opt, milestones=t["milestones"], gamma=t["gamma"], every=t["every"],
                                     patience=t["patience"])
    history: list[dict] = []
    ckpt = run_dir / CHECKPOINT
    if ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["schedule"])
        history = state["history"]
        log(f"resuming after epoch {len(history)}")
    train, test = load_split(cfg, "train"), load_split(cfg, "test")
    fail_at = cfg["data"].get("fail_at_epoch")
    for epoch in range(len(history), t["epochs"]):
        if t["min_lr"] and opt.param_groups[0]["lr"] <= t["min_lr"] * (1 + 1e-9):
            log(f"stopping after epoch {epoch - 1}: lr reached train.min_lr = {t['min_lr']}")
            break
        start = time.monotonic()
        if fail_at is not None and epoch == fail_at:  # fault injection for tests of the sweep machinery
            raise RuntimeError(f"injected failure at epoch {epoch} (data.fail_at_epoch)")
        torch.manual_seed(_epoch_seed(cfg["seed"], epoch))  # dropout etc.: same on resume
        g = torch.Generator().manual_seed(_epoch_seed(cfg["seed"], epoch))
        lr = opt.param_groups[0]["lr"]
        train_loss = train_epoch(net, opt, train, task, t["batch_size"], g, cfg["data"].get("augment", False))
        metrics = evaluate(net, test, task, t["batch_size"])
        step_schedule(sched, train_loss)
        row = {"epoch": epoch, "train_loss": train_loss, "lr": lr, **metrics,
               "epoch_seconds": time.monotonic() - start}
        history.append(row)
        _save_atomic({"model": net.state_dict(), "optimizer": opt.state_dict(),
                      "schedule": sched.state_dict(), "history": history}, ckpt)
        if on_epoch:
            on_epoch(row, history)
    parameters = sum(p.numel() for p in net.parameters())
    final = {k: v for k, v in history[-1].items() if k not in ("epoch", "lr", "epoch_seconds")}
    return {"metrics": final, "history": history, "parameters": parameters}
