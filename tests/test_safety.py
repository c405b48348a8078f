"""Safety: YAML is safe-loaded, checkpoints and caches load with weights_only=True
(a crafted pickle is refused, its payload never runs), no pickle of files a user
could be handed, and a local sweep listens on no network port at all."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from launch.backends import Job
from launch.runner import execute

from .conftest import ROOT, SWEEP, TOY, process_tree, sweep

SOURCES = [p for d in ("prernn", "records", "launch", "analysis", "cli", "benchmarks", "scripts") for p in (ROOT / d).rglob("*.py")]


def test_sources_never_load_unsafely():
    for path in SOURCES:
        text = path.read_text()
        assert not re.search(r"yaml\.(load|unsafe_load|full_load)\(|yaml\.(Unsafe|Full)?Loader\b", text), path
        assert not re.search(r"^\s*import (c?pickle|dill|cloudpickle)\b|pickle\.loads?\(", text, re.M), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, f"{path}: {call}"
    ray = (ROOT / "launch/backends/ray_tasks.py").read_text()
    assert "include_dashboard=False" in ray


class Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.bad_input
def test_a_crafted_checkpoint_is_refused_and_its_payload_never_runs(tmp_path):
    from launch.expand import expand
    from launch.spec import SweepSpec
    from prernn.settings import parse

    trial = expand(parse(SweepSpec, dict(TOY, profile="mini")))[0]
    marker = tmp_path / "pwned"
    run_dir = tmp_path / "r" / "runs" / trial.id
    run_dir.mkdir(parents=True)
    torch.save({"streams": Payload(marker), "history": []}, run_dir / "checkpoint.pt")
    status = execute(Job(trial.id, trial.config.to_dict(), str(tmp_path / "r"), {"sweep": "toy", "profile": "mini"}))
    assert status == "failed" and not marker.exists()
    assert "Weights only load failed" in (run_dir / "log.txt").read_text()


@pytest.mark.bad_input
def test_a_yaml_spec_cannot_run_code(write_spec, tmp_path):
    marker = tmp_path / "pwned"
    spec = write_spec(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    out = sweep(spec, "--results-dir", tmp_path / "r")
    assert out.returncode == 2 and "not valid YAML" in out.stderr and not marker.exists()
    assert not (tmp_path / "r").exists()


def listening(pids: set[int]) -> set[str]:
    """Listening TCP sockets (any address) owned by these processes."""
    inodes = {}
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes[int(target[8:-1])] = pid
        except OSError:
            pass
    out = set()
    for proto in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{proto}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and int(f[9]) in inodes:  # LISTEN
                out.add(f"{proto} {f[1]} pid {inodes[int(f[9])]}")
    return out


@pytest.mark.slow
def test_a_local_sweep_listens_on_no_port(write_spec, tmp_path):
    proc = subprocess.Popen([sys.executable, str(SWEEP), str(write_spec()), "--results-dir", str(tmp_path / "r")],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen, polls = set(), 0
    while proc.poll() is None:
        seen |= listening(process_tree(proc.pid))
        polls += 1
        time.sleep(0.2)
    assert proc.returncode == 0 and polls > 5
    assert not seen, f"listening sockets: {seen}"
