"""Optuna searches: the study asks, any backend runs the sampled trials, stored like grid trials; pruned ones are recorded as pruned."""

import re
import subprocess

import pandas as pd
import pytest

from launch.spec import SpecError, load_spec

from .conftest import RAY_ADDRESS, TOY, cancel_once_an_epoch_is_done, sweep, wait_for

SEARCH = dict(
    TOY,
    name="toysearch",
    data=dict(TOY["data"], train_videos=16),
    train=dict(TOY["train"], epochs=4),
    grid=[{"model": "traditional", "cell": "gru", "hidden_dim": 8}],
    search={"n_trials": 8, "sampler": "tpe", "pruner": "median", "seed": 0,
            "space": {"train.lr": {"low": 0.0001, "high": 0.5, "log": True},
                      "hidden_dim": {"low": 2, "high": 32, "integer": True, "log": True},
                      "cell": {"choices": ["vrnn", "gru"]}}},
)


def check_store(results, epochs=4):
    df = pd.read_parquet(results / "trials")
    assert set(df.status) <= {"completed", "pruned"} and (df.status == "completed").any()
    pruned = df[df.status == "pruned"]
    assert len(pruned) and (pruned.epochs_done < epochs).all() and pruned.test_loss.notna().all()
    epochs_table = pd.read_parquet(results / "epochs")
    for _, row in pruned.iterrows():  # recorded with its last epoch
        assert epochs_table[epochs_table.id == row.id].epoch.max() + 1 == row.epochs_done
    return df


def test_local_search_with_pruning_and_rerun(write_spec, tmp_path):
    spec, results = write_spec(SEARCH), tmp_path / "r"
    out = sweep(spec, "--results-dir", results)
    assert out.returncode == 0, out.stdout + out.stderr
    df = check_store(results)
    assert len(df) == 8 and df.id.is_unique and "best:" in out.stdout
    assert (results / "optuna.journal").is_file()
    again = sweep(spec, "--results-dir", results)  # the study is full: nothing runs
    assert again.returncode == 0
    pd.testing.assert_frame_equal(pd.read_parquet(results / "trials"), df)


def test_a_local_slot_that_frees_takes_the_next_point_at_once(write_spec, tmp_path):
    """Trials of 1 and 40 epochs on 2 local slots: when a short one ends, the next point is
    asked and started while the long one runs (a batch of 2 would wait for it). Each point's
    value is told to the study as its trial ends."""
    spec = dict(SEARCH, name="asyncsearch",
                search={"n_trials": 6, "sampler": "grid", "pruner": "none", "seed": 0,
                        "space": {"train.epochs": {"choices": [1, 40]}, "hidden_dim": {"choices": [2, 4, 8]}}})
    results = tmp_path / "r"
    out = sweep(write_spec(spec), "--results-dir", results, "--workers", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    df = pd.read_parquet(results / "trials").sort_values("started_at")
    assert len(df) == 6 and (df.status == "completed").all()
    overlaps = [(a.label, b.label) for i, a in enumerate(df.itertuples()) for b in df.iloc[i + 1:].itertuples()
                if (b.started_at - a.started_at).total_seconds() > 0.5 and b.started_at < a.finished_at]
    assert overlaps, df[["label", "started_at", "finished_at"]]  # a trial started while an earlier one ran on
    assert "[6/6] completed" in out.stdout  # one progress over the whole search
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(results / "optuna.journal")))
    (name,) = optuna.get_all_study_names(storage)
    told = optuna.load_study(study_name=name, storage=storage).trials
    assert [t.state.name for t in told] == ["COMPLETE"] * 6 and all(t.value > 0 for t in told)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["ray", "slurm"])
def test_an_asynchronous_search_on_a_cluster_runs_each_point_once_and_prunes(backend, request, write_spec, tmp_path):
    """Ray tasks, or 2 SLURM pilot jobs that run point after point (``--wait``): the study ends with its
    ``n_trials`` told, no trial ran twice, and the pruner's stops are recorded ``pruned``."""
    args = {"ray": ["--ray-address", RAY_ADDRESS], "slurm": ["--wait", "--max-running", "2"]}[backend]
    request.getfixturevalue(f"{backend}_cluster")
    spec, results = write_spec(SEARCH), tmp_path / "r"
    out = sweep(spec, "--results-dir", results, "--backend", backend, *args)
    assert out.returncode == 0, out.stdout + out.stderr
    df = check_store(results)  # ids are per config: repeated samples share a row
    assert df.id.is_unique and len(df) >= 6
    starts = {p.parent.name: p.read_text().count(" start ") for p in results.glob("runs/*/log.txt")}
    assert set(starts) == set(df.id) and set(starts.values()) == {1}, starts  # each point's trial ran once
    told = out.stdout.split("optuna study", 1)[1].splitlines()[0]  # "<name>: 5 complete, 3 pruned"
    assert sum(int(n) for n in re.findall(r"(\d+) [a-z]+", told.split(":", 1)[1])) == 8, told
    if backend == "slurm":  # every point handed to one of 2 pilot jobs, recorded for status and cancel
        import json

        jobs = [json.loads(p.read_text()) for p in (results / "slurm").glob("[!.]*.json")]
        assert sorted(t for j in jobs for t in j["trials"]) == sorted(df.id)
        assert len({j["job_id"] for j in jobs}) == 2, jobs  # each served several points
        assert set(df.worker) == {f"slurm/{j['job_id']}" for j in jobs}
        ids = ",".join({j["job_id"] for j in jobs})  # told to stop, the idle pilots leave the queue
        wait_for(lambda: not subprocess.run(["squeue", "-h", "-j", ids], capture_output=True, text=True).stdout,
                 "the pilots to leave the queue", timeout=60)
        shown = sweep("status", spec, "--results-dir", results)  # finished there, not 'queued' or 'running'
        assert shown.returncode == 0 and "queued" not in shown.stdout and "running" not in shown.stdout, shown.stdout


