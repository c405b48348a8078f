"""One suite every backend passes: same sweep in, same rows out; failures and resume alike."""

import pandas as pd
import pytest

from .conftest import RAY_ADDRESS, TOY, sweep

BACKENDS = ["local", "slurm", "ray"]
GRID = [{"model": "traditional", "cell": ["vrnn", "gru"], "hidden_dim": 4},
        {"model": "prernn", "cell": "lstm"},
        {"model": "traditional", "cell": "gru", "hidden_dim": 8, "data.fail_at_epoch": 1}]


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "slurm":
        request.getfixturevalue("slurm_cluster")
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    return request.param


def run(backend, spec, results, *extra):
    options = {"slurm": ["--wait"], "ray": ["--ray-address", RAY_ADDRESS]}.get(backend, [])
    return sweep(spec, "--results-dir", results, "--backend", backend, *options, *extra)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The local backend's rows for the suite's sweep, computed once."""
    d = tmp_path_factory.mktemp("ref")
    spec = d / "spec.yaml"
    import yaml

    spec.write_text(yaml.safe_dump(dict(TOY, grid=GRID)))
    out = sweep(spec, "--results-dir", d / "r")
    assert out.returncode == 1, out.stderr  # one trial fails by design
    return pd.read_parquet(d / "r" / "trials").set_index("id").sort_index()


def test_same_rows_and_failure_semantics(backend, write_spec, tmp_path, reference):
    spec, results = write_spec(dict(TOY, grid=GRID)), tmp_path / "r"
    out = run(backend, spec, results)
    assert out.returncode == 1, out.stdout + out.stderr
    got = pd.read_parquet(results / "trials").set_index("id").sort_index()
    assert list(got.index) == list(reference.index)
    assert list(got.status) == list(reference.status) and sorted(got.status) == ["completed"] * 3 + ["failed"]
    # the determinism rule (README, "Determinism"): bit-identical on every backend
    pd.testing.assert_series_equal(got.test_loss, reference.test_loss, check_exact=True)
    assert got.worker.str.startswith(backend).all()
    again = run(backend, spec, results)  # completed and failed trials are not rerun
    assert "4 already recorded, 0 to run" in again.stdout
    retry = run(backend, spec, results, "--retry-failed")
    assert "1 to run" in retry.stdout and len(pd.read_parquet(results / "trials")) == 4
