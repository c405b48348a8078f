"""The results store: one directory per sweep, Parquet tables written atomically per trial.

    <root>/spec.yaml              the resolved spec the sweep last ran with
    <root>/trials/<id>.parquet    one row per trial: config (flattened), status, metrics, provenance
    <root>/epochs/<id>.parquet    one row per finished epoch of that trial
    <root>/runs/<id>/             log.txt of a trial; checkpoint.pt until it has ended (resume state);
                                  weights.pt if train.keep asks for it
    <root>/seeding/<plan>.json    the seeds ``--until-decided`` added to a plan (``records.plan_id``):
                                  its trials are the plan's too, and its claims were tested sequentially

A trial's status is a ``records.Status``: ``completed``, ``failed``, ``diverged`` or
``pruned``; a started trial without a row is ``running`` or ``lost`` by its heartbeat.

Every file is written to a hidden temp file in its directory and renamed into
place, so readers (and concurrent writers on a shared filesystem, e.g. SLURM
array tasks) never see a partial file; readers skip hidden files. A trial's
``trials`` row is written last, after its epochs: it is the commit marker.
Each directory of Parquet files reads as one table:

    pyarrow.parquet.read_table("results/table1/mini/trials")
    pandas.read_parquet("results/table1/mini/trials")
    polars.read_parquet("results/table1/mini/trials/*.parquet")
    duckdb.sql("select * from 'results/table1/mini/trials/*.parquet'")
"""

from __future__ import annotations

import json
import os
import time
import typing
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from prernn.config import TrialConfig
from prernn.settings import fields_of, section_in, to_dict
from prernn.tasks import TASKS

from .status import Status

# provenance and outcome columns of the trials table, besides config and metrics
RUN_COLUMNS = {
    "id": pa.string(), "sweep": pa.string(), "profile": pa.string(), "label": pa.string(),
    "status": pa.string(), "error": pa.string(), "epochs_done": pa.int64(), "parameters": pa.int64(),
    "wall_seconds": pa.float64(), "cpu_seconds": pa.float64(), "host": pa.string(), "pid": pa.int64(),
    "worker": pa.string(), "hardware": pa.string(), "device": pa.string(), "gpu": pa.string(),
    "git_commit": pa.string(), "started_at": pa.timestamp("us", tz="UTC"),
    "finished_at": pa.timestamp("us", tz="UTC"),
}
EPOCH_COLUMNS = {"id": pa.string(), "epoch": pa.int64(), "train_loss": pa.float64(), "lr": pa.float64(),
                 "epoch_seconds": pa.float64()}


def flatten(config, prefix: str = "") -> dict[str, Any]:
    """A config (a section or nested dicts) -> {"model.cell": ..., "train.lr": ...}; lists become JSON text."""
    out = {}
    for k, v in to_dict(config).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, list):
            out[key] = json.dumps(v)
        else:
            out[key] = v
    return out


def _arrow_type(annotation) -> pa.DataType:
    if typing.get_origin(annotation) in (list, dict):
        return pa.string()  # JSON text
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    if any(typing.get_origin(a) in (list, dict) for a in args):
        return pa.string()
    if int in args and bool not in args:
        return pa.int64()
    for py, arrow in ((bool, pa.bool_()), (float, pa.float64()), (int, pa.int64())):
        if py in args:
            return arrow
    return pa.string()  # str, Literal, lists as JSON


