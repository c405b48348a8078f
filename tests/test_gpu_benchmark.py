"""benchmarks/gpu.py runs on a node with torch and torchvision only, and its measurement
(networks, autocast steps, the recurrence timed alone) works; the CUDA clock and memory
figures are the only parts left for a GPU."""

import math
import subprocess
import sys

import pytest

from .conftest import ROOT

# packages a GPU node may lack: the script must not import any of them
FORBIDDEN = ("yaml", "pydantic", "pandas", "pyarrow", "scipy", "rich", "ray", "optuna", "submitit", "plotly",
             "av", "launch", "analysis")
RUN = f"""
import runpy, sys
sys.argv = ["gpu.py", *sys.argv[1:]]
try:
    runpy.run_path("benchmarks/gpu.py", run_name="__main__")
except SystemExit as e:
    code = e.code
print("imported:", sorted({{m.split(".")[0] for m in sys.modules}} & set({FORBIDDEN!r})))
sys.exit(code)
"""


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA: it would measure")
def test_without_cuda_it_says_so_builds_every_network_and_exits_0():
    out = subprocess.run([sys.executable, "-c", RUN], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "imported: []" in out.stdout, out.stdout  # torch, torchvision, numpy and prernn only
    assert "no CUDA device: nothing to measure" in out.stdout
    for name in ("vgg16", "c3d", "resnet50"):
        assert f"  {name}: " in out.stdout


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_measurement_runs_on_mini_networks_on_the_cpu(precision):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu

    videos = dict(train_videos=2, test_videos=2)
    mini = {"face": dict(task="face", backbone="mini_vgg", cell="lstm",
                         data=dict(source="synthetic_face", frames=3, size=32, **videos)),
            "action": dict(task="action", backbone="mini_resnet", cell="lstm",
                           data=dict(source="synthetic_action", frames=2, flow_stack=2, size=32, **videos))}
    for name in mini:
        row = gpu.measure(name, precision, steps=2, warmup=1, size=2, device="cpu", networks=mini)
        assert row["step_ms"] > 0 and row["frames_per_s"] > 0 and row["peak_gb"] is None
        # the recurrence timed on its own (two wall-clock timings: no bound on their ratio, which
        # a busy machine can push past 1 - a figure for BENCHMARKS.md, not an assertion)
        assert row["recurrence_ms"] > 0 and math.isfinite(row["recurrence_share"]), row


def test_a_row_per_network_is_written_as_measured_even_when_one_raises(tmp_path, monkeypatch):
    """On the CPU: a network that raises becomes a row with its error and the next one is still
    measured; each row is on disk before the next network starts (an interrupted run keeps it)."""
    import json

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu

    face = dict(task="face", backbone="mini_vgg", cell="lstm",
                data=dict(source="synthetic_face", frames=2, size=32, train_videos=2, test_videos=2))
    networks = {"face": face, "broken": dict(face, backbone="no_such_backbone"), "again": face}
    out = tmp_path / "gpu.json"
    rows = gpu.measure_all(list(networks), ["fp32"], steps=1, warmup=0, size=2, json_path=out, device="cpu",
                           networks=networks)
    assert [r["network"] for r in rows] == ["face", "broken", "again"]
    assert "error" in rows[1] and "no_such_backbone" in rows[1]["error"]
    assert rows[0]["step_ms"] > 0 and rows[2]["step_ms"] > 0
    assert json.loads(out.read_text())["rows"] == rows

    calls = []
    real = gpu.measure

    def interrupted(name, *a, **kw):  # the run is killed while the second network runs
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(name, *a, **kw)

    monkeypatch.setattr(gpu, "measure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        gpu.measure_all(["face", "again"], ["fp32"], steps=1, warmup=0, size=2, json_path=out, device="cpu",
                        networks=networks)
    assert [r["network"] for r in json.loads(out.read_text())["rows"]] == ["face"]
