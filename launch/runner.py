"""execute(): run one trial in this process and record its outcome in the store.

Called by every backend, in whatever process or node it runs the trial. Never
raises for a trial's own errors: a raising trial is recorded as ``failed`` and a
NaN/inf loss as ``diverged``, with the error, so the rest of the sweep goes on.
"""

from __future__ import annotations

import fcntl
import functools
import os
import platform
import socket
import threading
import time
import traceback
from datetime import datetime, timezone

import torch

from prernn.config import TrialConfig
from prernn.train.device import DeviceUnavailable, Placement
from prernn.trial import Diverged, run_trial

from .store import Store, flatten


HEARTBEAT_SECONDS = 10.0  # how often a running trial touches runs/<id>/heartbeat


class Heartbeat:
    """Touches ``path`` every ``HEARTBEAT_SECONDS`` while a trial runs, so that a trial
    whose worker died without a trace (SIGKILL, OOM, a lost node) can be told from a
    running one: its heartbeat goes stale (``Store.run_state``)."""

    def __init__(self, path):
        self.path, self.stop = path, threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name="heartbeat")

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT_SECONDS):
            self.path.touch()

    def __enter__(self) -> "Heartbeat":
        self.path.touch()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


class Pruned(Exception):
    """Raised by a ``report`` callback to stop a trial early; it is recorded as ``pruned``."""


def placement(cfg: TrialConfig, gpus: float = 0) -> Placement:
    """Where the trial trains. A GPU the scheduler gave it (``resources.gpus``) must train
    it: a trial that was given one but sees none refuses to start."""
    place = Placement.of(cfg.train.device, cfg.train.precision)
    if gpus and not place.cuda:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise DeviceUnavailable(f"resources.gpus is {gpus:g}, but this trial sees no CUDA device "
                                f"(CUDA_VISIBLE_DEVICES={visible!r}, torch {torch.__version__}): a GPU given to "
                                "a trial must train it")
    return place


def execute(trial_id: str, config: dict, store_root: str, meta: dict, report=None) -> str:
    """Run the trial whose resolved config is ``config`` (plain data, as in its row: the
    typed ``TrialConfig`` is rebuilt and re-checked here). meta: sweep, profile, label,
    git_commit, worker, gpus (the trial's ``resources.gpus``). ``report(row)`` is called
    after each epoch (e.g. Ray Tune's, for early stopping). Returns the recorded status."""
    store = Store(store_root, config["task"])
    run_dir = store.run_dir(trial_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    claim = open(run_dir / ".lock", "w")  # one runner per trial at a time, whoever started it
    fcntl.flock(claim, fcntl.LOCK_EX)
    if store.status(trial_id) == "completed":  # someone else finished it while we waited
        return "completed"
    log_file = open(run_dir / "log.txt", "a", buffering=1)

    def log(msg: str) -> None:
        log_file.write(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} {msg}\n")

    history: list[dict] = []

    def on_epoch(row: dict, rows: list[dict]) -> None:
        history[:] = rows
        store.write_epochs(trial_id, rows)
        log(f"epoch {row['epoch']}: " + ", ".join(f"{k}={v:.5g}" for k, v in row.items() if k != "epoch"))
        if report and all(v == v for v in row.values() if isinstance(v, float)):  # epochs that were evaluated
            report(row)

    started, t0, c0 = datetime.now(timezone.utc), time.monotonic(), time.process_time()
    log(f"start {meta.get('label', '')} on {socket.gethostname()} pid {os.getpid()} worker {meta.get('worker')}")
    metrics, parameters, error, where = {}, None, None, {}
    try:
        cfg = TrialConfig.from_dict(config)
        with Heartbeat(run_dir / "heartbeat"):
            place = placement(cfg, meta.get("gpus", 0))
            where = {"device": place.name, "gpu": place.gpu}
            result = run_trial(cfg, run_dir, on_epoch=on_epoch, log=log, place=place)
        status, metrics, parameters = "completed", result["metrics"], result["parameters"]
        history = result["history"]
    except Pruned:
        status = "pruned"
        metrics = TrialConfig.final_metrics(history[-1])
    except Diverged as e:
        status, error = "diverged", f"Diverged: {e}"
    except Exception as e:  # noqa: BLE001  - any trial error is recorded, not raised
        status, error = "failed", f"{type(e).__name__}: {e}"
        log(traceback.format_exc())
    log(f"{status}" + (f": {error}" if error else ""))
    log_file.close()
    record(store, trial_id, config, meta, status, error, history, metrics, parameters, started, t0, c0, **where)
    return status


def record_stopped(job, status: str, started: datetime | None = None, error: str | None = None) -> None:
    """Record a trial that ended before it could record itself (ASHA pruned it, its
    worker died): its last finished epoch's metrics, and ``status``."""
    store = Store(job.store_root, job.config["task"])
    if store.status(job.trial_id) is not None:
        return
    path = store.epochs_dir / f"{job.trial_id}.parquet"
    history = []
    if path.is_file():
        import pyarrow.parquet as pq

        history = pq.read_table(path).to_pylist()
    metrics = TrialConfig.final_metrics(history[-1]) if history else {}
    # the trial ran elsewhere: its wall and CPU time are unknown here (null), not zero
    record(store, job.trial_id, job.config, job.meta, status, error, history, metrics, None,
           started or datetime.now(timezone.utc), None, None)


@functools.cache
def hardware() -> str:
    """What the trial ran on, e.g. 'x86_64, 2 CPUs, torch 2.14.1, no GPU' (for the report's provenance)."""
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    gpu = ", ".join(f"{n} x{gpus.count(n)}" for n in dict.fromkeys(gpus)) or "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__.split('+')[0]}, {gpu}"


def record(store: Store, trial_id: str, config: dict, meta: dict, status: str, error: str | None,
           history: list, metrics: dict, parameters: int | None, started, t0: float | None,
           c0: float | None, device: str | None = None, gpu: str | None = None) -> None:
    store.write_trial({
        "id": trial_id, "sweep": meta["sweep"], "profile": meta["profile"], "label": meta.get("label"),
        "status": status, "error": error, "epochs_done": len(history), "parameters": parameters,
        "wall_seconds": None if t0 is None else time.monotonic() - t0,
        "cpu_seconds": None if c0 is None else time.process_time() - c0,
        "host": socket.gethostname(), "pid": os.getpid(), "worker": meta.get("worker"), "hardware": hardware(),
        "device": device, "gpu": gpu,
        "git_commit": meta.get("git_commit"), "started_at": started, "finished_at": datetime.now(timezone.utc),
        **flatten(config), **metrics,
    })


def ensure_pretrained(configs: list[TrialConfig], log=print) -> None:
    """Train (or find) each cached mini pre-training these trials start from, once per
    recipe and stream, before they start (raises ``PretrainingRefused``)."""
    import json

    from prernn.trial import backbone_weights, stream_inputs

    seen = set()
    for config in configs:
        for stream in config.streams:
            recipe = json.dumps([config.backbone.to_dict(), config.task, config.data.source,
                                 stream_inputs(config, stream)], sort_keys=True)
            if recipe not in seen:
                seen.add(recipe)
                backbone_weights(config, stream, log=log)


def set_threads(n: int) -> None:
    torch.set_num_threads(max(1, n))
