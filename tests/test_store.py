"""The Parquet store: atomic per-trial files, one schema, readable by pyarrow and pandas."""

import pandas as pd
import pyarrow.parquet as pq

from launch.expand import expand
from launch.spec import load_spec
from launch.store import Store, flatten


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
    assert df.loc[ok.id, "model.hidden_dim"] == ok.config["model"]["hidden_dim"]
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
