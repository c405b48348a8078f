"""train.device and train.precision: autocast training on the CPU, checkpoints that resume
under another setting, GPUs a trial is given and must use, what the record says. Tests
that need CUDA are marked ``cuda``: without a CUDA device they are deselected (and the
run's summary says how many), never silently passed."""

import os

import pandas as pd
import pytest
import torch

from launch.backends.local import slot_gpus
from launch.expand import expand
from launch.backends import Job
from launch.runner import execute
from launch.spec import load_spec
from prernn.trial import run_trial

from .conftest import TOY, sweep

CUDA = pytest.mark.cuda  # deselected without a CUDA device (conftest.py)
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="about a machine without CUDA")

# a PreRNN face trial on the mini VGG: conv stem, fc recurrence (the C++ loop), dropout
FACE = dict(TOY, task="face", data={"source": "synthetic_face", "train_videos": 6, "test_videos": 3, "frames": 3,
                                    "size": 32},
            backbone={"name": "mini_vgg", "pretrained": "none"},
            grid=[{"model": "prernn", "cell": "lstm"}])


def face(write_spec, name="spec.yaml", **train):
    spec = dict(FACE, train=dict(FACE["train"], epochs=4, **train))
    return expand(load_spec(write_spec(spec, filename=name)))[0].config


def quiet(msg):
    pass


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_training_runs_on_the_cpu(write_spec, tmp_path, precision):
    fp32 = run_trial(face(write_spec), tmp_path / "fp32", log=quiet)
    low = run_trial(face(write_spec, f"{precision}.yaml", precision=precision), tmp_path / precision, log=quiet)
    assert low["device"] == "cpu" and len(low["history"]) == 4
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in low["history"])
    assert low["history"][0]["train_loss"] != fp32["history"][0]["train_loss"]  # autocast did act
    assert abs(low["metrics"]["test_loss"] - fp32["metrics"]["test_loss"]) < 0.2 * fp32["metrics"]["test_loss"]
    state = torch.load(tmp_path / precision / "checkpoint.pt", weights_only=True)
    scaler = state["streams"]["spatial"]["scaler"]
    assert bool(scaler) == (precision == "fp16")  # fp16 checkpoints its loss scale


def test_a_checkpoint_resumes_under_another_device_and_precision(write_spec, tmp_path):
    """Written with train.device: cpu in fp32, resumed with device auto in bf16: the finished
    epochs are kept, the rest trains on."""
    first = face(write_spec, "a.yaml", device="cpu")
    done = run_trial(first.replace(train=first.train.replace(epochs=2)), tmp_path, log=quiet)
    messages = []
    resumed = run_trial(face(write_spec, "b.yaml", precision="bf16"), tmp_path, log=messages.append)
    assert resumed["history"][:2] == done["history"] and len(resumed["history"]) == 4
    assert any(m.startswith("resuming after epoch 2 on cpu") for m in messages)


@pytest.mark.bad_input
def test_a_trial_given_a_gpu_it_cannot_see_refuses_to_start(write_spec, tmp_path):
    """resources.gpus was given (as a scheduler would), but no CUDA device is visible: the
    trial is recorded failed with the reason, not trained on the CPU."""
    t = expand(load_spec(write_spec(FACE)))[0]
    meta = {"sweep": "face", "profile": "mini", "gpus": 1}
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    assert execute(Job(t.id, t.config.to_dict(), str(tmp_path / "r"), meta)) == "failed"
    row = pd.read_parquet(tmp_path / "r" / "trials").iloc[0]
    assert "resources.gpus is 1, but this trial sees no CUDA device" in row.error and row.epochs_done == 0
    assert not (tmp_path / "r" / "runs" / t.id / "checkpoint.pt").exists()


