"""benchmarks/gpu.py runs on a node with torch and torchvision only, and its measurement
(networks, autocast steps, the recurrence timed alone) works; the CUDA clock and memory
figures are the only parts left for a GPU."""

import math
import re
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
    flop = {m[1]: float(m[2]) for m in re.finditer(r"  (\w+): [\d,]+ parameters, ([\d.]+) TFLOP a step", out.stdout)}
    assert set(flop) == {"vgg16", "c3d", "resnet50"}
    assert 10 < flop["vgg16"] < 14  # VGG16 convs: ~31 GFLOP a frame forward, x 3 with backward, x 128 frames


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
        assert row["flop_per_step"] > 0 and row["tflops"] > 0 and row["peak_tflops"] is None  # no GPU: no peak
        assert min(row["stem_ms"], row["input_gemms_ms"], row["optimizer_ms"]) > 0, row
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


def test_the_input_pipeline_is_read_from_ucf101s_format_by_workers():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu

    got = gpu.input_rate(workers=1, epochs=1, batch=2, frames=2, flow_stack=2, size=32, source_frames=12)
    assert got["workers"] == 1 and got["videos"] == 4
    assert got["frames_per_s"]["spatial"] > 0 and got["frames_per_s"]["temporal"] > 0
    assert got["jpegs_per_frame"] == {"spatial": 1, "temporal": 4}


def test_each_network_is_released_before_the_next_is_built(monkeypatch):
    """measure_all leaves no network alive between two measurements, the one that raised
    midway (its traceback printed) included: on a GPU its memory goes back before the next."""
    import gc
    import weakref

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu

    built = []
    real = gpu.build_network

    def tracked(*a, **kw):
        net = real(*a, **kw)
        if next(net.parameters()).is_meta:  # the FLOP count's: no memory
            return net
        built.append(weakref.ref(net))
        alive.append(sum(r() is not None for r in built[:-1]))  # earlier networks still alive when this one is built
        return net

    alive: list[int] = []
    monkeypatch.setattr(gpu, "build_network", tracked)
    face = dict(task="face", backbone="mini_vgg", cell="lstm",
                data=dict(source="synthetic_face", frames=2, size=32, train_videos=2, test_videos=2))
    networks = {"face": face, "raises": dict(face, cell="lstm"), "again": face}
    calls = []
    real_measure = gpu.measure

    def measure(name, *a, **kw):
        calls.append(name)
        if name == "raises":
            real_step = gpu.mean_ms
            monkeypatch.setattr(gpu, "mean_ms", lambda *x: (_ for _ in ()).throw(RuntimeError("midway")))
            try:
                return real_measure(name, *a, **kw)
            finally:
                monkeypatch.setattr(gpu, "mean_ms", real_step)
        return real_measure(name, *a, **kw)

    monkeypatch.setattr(gpu, "measure", measure)
    rows = gpu.measure_all(list(networks), ["fp32"], steps=1, warmup=0, size=2, device="cpu", networks=networks)
    assert "midway" in rows[1]["error"] and len(built) == 3
    assert alive == [0, 0, 0]
    gc.collect()
    assert all(r() is None for r in built)
