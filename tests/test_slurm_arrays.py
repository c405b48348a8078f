"""Sweeps larger than the cluster's limits, on the project's real SLURM test cluster, whose
MaxArraySize is 10 (scripts/slurm/up.sh): arrays split by the limit, a queue limit that
holds trials back, and sbatch's refusals as one clear line."""

import getpass
import json
import re
import subprocess

import pandas as pd
import pytest

from launch.backends.slurm import SlurmBackend, SlurmOptions, cluster_limits
from launch.spec import load_spec

from .conftest import TOY, sweep, wait_for

# 25 trials: 5 sizes x 5 seeds
GRID = [{"model": "traditional", "cell": "gru", "hidden_dim": [2, 3, 4, 5, 6]}]
SEEDS = [0, 1, 2, 3, 4]


def records(results):
    return sorted((json.loads(p.read_text()) for p in (results / "slurm").glob("[!.]*.json")),
                  key=lambda r: r["submitted_at"])


def submitted_sizes(out: str) -> list[int]:
    return [int(n) for n in re.findall(r"submitted (\d+) trials as SLURM array job", out)]


@pytest.fixture
def array_limit(slurm_cluster):
    size = cluster_limits(SlurmOptions()).cluster_array_size
    assert size == 10, f"the test cluster's MaxArraySize is {size}, not 10: start it with scripts/slurm/up.sh"
    yield size
    # a failed test must not leave jobs behind to fill the next one's queue (tests run one at a time)
    subprocess.run(["scancel", "-u", getpass.getuser()], check=False)


@pytest.mark.slow
def test_25_trials_go_out_as_3_arrays_seen_by_status_cancel_and_reruns(array_limit, write_spec, tmp_path):
    # ~10 s a trial, two at a time: the first array is still running when cancel lands
    slow = dict(TOY, grid=GRID, seeds=SEEDS, train=dict(TOY["train"], epochs=40),
                data=dict(TOY["data"], train_videos=64, size=32))
    spec, results = write_spec(slow), tmp_path / "r"
    out = sweep(spec, "--results-dir", results, "--backend", "slurm")
    assert out.returncode == 0, out.stdout + out.stderr
    assert submitted_sizes(out.stdout) == [10, 10, 5] and [len(r["trials"]) for r in records(results)] == [10, 10, 5]
    arrays = [r["job_id"] for r in records(results)]
    assert len({t for r in records(results) for t in r["trials"]}) == 25

    again = sweep(spec, "--results-dir", results, "--backend", "slurm")  # nothing queued is submitted again
    assert again.returncode == 0 and ", 0 to run" in again.stdout, again.stdout
    assert len(records(results)) == 3 and not submitted_sizes(again.stdout)

    held = SlurmBackend.from_spec(load_spec(spec), {}).held(results)  # what status and cancel read
    assert len(held) == 25 and {h.job.split("_")[0] for h in held.values()} == set(arrays)
    status = sweep("status", spec, "--results-dir", results)
    counts = dict((s, int(n)) for n, s in re.findall(r"(\d+) (\w+)", status.stdout.splitlines()[-1]))
    assert sum(counts.values()) == 25, status.stdout

    cancel = sweep("cancel", spec, "--results-dir", results)
    assert cancel.returncode == 0, cancel.stderr
    named = re.search(r"cancelled SLURM job\(s\) ([\d, ]+)", cancel.stdout).group(1).split(", ")
    assert set(named) == set(arrays), cancel.stdout  # all three arrays had trials queued

    def ended() -> bool:
        last = sweep("status", spec, "--results-dir", results).stdout.splitlines()[-1]
        return sum(int(n) for n, s in re.findall(r"(\d+) (\w+)", last) if s in ("cancelled", "completed")) == 25

    wait_for(ended, "every trial cancelled (or completed before the cancel)", timeout=90, every=1)

    rerun = sweep(spec, "--results-dir", results, "--backend", "slurm", "--wait")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert all(n <= 10 for n in submitted_sizes(rerun.stdout))
    df = pd.read_parquet(results / "trials")
    assert len(df) == 25 and df.id.is_unique and (df.status == "completed").all()

    final = sweep(spec, "--results-dir", results, "--backend", "slurm")  # done: nothing is submitted
    assert final.returncode == 0 and "25 already recorded" in final.stdout and not submitted_sizes(final.stdout)


@pytest.mark.slow
def test_a_queue_limit_holds_trials_back_and_submits_them_as_the_queue_drains(array_limit, write_spec, tmp_path):
    spec, results = write_spec(dict(TOY, grid=GRID, seeds=SEEDS)), tmp_path / "r"
    limited = ("--results-dir", results, "--backend", "slurm", "--set", "slurm.max_queued=12")
    first = sweep(spec, *limited)
    assert first.returncode == 0, first.stdout + first.stderr
    assert submitted_sizes(first.stdout) == [10, 2] and "13 trials held back (slurm.max_queued 12" in first.stdout

    waited = sweep(spec, *limited, "--wait")  # submits the held ones as earlier jobs drain, never more than 12 queued
    assert waited.returncode == 0, waited.stdout + waited.stderr
    subs = records(results)
    submitted = [t for r in subs for t in r["trials"]]
    assert len(submitted) == len(set(submitted)) == 25  # every trial submitted once: none lost, none doubled
    assert all(len(r["trials"]) <= 10 for r in subs) and len(subs) >= 4
    df = pd.read_parquet(results / "trials")
    assert len(df) == 25 and (df.status == "completed").all()


@pytest.mark.bad_input
@pytest.mark.parametrize("args,said,change", [
    (["--set", "slurm.max_array_size=50"], "Invalid job array specification",
     "the array had 25 tasks and the cluster's MaxArraySize is 10: set slurm.max_array_size to at most 10"),
    (["--partition", "nosuch"], "Invalid partition name specified", "check --partition / slurm.partition"),
])
def test_a_submission_sbatch_refuses_is_one_clear_line(array_limit, write_spec, tmp_path, args, said, change):
    spec, results = write_spec(dict(TOY, grid=GRID, seeds=SEEDS)), tmp_path / "r"
    out = sweep(spec, "--results-dir", results, "--backend", "slurm", *args)
    assert out.returncode == 2, out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: sbatch refused an array of "), out.stderr
    assert said in errors[0] and change in errors[0]
    assert not results.exists()  # nothing of the refused run is left behind