@NO_CUDA
@pytest.mark.bad_input
@pytest.mark.parametrize("sets,expected", [
    (["train.device=cuda"], r"train\.device: cuda, but this machine has 0 CUDA device"),
    (["train.device=cuda"], r"train\.device: cuda, but resources\.gpus is 0"),
    (["resources.gpus=1"], r"resources\.gpus: 1, but this machine has 0 CUDA device"),
    (["resources.gpus=1", "train.device=cpu"], r"train\.device: cpu, but resources\.gpus is 1"),
])
def test_a_gpu_that_cannot_be_had_or_would_sit_idle_is_bad_input(write_spec, tmp_path, sets, expected):
    import re

    results = tmp_path / "r"
    args = [a for s in sets for a in ("--set", s)]
    out = sweep(write_spec(FACE), "--results-dir", results, *args)
    assert out.returncode == 2 and re.search(expected, out.stderr), out.stderr
    assert not results.exists()
    dry = sweep(write_spec(FACE), "--results-dir", results, "--dry-run", *args)  # planning still works
    assert dry.returncode == 0 and "a real run would stop here" in dry.stderr


def test_the_record_carries_device_and_precision(write_spec, tmp_path):
    out = sweep(write_spec(dict(FACE, train=dict(FACE["train"], precision="bf16"))), "--results-dir", tmp_path / "r")
    assert out.returncode == 0, out.stdout + out.stderr
    row = pd.read_parquet(tmp_path / "r" / "trials").iloc[0]
    assert (row.device, row["train.precision"], row["train.device"]) == ("cpu", "bf16", "auto")
    assert pd.isna(row.gpu)


@pytest.mark.parametrize("slot,per_trial,visible,expected", [
    (0, 0, None, ""), (3, 0, "0,1", ""),                      # no GPU asked for: none visible
    (0, 1, None, "0"), (1, 1, None, "1"), (1, 2, None, "2,3"),
    (0, 0.5, None, "0"), (1, 0.5, None, "0"), (2, 0.5, None, "1"),  # two trials share a GPU
    (1, 1, "4,6", "6"),                                      # within what the launcher may use
])
def test_local_worker_slots_see_their_own_gpus(monkeypatch, slot, per_trial, visible, expected):
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert slot_gpus(slot, per_trial) == expected


def test_slurm_jobs_without_gpus_see_none():
    from launch.backends.slurm import SlurmOptions, sbatch_parameters
    from launch.spec import Resources

    assert "export CUDA_VISIBLE_DEVICES=" in sbatch_parameters(Resources(gpus=0), SlurmOptions(), "x")["setup"]
    assert "export CUDA_VISIBLE_DEVICES=" not in sbatch_parameters(Resources(gpus=1), SlurmOptions(), "x")["setup"]


@CUDA
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_a_trial_trains_on_the_gpu_and_resumes_on_the_cpu(write_spec, tmp_path, precision):
    cfg = face(write_spec, precision=precision, device="cuda")
    half = run_trial(cfg.replace(train=cfg.train.replace(epochs=2)), tmp_path, log=quiet)
    assert half["device"].startswith("cuda") and half["gpu"] == torch.cuda.get_device_name(0)
    resumed = run_trial(cfg.replace(train=cfg.train.replace(device="cpu")), tmp_path, log=quiet)
    assert resumed["device"] == "cpu" and resumed["history"][:2] == half["history"]


@CUDA
def test_auto_uses_the_visible_gpu_and_channels_last(write_spec, tmp_path):
    from prernn.train.device import Placement

    place = Placement.of("auto", "bf16")
    assert place.cuda
    x = place.batch(torch.zeros(2, 3, 3, 8, 8, dtype=torch.uint8))
    assert x.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    result = run_trial(face(write_spec), tmp_path, log=quiet)
    assert result["device"].startswith("cuda")


# -- CUDA branches taken on the CPU (issue 26): the layout calls work on CPU tensors ------------------------