def _config_types(section: type, prefix: str) -> dict[str, pa.DataType]:
    out = {}
    for f, ann in fields_of(section):
        nested = section_in(ann)
        if nested is not None:
            out.update(_config_types(nested, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = _arrow_type(ann)
    return out


def config_types() -> dict[str, pa.DataType]:
    """One column per field of the trial config (``prernn.config.TrialConfig``), flattened."""
    return _config_types(TrialConfig, "")


def identifying_columns(section: type = TrialConfig, prefix: str = "") -> list[str]:
    """The config columns that make a trial what it is: all but how it runs (``identifying=False``)."""
    out = []
    for f, ann in fields_of(section):
        rule = f.metadata.get("rule")
        if rule is not None and not rule.identifying:
            continue
        nested = section_in(ann)
        out += identifying_columns(nested, f"{prefix}{f.name}.") if nested is not None else [f"{prefix}{f.name}"]
    return out


def trials_schema(task: str) -> pa.Schema:
    metrics = {m: pa.float64() for m in ("train_loss", *TASKS[task].metric_names)}
    return pa.schema({**RUN_COLUMNS, **config_types(), **metrics})


def epochs_schema(task: str) -> pa.Schema:
    return pa.schema({**EPOCH_COLUMNS, **{m: pa.float64() for m in TASKS[task].metric_names}})


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)  # whichever writer comes first
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a killed writer leaves it behind instead: readers skip hidden files
        raise
    os.replace(tmp, path)


class NoStore(FileNotFoundError):
    """A path that holds no sweep's store: mistyped, or the sweep never ran there."""


STORE_ENTRIES = ("spec.yaml", "trials", "epochs", "runs")  # what a launch writes first (``create``)


def is_store(root: str | Path) -> bool:
    return any((Path(root) / name).exists() for name in STORE_ENTRIES)


class Store:
    def __init__(self, root: str | Path, task: str):
        self.root = Path(root)
        self.task = task
        self.trials_schema = trials_schema(task)
        self.epochs_schema = epochs_schema(task)

    @property
    def trials_dir(self) -> Path:
        return self.root / "trials"

    @property
    def epochs_dir(self) -> Path:
        return self.root / "epochs"

    def run_dir(self, trial_id: str) -> Path:
        return self.root / "runs" / trial_id

    def require(self) -> "Store":
        """This store, or ``NoStore`` naming the path when nothing of a sweep is there."""
        if not is_store(self.root):
            where = "does not exist" if not self.root.exists() else "holds no spec.yaml, trials/ or epochs/"
            raise NoStore(f"{self.root} {where}: no sweep's store is there; check the path (a sweep's "
                          "store is the --results-dir it ran with, by default results/<spec name>/<profile>)")
        return self

    def create(self) -> None:
        for d in (self.trials_dir, self.epochs_dir, self.root / "runs"):
            d.mkdir(parents=True, exist_ok=True)

    def write_spec(self, spec) -> None:
        _write_text_atomic(self.root / "spec.yaml", yaml.safe_dump(to_dict(spec), sort_keys=False))

    def seeding(self, plan: str) -> dict | None:
        """The ``--until-decided`` record of a plan: {"trials": {id: arm id}, "max_seeds": n}, or None."""
        try:
            return json.loads((self.root / "seeding" / f"{plan}.json").read_text())
        except FileNotFoundError:
            return None

    def write_seeding(self, plan: str, record: dict) -> None:
        (self.root / "seeding").mkdir(parents=True, exist_ok=True)
        _write_text_atomic(self.root / "seeding" / f"{plan}.json", json.dumps(record, sort_keys=True))

    def write_epochs(self, trial_id: str, rows: list[dict]) -> None:
        rows = [{"id": trial_id, **r} for r in rows]
        _write_atomic(pa.Table.from_pylist(rows, schema=self.epochs_schema), self.epochs_dir / f"{trial_id}.parquet")

    def write_trial(self, row: dict) -> None:
        _write_atomic(pa.Table.from_pylist([row], schema=self.trials_schema), self.trials_dir / f"{row['id']}.parquet")

    def row(self, trial_id: str, columns: list[str] | None = None) -> dict | None:
        """One trial's recorded row (reads only its own file), or None."""
        try:
            rows = pq.read_table(self.trials_dir / f"{trial_id}.parquet", columns=columns).to_pylist()
        except (FileNotFoundError, pa.ArrowInvalid):
            return None
        return rows[0] if rows else None

    def mark_cancelled(self, trial_id: str) -> None:
        """The launcher stopped this unrecorded trial on request (a rerun resumes it and clears the mark)."""
        (self.run_dir(trial_id) / "cancelled").touch()

    def run_state(self, trial_id: str, lost_after: float) -> Status | None:
        """An unrecorded trial's state from its heartbeat: ``running`` (beat within
        ``lost_after`` seconds), ``lost`` (its worker died without a trace: it reruns
        with the sweep), ``cancelled`` (stopped on request: it reruns with the sweep),
        or None (never started)."""
        if (self.run_dir(trial_id) / "cancelled").exists():
            return Status.CANCELLED
        try:
            age = time.time() - (self.run_dir(trial_id) / "heartbeat").stat().st_mtime
        except FileNotFoundError:
            return None
        return Status.RUNNING if age < lost_after else Status.LOST

    def recorded(self, trial_id: str) -> bool:
        """Whether the trial has its row (a file's existence: cheap enough to ask every second)."""
        return (self.trials_dir / f"{trial_id}.parquet").exists()

    def status(self, trial_id: str) -> Status | None:
        row = self.row(trial_id, ["status"])
        return row and Status(row["status"])

    def statuses(self) -> dict[str, Status]:
        """id -> status of every recorded trial."""
        if not self.trials_dir.is_dir():
            return {}
        out = {}
        for path in self.trials_dir.glob("[!.]*.parquet"):
            try:
                t = pq.read_table(path, columns=["id", "status"])
            except (pa.ArrowInvalid, OSError):  # not ours / unreadable: treated as not recorded
                continue
            for tid, status in zip(t["id"].to_pylist(), t["status"].to_pylist()):
                out[tid] = Status(status)
        return out

    def trials(self) -> pa.Table:
        return self._read(self.trials_dir, self.trials_schema)

    def epochs(self) -> pa.Table:
        return self._read(self.epochs_dir, self.epochs_schema)

    @staticmethod
    def _read(directory: Path, schema: pa.Schema) -> pa.Table:
        files = sorted(directory.glob("[!.]*.parquet")) if directory.is_dir() else []
        if not files:
            return schema.empty_table()
        return pq.read_table([str(f) for f in files], schema=schema)
