"""The Parquet store: atomic per-trial files, one schema, readable by pyarrow and pandas."""

import pandas as pd
import pyarrow.parquet as pq

from launch.expand import expand
from launch.spec import load_spec
from records.store import Store, flatten


def test_rows_round_trip_with_a_fixed_schema(write_spec, tmp_path):
    trials = expand(load_spec(write_spec()))
    store = Store(tmp_path / "s", "toy")
    store.create()
    ok, bad = trials[0], trials[-1]
    store.write_epochs(ok.id, [{"epoch": 0, "train_loss": 1.0, "lr": 0.1, "test_loss": 0.5, "epoch_seconds": 0.1}])
    store.write_trial({"id": ok.id, "sweep": "toy", "status": "completed", "test_loss": 0.5, **flatten(ok.config)})
    store.write_trial({"id": bad.id, "sweep": "toy", "status": "failed", "error": "boom", **flatten(bad.config)})
    assert store.statuses() == {ok.id: "completed", bad.id: "failed"}
    table = pq.read_table(tmp_path / "s" / "trials")
    assert table.schema == store.trials_schema and table.num_rows == 2
    df = pd.read_parquet(tmp_path / "s" / "trials").set_index("id")
    assert df.loc[bad.id, "error"] == "boom" and pd.isna(df.loc[bad.id, "test_loss"])
    assert df.loc[ok.id, "model.hidden_dim"] == ok.config.model.hidden_dim
    assert pd.read_parquet(tmp_path / "s" / "epochs").test_loss.tolist() == [0.5]
    assert not list((tmp_path / "s").rglob(".*.tmp"))


def test_partial_and_foreign_files_are_ignored(write_spec, tmp_path):
    store = Store(tmp_path / "s", "toy")
    store.create()
    (store.trials_dir / ".abc.parquet.123.tmp").write_bytes(b"half a file")
    (store.trials_dir / "garbage.parquet").write_bytes(b"not parquet")
    assert store.statuses() == {}


def test_rewriting_a_trial_replaces_its_row(write_spec, tmp_path):
    t = expand(load_spec(write_spec()))[0]
    store = Store(tmp_path / "s", "toy")
    store.create()
    for status in ("failed", "completed"):
        store.write_trial({"id": t.id, "sweep": "toy", "status": status, **flatten(t.config)})
    assert store.trials().num_rows == 1 and store.statuses() == {t.id: "completed"}


def _recorded_store(write_spec, tmp_path):
    """A store with one completed trial (its epochs and row), and the trials of its spec."""
    trials = expand(load_spec(write_spec()))
    store = Store(tmp_path / "s", "toy")
    store.create()
    ok = trials[0]
    store.write_epochs(ok.id, [{"epoch": 0, "train_loss": 1.0, "lr": 0.1, "test_loss": 0.5, "epoch_seconds": 0.1}])
    store.write_trial({"id": ok.id, "sweep": "toy", "status": "completed", "test_loss": 0.5, **flatten(ok.config)})
    return store, trials


def _seen(store) -> tuple:
    """Everything a reader of the store sees."""
    return (store.statuses(), store.trials().to_pylist(), store.epochs().to_pylist(),
            sorted(p.name for p in store.root.rglob("[!.]*.parquet")))


def _half_then(fail):
    """A pyarrow writer that writes the first half of the file, then ``fail()``s."""
    real = pq.write_table

    def write_table(table, where, **kw):
        import io

        buf = io.BytesIO()
        real(table, buf, **kw)
        data = buf.getvalue()
        with open(where, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
        fail()
    return write_table


def test_an_interrupted_write_leaves_no_visible_file(write_spec, tmp_path, monkeypatch):
    import pytest

    store, trials = _recorded_store(write_spec, tmp_path)
    before = _seen(store)
    new = trials[1]

    def disk_full():
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("records.store.pq.write_table", _half_then(disk_full))
    with pytest.raises(OSError, match="No space left"):
        store.write_trial({"id": new.id, "sweep": "toy", "status": "completed", **flatten(new.config)})
    with pytest.raises(OSError, match="No space left"):
        store.write_epochs(new.id, [{"epoch": 0, "train_loss": 1.0, "lr": 0.1, "epoch_seconds": 0.1}])
    assert not (store.trials_dir / f"{new.id}.parquet").exists()
    assert not (store.epochs_dir / f"{new.id}.parquet").exists()
    assert _seen(store) == before
    assert not list(store.root.rglob(".*.tmp")), "a writer that raised cleans up its temp file"


KILLED_WRITER = """
import os, signal, sys
sys.path.insert(0, sys.argv[3])
from records.store import Store
import tests.test_store as t
import records.store
records.store.pq.write_table = t._half_then(lambda: os.kill(os.getpid(), signal.SIGKILL))
Store(sys.argv[1], "toy").write_trial({"id": sys.argv[2], "sweep": "toy", "status": "completed"})
"""


def test_a_writer_killed_mid_write_leaves_only_a_hidden_leftover_that_readers_skip(write_spec, tmp_path):
    import signal
    import subprocess
    import sys

    from .conftest import ROOT

    store, trials = _recorded_store(write_spec, tmp_path)
    before = _seen(store)
    new = trials[1].id
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(store.root), new, str(ROOT)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    leftovers = [p.name for p in store.trials_dir.iterdir() if p.name.startswith(".")]
    assert leftovers, "the killed writer should have left its half-written temp file"
    assert not (store.trials_dir / f"{new}.parquet").exists()
    assert _seen(store) == before


def test_readers_skip_hidden_files_named_like_real_ones(write_spec, tmp_path):
    """Leftovers named exactly like a real file, only hidden: a whole one (it would add a row)
    and a torn one (it would not parse). No reader sees either."""
    store, trials = _recorded_store(write_spec, tmp_path)
    before = _seen(store)
    ghost, torn = trials[1], trials[2]
    other = Store(tmp_path / "other", "toy")
    other.create()
    other.write_trial({"id": ghost.id, "sweep": "toy", "status": "failed", **flatten(ghost.config)})
    other.write_epochs(ghost.id, [{"epoch": 0, "train_loss": 2.0, "lr": 0.1, "epoch_seconds": 0.1}])
    for d in ("trials", "epochs"):
        whole = (other.root / d / f"{ghost.id}.parquet").read_bytes()
        (store.root / d / f".{ghost.id}.parquet").write_bytes(whole)
        (store.root / d / f".{torn.id}.parquet").write_bytes(whole[: len(whole) // 2])
        (store.root / d / f".{torn.id}.parquet.4242.tmp").write_bytes(whole)
    assert _seen(store) == before
    assert store.row(ghost.id) is None and store.status(ghost.id) is None