@pytest.mark.parametrize("name", sorted(__import__("prernn").backbones.BACKBONES.names()))
def test_every_conv_weight_goes_channels_last_module_by_module(name):
    """Every registered backbone, mini and paper: 2-D kernels channels_last, 3-D ones
    channels_last_3d, every value unchanged."""
    from torch import nn

    from prernn import backbones
    from prernn.train.device import to_channels_last

    net = backbones.create(name, pretrained=False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    convs = [m for m in to_channels_last(net).modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    assert convs
    for m in convs:
        layout = torch.channels_last_3d if isinstance(m, nn.Conv3d) else torch.channels_last
        assert m.weight.is_contiguous(memory_format=layout), (name, m)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_the_whole_network_conversion_that_crashed_every_c3d_trial_on_cuda_still_would():
    """What Placement.prepare did before: one call on the whole network, which raises on the
    first 5-D weight - on the CPU too, so this CPU test guards the CUDA path."""
    from prernn import backbones

    with pytest.raises(RuntimeError, match="required rank 4 tensor to use channels_last format"):
        backbones.create("mini_c3d", pretrained=False).to(memory_format=torch.channels_last)


@pytest.mark.parametrize("backbone", ["mini_c3d", "mini_vgg"])
def test_prepare_and_batch_take_their_cuda_branch_on_the_cpu_and_change_no_number(monkeypatch, backbone):
    """Placement.prepare and Placement.batch forced down their CUDA branch (cuda -> True) on
    CPU tensors: the network and the batch come out channels-last, the outputs as before."""
    from prernn import backbones
    from prernn.train.device import Placement

    torch.manual_seed(0)
    net = backbones.create(backbone, pretrained=False).eval()
    x = torch.randint(0, 255, (2, 3, *net.frame_shape), dtype=torch.uint8)  # (B, T, C[, L], H, W)
    flat = lambda b: b.flatten(0, 1).float() / 255  # noqa: E731 (B, T, ...) -> the stem's input
    with torch.no_grad():
        expected = net.stem(flat(x))
    place = Placement(torch.device("cpu"))
    monkeypatch.setattr(Placement, "cuda", property(lambda self: True))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)  # restored after
    prepared, batch = place.prepare(net), place.batch(x)
    layout = torch.channels_last_3d if x.dim() == 6 else torch.channels_last
    assert flat(batch).is_contiguous(memory_format=layout) and torch.equal(batch, x)
    with torch.no_grad():
        assert torch.allclose(prepared.stem(flat(batch)), expected, atol=1e-5)


@pytest.mark.parametrize("tf32,deterministic", [(True, False), (False, True)])
def test_tf32_and_determinism_are_set_on_the_cuda_branch_and_never_on_the_cpu(monkeypatch, tf32, deterministic):
    """Placement.prepare forced down its CUDA branch sets torch's process-wide switches from the
    trial's train.tf32 / train.deterministic; on the CPU it leaves them as they are."""
    from torch import nn

    from prernn.recurrent import loops
    from prernn.train.device import Placement

    switches = [(torch.backends.cuda.matmul, "fp32_precision"), (torch.backends.cudnn.conv, "fp32_precision"),
                (torch.backends.cudnn, "benchmark"), (torch.backends.cudnn, "deterministic"), (loops, "compile_on")]
    before = [getattr(obj, name) for obj, name in switches]
    try:
        place = Placement(torch.device("cpu"), "fp32", tf32, deterministic)
        place.prepare(nn.Linear(2, 2))
        assert [getattr(obj, name) for obj, name in switches] == before  # the CPU: untouched
        monkeypatch.setattr(Placement, "cuda", property(lambda self: True))
        place.prepare(nn.Linear(2, 2))
        expected = "tf32" if tf32 else "ieee"
        assert torch.backends.cuda.matmul.fp32_precision == torch.backends.cudnn.conv.fp32_precision == expected
        assert torch.backends.cudnn.benchmark is not deterministic
        assert torch.backends.cudnn.deterministic is deterministic
        assert loops.compile_on == {"cuda"}
        place = Placement(torch.device("cpu"), "fp32", tf32, deterministic, compile=False)
        place.prepare(nn.Linear(2, 2))
        assert loops.compile_on == set()  # train.compile: false
    finally:  # process-wide switches: leave them as found
        for (obj, name), value in zip(switches, before):
            setattr(obj, name, value)


def test_tf32_and_determinism_are_part_of_a_trials_identity_and_old_ids_stay(write_spec):
    """They change a GPU's numbers, so turning either from its default makes new trials; the
    defaults are what every earlier trial computed (TF32 does nothing on a CPU), so ids stay."""
    from records import trial_id

    (t,) = expand(load_spec(write_spec(dict(TOY, grid=[{"model": "prernn", "cell": "lstm"}]))))
    assert t.config.train.tf32 is True and t.config.train.deterministic is False
    ieee = t.config.replace(train=t.config.train.replace(tf32=False))
    fixed = t.config.replace(train=t.config.train.replace(deterministic=True))
    assert len({t.id, trial_id(ieee), trial_id(fixed)}) == 3
    assert "tf32" not in __import__("prernn.settings", fromlist=["identity"]).identity(t.config)["train"]


def test_unmarked_tests_run_on_the_cpu_even_on_a_gpu_node(tmp_path):
    """tests/conftest.py pins every test not marked ``cuda`` to the CPU, in this process and in
    the processes it starts, so the suite's CPU assertions hold on a GPU node."""
    import subprocess
    import sys

    assert os.environ["CUDA_VISIBLE_DEVICES"] == "" and not torch.cuda.is_available()
    from prernn.train.device import resolve_device

    assert resolve_device("auto").type == "cpu"
    child = subprocess.run([sys.executable, "-c", "import os; print(repr(os.environ['CUDA_VISIBLE_DEVICES']))"],
                           capture_output=True, text=True)
    assert child.stdout.strip() == "''"


def test_sgd_is_fused_on_the_gpu_and_unchanged_on_the_cpu(monkeypatch):
    """make_optimizer's CUDA branch taken on the CPU (parameters that say they are on CUDA;
    torch's fused SGD also runs on the CPU), and its CPU branch as before."""
    from prernn.train.recipes import make_optimizer

    net = torch.nn.Linear(3, 2)
    assert not make_optimizer(net, 0.1).defaults["fused"]
    monkeypatch.setattr(torch.nn.Parameter, "is_cuda", property(lambda self: True), raising=False)
    opt = make_optimizer(net, 0.1)
    assert opt.defaults["fused"] is True
    net(torch.ones(1, 3)).sum().backward()
    opt.step()  # it steps


@CUDA
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_on_the_gpu_the_compiled_loop_gives_the_cpus_numbers(cell, monkeypatch):
    """The CUDA path of a linear PreRNN layer (the loop through torch.compile) against the
    CPU's (the C++ loop), in IEEE fp32 and under bf16."""
    from torch import nn

    from prernn.recurrent import PreRNNLinear, loops

    monkeypatch.setattr(loops, "compile_on", {"cuda"})
    monkeypatch.setattr(torch.backends.cuda.matmul, "fp32_precision", "ieee")
    torch.manual_seed(0)
    layer = PreRNNLinear(nn.Linear(64, 32), cell, recurrent_init="orthogonal", activation="tanh")
    x = torch.randn(4, 6, 64)
    cpu = layer(x)
    cpu.sum().backward()
    cpu_grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    gpu = layer.cuda()(x.cuda())
    gpu.sum().backward()
    assert all(c.failed is None for c in loops._compiled.values()) and loops._compiled
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-5)
    for p, g in zip(layer.parameters(), cpu_grads, strict=True):
        torch.testing.assert_close(p.grad.cpu(), g, rtol=1e-3, atol=1e-4)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        low = layer(x.cuda())
    assert low.dtype == torch.float32
    torch.testing.assert_close(low.cpu(), cpu, rtol=0.05, atol=0.05)