@pytest.mark.slow
def test_ray_grid_with_asha_records_pruned(ray_cluster, write_spec, tmp_path):
    grid = [{"model": "traditional", "cell": ["vrnn", "gru"], "hidden_dim": [2, 4, 8, 16], "train.lr": [0.5, 0.001]}]
    spec, results = write_spec(dict(TOY, grid=grid, train=dict(TOY["train"], epochs=4))), tmp_path / "r"
    out = sweep(spec, "--results-dir", results, "--backend", "ray", "--ray-address", RAY_ADDRESS, "--asha")
    assert out.returncode == 0, out.stdout + out.stderr
    df = check_store(results)
    assert len(df) == 16
    assert df[df.status == "pruned"].wall_seconds.isna().all()  # stopped elsewhere: time unknown, not 0


@pytest.mark.parametrize("space,expected", [
    ({"hiden_dim": {"low": 1, "high": 2}}, "unknown key 'hiden_dim'.*did you mean 'hidden_dim'"),
    ({"train.lr": {"low": 0.1, "high": 0.01}}, "low must be below high"),
    ({"train.lr": {"low": 0, "high": 1, "log": True}}, "a log range needs low > 0"),
    ({"cell": {"choices": []}}, "at least 1 item"),
    ({"cell": {}}, "give either choices"),
])
def test_bad_search_specs(write_spec, space, expected):
    with pytest.raises(SpecError, match=expected):
        load_spec(write_spec(dict(SEARCH, search=dict(SEARCH["search"], space=space))))


def test_grid_sampler_needs_choices(write_spec, tmp_path):
    spec = dict(SEARCH, search=dict(SEARCH["search"], sampler="grid"))
    out = sweep(write_spec(spec), "--results-dir", tmp_path / "r")
    assert out.returncode == 2 and "grid sampler needs choices for every parameter" in out.stderr
    assert not (tmp_path / "r").exists()


def test_search_in_an_rdb_storage(write_spec, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    spec = dict(SEARCH, search=dict(SEARCH["search"], n_trials=3, pruner="none"))
    out = sweep(write_spec(spec), "--results-dir", tmp_path / "r", "--optuna-storage", url)
    assert out.returncode == 0, out.stdout + out.stderr
    import optuna

    study = optuna.load_study(study_name="toysearch-mini", storage=url)
    assert len(study.trials) == 3 and not (tmp_path / "r" / "optuna.journal").exists()
    stored = set(pd.read_parquet(tmp_path / "r" / "trials").id)
    assert {t.user_attrs["trial_id"] for t in study.trials} == stored


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "slurm"])
def test_a_cancelled_search_resumes_its_running_points_on_a_rerun(backend, request, write_spec, tmp_path):
    """``cancel`` stops a search mid-trial (exit 3): local workers, or SLURM pilot jobs; the rerun
    asks the interrupted points again first, their trials resume from their last epoch, and the
    study ends with n_trials."""
    spec = dict(SEARCH, name="cancelsearch", train=dict(SEARCH["train"], epochs=60),
                data=dict(SEARCH["data"], train_videos=48, size=32),
                search={"n_trials": 4, "sampler": "random", "pruner": "none", "seed": 0,
                        "space": {"train.lr": {"low": 0.001, "high": 0.1, "log": True}}})
    spec, results = write_spec(spec), tmp_path / "r"
    args = [str(spec), "--results-dir", str(results)]
    if backend == "slurm":
        request.getfixturevalue("slurm_cluster")
        args += ["--backend", "slurm", "--wait", "--max-running", "2"]
    else:
        args += ["--workers", "2"]
    cancel_once_an_epoch_is_done(args)
    stopped = {p.parent.name for p in results.glob("runs/*/cancelled")}
    begun = {p.stem for p in results.glob("epochs/*.parquet")} & stopped
    assert begun
    rerun = sweep(*args)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "4 complete" in rerun.stdout and "fail" not in rerun.stdout.split("optuna study", 1)[1].splitlines()[0]
    df = pd.read_parquet(results / "trials")
    assert len(df) == 4 and df.id.is_unique and (df.status == "completed").all() and (df.epochs_done == 60).all()
    assert stopped <= set(df.id)  # the interrupted points were asked again, not replaced by new ones
    for tid in begun:
        assert "resuming after epoch" in (results / "runs" / tid / "log.txt").read_text()
