#!/usr/bin/env python
"""How many test videos a mini profile needs to resolve an effect: measured spreads, written down.

    python benchmarks/test_size.py sweeps/table1.yaml [--models prernn:vrnn per-frame] [--seeds 0 1 2]
                                   [--held-out 20] [--effect 0.05]

Trains two models of the spec (``kind:cell``, e.g. ``prernn:vrnn``, ``traditional:lstm:128``,
``per-frame``) with several seeds on the training videos minus the last ``--held-out``
(never the test split: ``$PRERNN_NO_TEST_SPLIT`` is set), and on those held-out videos
measures:

  sd_video   the video-to-video standard deviation of the per-video difference between
             the two models (paired: the same videos), averaged over seeds
  sd_seed    the seed-to-seed standard deviation of that difference's mean

A comparison of the two over n seeds on N test videos has a 95% interval half-width of
about ``t(0.975, n-1) * sd_seed / sqrt(n)`` from training noise, and the test set adds a
sampling error of ``sd_video / sqrt(N)``. The script prints the N at which the sampling
error is a quarter of the effect to resolve (``--effect``, relative to the metric's level;
the paper's Table 1 effects are 30-50% of the loss, its Table 3 ones 0.4-0.9 points of
accuracy).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from prernn.trial import NO_TEST_SPLIT  # noqa: E402


def per_video(cfg, run_dir: Path) -> torch.Tensor:
    """Train ``cfg`` (evaluated on the held-out videos) and return its per-video primary metric there."""
    from prernn.tasks import TASKS
    from prernn.train.device import Placement
    from prernn.train.loop import predict
    from prernn.trial import attach_data, make_streams, run_trial, start_at_the_mean

    run_trial(cfg, run_dir, log=lambda m: None)
    task, place = TASKS[cfg.task], Placement.of("cpu", "fp32")
    streams = make_streams(cfg, place, log=lambda m: None)
    attach_data(cfg, streams, place, log=lambda m: None)
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    preds = {}
    for s in streams:
        if task.landmarks:
            start_at_the_mean(s.net, s.train.targets)
        s.load(state["streams"][s.name])
        preds[s.name] = predict(s.net, s.test, task, place)
    targets = streams[0].test.targets
    out = []
    for v in range(len(targets)):
        one = {k: p[v:v + 1] for k, p in preds.items()}
        out.append(task.metrics(one if len(one) > 1 else next(iter(one.values())), targets[v:v + 1])[task.primary])
    return torch.tensor(out)


def pick(trials, model: str):
    kind, *rest = model.split(":")
    for t in trials:
        m = t.config.model
        if m.model != kind:
            continue
        if rest and m.cell != rest[0]:
            continue
        if len(rest) > 1 and not (m.matched if rest[1] == "matched" else str(m.hidden_dim) == rest[1]):
            continue
        return t
    raise SystemExit(f"error: no trial of the spec matches {model!r}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec")
    p.add_argument("--models", nargs=2, default=["prernn:vrnn", "per-frame"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--held-out", type=int, default=20)
    p.add_argument("--effect", type=float, default=0.05, help="effect to resolve, relative to the metric's level")
    p.add_argument("--set", action="append", default=[])
    a = p.parse_args()
    os.environ[NO_TEST_SPLIT] = "1"
    torch.set_num_threads(2)
    from launch.expand import expand
    from launch.spec import load_spec

    spec = load_spec(a.spec, None, a.set)
    spec = spec.replace(seeds=a.seeds, data=spec.data.replace(validation=a.held_out, evaluate_on="validation"))
    trials = expand(spec)
    diffs, levels = [], []
    with tempfile.TemporaryDirectory() as d:
        for seed in a.seeds:
            seeded = [t for t in trials if t.config.seed == seed]
            x, y = (per_video(pick(seeded, m).config, Path(d) / f"{m}-{seed}") for m in a.models)
            diffs.append(x - y)
            levels.append(torch.cat([x, y]).mean().item())
            print(f"seed {seed}: {a.models[0]} {x.mean():.5f}, {a.models[1]} {y.mean():.5f}, "
                  f"per-video sd of the difference {(x - y).std():.5f}", flush=True)
    diffs = torch.stack(diffs)  # (seeds, videos)
    sd_video = diffs.std(1).mean().item()
    sd_seed = diffs.mean(1).std().item()
    level = sum(levels) / len(levels)
    effect = a.effect * level
    n_needed = math.ceil((4 * sd_video / effect) ** 2)
    from scipy import stats

    half = stats.t.ppf(0.975, len(a.seeds) - 1) * sd_seed / math.sqrt(len(a.seeds))
    print(f"\nmetric level {level:.5f}; effect to resolve {a.effect:.0%} of it = {effect:.5f}")
    print(f"sd_video {sd_video:.5f} (video to video, of the paired difference), sd_seed {sd_seed:.5f}")
    print(f"test videos for a sampling error of a quarter of the effect: N >= (4 sd_video / effect)^2 = {n_needed}")
    print(f"95% half-width from training noise over {len(a.seeds)} seeds: {half:.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
