import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest_plugins = ["pytester"]  # tests/test_deadlines.py runs a nested pytest

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "launch" / "sweep.py"

# a sweep whose trials take milliseconds: 4 traditional + 1 PreRNN trial
TOY = {
    "name": "toy",
    "task": "toy",
    "data": {"source": "toy", "train_videos": 8, "test_videos": 4, "frames": 4, "size": 8},
    "backbone": {"name": "mini_vgg", "pretrained": "none"},
    "train": {"epochs": 2, "batch_size": 4, "lr": 0.01, "schedule": "constant"},
    "grid": [
        {"model": "traditional", "cell": ["vrnn", "gru"], "hidden_dim": [4, 8]},
        {"model": "prernn", "cell": "lstm"},
    ],
}


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Pre-training caches and weights lookups never touch the user's home."""
    os.environ["PRERNN_CACHE"] = str(tmp_path_factory.mktemp("prernn-cache"))
    os.environ.setdefault("PRERNN_WEIGHTS", str(tmp_path_factory.mktemp("weights")))


@pytest.fixture
def write_spec(tmp_path):
    def write(spec: dict | str | None = None, filename: str = "spec.yaml", **changes) -> Path:
        spec = dict(TOY if spec is None else spec) if not isinstance(spec, str) else spec
        if isinstance(spec, dict):
            spec.update(changes)
        path = tmp_path / filename
        path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec))
        return path
    return write


