"""No test can hang the run: a trial that stalls fails the test waiting on it, by that
wait's own deadline (``conftest.wait_for``) or, for a wait without one, by the per-test
deadline (pytest-timeout, ``timeout`` in pyproject.toml). Shown on real stalled trials
(SIGSTOPped mid-epoch) inside a nested pytest run."""

import pytest

from .conftest import ROOT

INNER = """
import os, signal, subprocess, sys

import pytest
import yaml

from tests.conftest import SWEEP, TOY, wait_for


@pytest.fixture
def stalled(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(dict(TOY, grid=[{"model": "traditional", "cell": "gru", "hidden_dim": 4}],
                                        train=dict(TOY["train"], epochs=500))))
    results = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, str(SWEEP), str(spec), "--results-dir", str(results)],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: any(results.glob("epochs/[!.]*.parquet")), "the first epoch", timeout=120)
    os.killpg(proc.pid, signal.SIGSTOP)  # the trial and its launcher stop mid-sweep
    yield proc, results
    os.killpg(proc.pid, signal.SIGKILL)


def test_waits_with_a_deadline(stalled):
    proc, results = stalled
    wait_for(lambda: any(results.glob("trials/[!.]*.parquet")), "the trial's row", timeout=5)


@pytest.mark.timeout(10)
def test_waits_without_one(stalled):
    proc, results = stalled
    proc.wait()
"""


@pytest.mark.slow
def test_a_stalled_trial_fails_its_test_by_the_deadline_instead_of_hanging(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=600)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*timed out after 5 s waiting for the trial's row*", "*Timeout (>10.0s) from pytest-timeout*"])
