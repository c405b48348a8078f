"""Fixture stores: a shipped spec's trials recorded with known metric values, no training."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from launch.expand import expand
from launch.spec import load_spec
from records.store import Store, flatten
from prernn.tasks import TASKS


def fake_store(spec_path: Path, root: Path, seeds=(0, 1, 2), failed=(), missing=(), value=None, epochs: int = 3,
               profile: str | None = None, overrides=(), only=None):
    """Record every trial of ``spec_path`` (``profile``, default mini, with ``seeds`` and
    ``overrides``) except the indices in ``missing`` and the trials ``only`` rejects; those in
    ``failed`` fail. The metric is ``value(trial index, trial)`` (default: a deterministic
    pseudo-random number). Returns (spec, trials)."""
    spec = load_spec(spec_path, profile, [f"seeds=[{','.join(map(str, seeds))}]", *overrides])
    trials = expand(spec)
    task = TASKS[spec.task]
    store = Store(root, spec.task)
    store.create()
    rng = np.random.default_rng(0)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i, t in enumerate(trials):
        v = float(value(i, t)) if value else float(rng.uniform(0.05, 0.5))
        if i in missing or (only is not None and not only(t)):
            continue
        ok = i not in failed
        metrics = {m: (v if ok else None) for m in task.metric_names}
        if ok:
            store.write_epochs(t.id, [{"epoch": e, "train_loss": v + 0.1 * (epochs - e), "lr": 0.1,
                                       "epoch_seconds": 1.0, **{m: v + 0.05 * (epochs - 1 - e)
                                                               for m in task.metric_names}} for e in range(epochs)])
        store.write_trial({
            "id": t.id, "sweep": spec.name, "profile": spec.profile, "label": t.label,
            "status": "completed" if ok else "failed", "error": None if ok else "RuntimeError: injected for the test",
            "epochs_done": epochs if ok else 1, "parameters": 1000, "wall_seconds": 10.0, "cpu_seconds": 9.0,
            "host": "node1", "pid": 100 + i % 2, "worker": f"local/{100 + i % 2}", "hardware": "x86_64, 2 CPUs",
            "git_commit": "abc123", "started_at": start + timedelta(seconds=10 * (i // 2)),
            "finished_at": start + timedelta(seconds=10 * (i // 2) + 9), **flatten(t.config),
            "train_loss": v if ok else None, **metrics,
        })
    return spec, trials