def _service_or_skip(name: str, available: bool, how: str) -> None:
    """Tests that need a real service skip without it, except under CI=true where they must run."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is not available but CI=true requires it ({how})")
    pytest.skip(f"{name} not available ({how})")


@pytest.fixture(scope="session")
def slurm_cluster():
    import shutil

    ok = shutil.which("sinfo") is not None and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0
    if ok:  # submitit reads job states from sacct: accounting must be on
        ok = subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True).returncode == 0
    _service_or_skip("SLURM", ok, "start one with: bash scripts/slurm/install.sh && ACCT=1 bash scripts/slurm/up.sh")


RAY_ADDRESS = "127.0.0.1:6390"  # where scripts/ray/up.sh puts the two-node cluster


@pytest.fixture(scope="session")
def ray_cluster():
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    out = subprocess.run([str(Path(sys.executable).parent / "ray"), "status", f"--address={RAY_ADDRESS}"],
                         capture_output=True, text=True, env=env)
    nodes = out.stdout.count(" 1 node_") if out.returncode == 0 else 0
    _service_or_skip("a two-node Ray cluster", nodes >= 2, "start one with: bash scripts/ray/up.sh")
    os.environ["RAY_AUTH_MODE"] = "token"  # every Ray process must agree
    return RAY_ADDRESS


def children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (from /proc)."""
    kids = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.add(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    return kids


def process_tree(root: int) -> set[int]:
    """``root`` and all its descendants."""
    pids, frontier = {root}, {root}
    while frontier:
        frontier = {kid for pid in frontier for kid in children(pid)} - pids
        pids |= frontier
    return pids


def wait_for(predicate, what: str, timeout: float = 120, every: float = 0.1):
    """Poll ``predicate()`` until it returns something truthy (returned) or fail the test
    after ``timeout`` seconds, naming ``what`` it waited for: no test waits on a fixed sleep
    or without a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def sweep(*args: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """Run the CLI as a user would: a fresh Python process."""
    return subprocess.run([sys.executable, str(SWEEP), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=kw.pop("cwd", ROOT), **kw)


_CUDA_DESELECTED: list = []


@pytest.fixture(autouse=True)
def _cpu_unless_marked_cuda(request, monkeypatch):
    """Unmarked tests assert the CPU's devices and numbers, so on a GPU node they run on the
    CPU too: this process sees no CUDA device, nor does any process it starts (the CLI, the
    local backend's workers). Tests marked ``cuda`` see the GPU."""
    if request.node.get_closest_marker("cuda"):
        return
    import torch

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def cuda_branch(monkeypatch):
    """Placement's CUDA branch taken on CPU tensors (``cuda`` true, no device name to ask for);
    the process-wide switches that branch sets are restored after the test."""
    import torch

    from prernn.train.device import Placement

    monkeypatch.setattr(Placement, "cuda", property(lambda self: True))
    monkeypatch.setattr(Placement, "gpu", property(lambda self: None))
    from prernn.recurrent import loops

    switches = [(torch.backends.cuda.matmul, "fp32_precision"), (torch.backends.cudnn.conv, "fp32_precision"),
                (torch.backends.cudnn, "benchmark"), (torch.backends.cudnn, "deterministic"), (loops, "compile_on")]
    before = [getattr(obj, name) for obj, name in switches]
    yield
    for (obj, name), value in zip(switches, before):
        setattr(obj, name, value)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` run only where torch sees a CUDA device; elsewhere they are
    deselected, so that "no test skipped" stays checkable on CPU-only CI."""
    import torch

    if torch.cuda.is_available():
        return
    gpu = [item for item in items if item.get_closest_marker("cuda")]
    if gpu:
        items[:] = [item for item in items if not item.get_closest_marker("cuda")]
        config.hook.pytest_deselected(items=gpu)
        _CUDA_DESELECTED.extend(item.nodeid for item in gpu)


def pytest_terminal_summary(terminalreporter):
    """The reliability figures RELIABILITY.md quotes: totals of what the tests counted as
    they ran (``record_property("reliability ...", n)``, from failed tests too, so that a
    figure such as rows lost can come out non-zero) and the bad-input cases that passed."""
    passed = terminalreporter.stats.get("passed", [])
    totals: dict[str, int] = {}
    failing = set()
    for report in passed + terminalreporter.stats.get("failed", []):
        for name, value in getattr(report, "user_properties", ()):
            if name.startswith("reliability "):
                key = name[len("reliability "):]
                totals[key] = totals.get(key, 0) + value
                if report.failed:
                    failing.add(key)
    bad = {}
    for report in passed:
        if report.when == "call" and "bad_input" in report.keywords:
            module = report.nodeid.split("::")[0].rsplit("/", 1)[-1]
            bad[module] = bad.get(module, 0) + 1
    if _CUDA_DESELECTED:
        terminalreporter.write_line(f"{len(_CUDA_DESELECTED)} tests need CUDA and were deselected: this machine has "
                                    "no CUDA device (they run where torch sees one)")
    if not totals and not bad:
        return
    terminalreporter.section("reliability figures")
    for name, value in sorted(totals.items()):
        terminalreporter.write_line(f"{name}: {value}" + (" (a test that counted it failed)" if name in failing else ""))
    if bad:
        detail = ", ".join(f"{m} {n}" for m, n in sorted(bad.items()))
        terminalreporter.write_line(f"bad-input tests passed: {sum(bad.values())} ({detail})")


def cancel_once_an_epoch_is_done(args: list[str]) -> None:
    """Start ``prernn-sweep *args`` (spec, --results-dir, dir, ...), and once a trial has finished an
    epoch run ``cancel`` from another process: it says what it cancelled and the launcher exits 3."""
    results = Path(args[2])
    launcher = subprocess.Popen([sys.executable, str(SWEEP), *args], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: list(results.glob("epochs/*.parquet")), "a trial to finish an epoch", timeout=300)
        cancel = sweep("cancel", *args[:3])
        out, _ = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert cancel.returncode == 0 and "launcher's running trials" in cancel.stdout, cancel.stdout + cancel.stderr
    assert launcher.returncode == 3 and "cancelled by `prernn-sweep cancel`" in out, out


def cancel_from_another_process_then_resume(write_spec, tmp_path, *backend_args: str) -> None:
    """``cancel`` from another process stops a running sweep: the launcher exits 3, its running
    trials are ``cancelled`` (no row, their checkpoints kept) and none starts after; a rerun
    resumes them from their last epoch and completes every trial exactly once."""
    import pandas as pd

    grid = [{"model": "traditional", "cell": "gru", "hidden_dim": [2, 4, 8, 16]}]
    slow = dict(TOY, grid=grid, train=dict(TOY["train"], epochs=30), data=dict(TOY["data"], train_videos=48, size=32))
    spec, results = write_spec(slow), tmp_path / "r"
    args = [str(spec), "--results-dir", str(results), *backend_args]
    cancel_once_an_epoch_is_done(args)
    recorded = set(pd.read_parquet(results / "trials").id) if list(results.glob("trials/*.parquet")) else set()
    stopped = {p.parent.name for p in results.glob("runs/*/cancelled")}
    begun = {p.stem for p in results.glob("epochs/*.parquet")} & stopped  # had finished an epoch
    assert begun and not stopped & recorded  # cancelled trials have no row: they are not done
    status = sweep("status", *args[:3])
    assert status.stdout.count("cancelled") >= len(stopped), status.stdout
    rerun = sweep(*args)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    df = pd.read_parquet(results / "trials")
    assert len(df) == 4 and df.id.is_unique and (df.status == "completed").all() and (df.epochs_done == 30).all()
    for tid in begun:
        log = (results / "runs" / tid / "log.txt").read_text()
        assert "resuming after epoch" in log, log  # from its checkpoint, not from scratch
    assert not list(results.glob("runs/*/cancelled"))
