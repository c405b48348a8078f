"""The Ray backend on a real multi-node cluster: losing a node mid-sweep loses nothing."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from .conftest import ROOT, SWEEP, TOY, cancel_from_another_process_then_resume


def _node_ids(ray: str, address: str, env: dict) -> set[str]:
    out = subprocess.run([ray, "status", f"--address={address}"], capture_output=True, text=True, env=env).stdout
    return set(re.findall(r" 1 node_([0-9a-f]+)", out))


@pytest.mark.slow
def test_killing_a_node_mid_sweep_the_sweep_still_completes(ray_cluster, write_spec, tmp_path):
    ray = str(Path(sys.executable).parent / "ray")
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    before = _node_ids(ray, ray_cluster, env)
    node = subprocess.Popen([ray, "start", f"--address={ray_cluster}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                             "--disable-usage-stats", "--block"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _node_ids(ray, ray_cluster, env) - before:
            time.sleep(0.5)
        (extra,) = _node_ids(ray, ray_cluster, env) - before
        grid = [{"model": "traditional", "cell": ["vrnn", "gru", "lstm"], "hidden_dim": [4, 8]}]
        slow = dict(TOY, grid=grid, train=dict(TOY["train"], epochs=25), data=dict(TOY["data"], train_videos=48, size=32))
        spec, results = write_spec(slow), tmp_path / "r"
        launcher = subprocess.Popen([sys.executable, str(SWEEP), str(spec), "--results-dir", str(results),
                                     "--backend", "ray", "--ray-address", ray_cluster, "--max-failures", "3"],
                                    cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def running_on_extra_node() -> bool:
            logs = (results / "runs").glob("*/log.txt") if (results / "runs").is_dir() else []
            for log in logs:
                lines = log.read_text().splitlines()
                if lines and f"worker ray/{extra[:8]}/" in [l for l in lines if " start " in l][-1] \
                        and not lines[-1].endswith("completed"):
                    return True
            return False

        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not running_on_extra_node():
            time.sleep(0.2)
        assert running_on_extra_node(), "the extra node never ran a trial"
        os.killpg(os.getpgid(node.pid), signal.SIGKILL)  # the node dies with the trial it was running
        out, _ = launcher.communicate(timeout=600)
    finally:
        if node.poll() is None:
            os.killpg(os.getpgid(node.pid), signal.SIGKILL)
    assert launcher.returncode == 0, out
    df = pd.read_parquet(results / "trials")
    assert len(df) == 6 and (df.status == "completed").all() and (df.epochs_done == 25).all()
    assert not df.worker.str.contains(f"ray/{extra[:8]}/").all()
    restarted = [p.read_text() for p in (results / "runs").glob("*/log.txt") if p.read_text().count(" start ") > 1]
    assert restarted, "the interrupted trial ran again on another node"
    assert any(f"worker ray/{extra[:8]}/" in text for text in restarted)


@pytest.mark.slow
def test_cancel_of_a_ray_sweep_from_another_process_then_a_rerun_resumes(ray_cluster, write_spec, tmp_path):
    cancel_from_another_process_then_resume(write_spec, tmp_path, "--backend", "ray", "--ray-address", ray_cluster)
