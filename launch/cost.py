"""What a trial will cost, computed without running it (for --dry-run).

Parameters are counted on the meta device (no weights allocated); training FLOPs
by torch's FlopCounterMode there too (forward of one sequence, x3 for forward +
backward, x sequences x epochs, plus evaluation), summed over a task's streams;
memory is weights + gradients + SGD momentum in fp32 (activations excluded). Disk is
what a trial leaves in the store's run directory: while it trains, its checkpoint
(weights and momentum, 8 bytes a parameter) twice over as it is rewritten atomically,
plus the weights ``train.keep: best`` keeps (4 bytes a parameter); once it has ended,
only the kept weights (none, last or best: 0 or 4 bytes a parameter).
"""

from __future__ import annotations

import functools
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from prernn.config import TrialConfig
from prernn.trial import build_network


@functools.lru_cache(maxsize=256)
def _stream_cost(config_json: str, stream: str) -> tuple[int, int]:
    """(parameters, forward FLOPs of one sequence) of one stream's network."""
    config = TrialConfig.from_dict(json.loads(config_json))
    with torch.device("meta"):
        net = build_network(config, stream=stream)
    backbone = getattr(net, "backbone", net)  # a probe's network is the frozen backbone itself
    shape = (*backbone.frame_shape[:-2], config.data.size, config.data.size)
    x = torch.empty(1, config.data.frames, *shape, device="meta")
    with FlopCounterMode(display=False) as counter:
        if config.model.model == "probe":
            backbone.features(x.flatten(0, 1))
        elif config.model.model != "constant":
            net(x)
    if config.model.model in ("constant", "probe"):  # a read-out fitted in closed form, no SGD
        return (backbone.feature_dim + 1) * backbone.num_outputs * (config.model.model == "probe"), \
            counter.get_total_flops()
    return sum(p.numel() for p in net.parameters()), counter.get_total_flops()


def estimate(config: TrialConfig) -> dict:
    d = config.data
    # the cost depends on the model and the data's shapes, not on seeds or recipes: share it
    key = config.replace(seed=0, train=config.train.replace(epochs=1, temporal_epochs=None))
    params = flops = 0
    for stream in config.streams:
        n, fwd = _stream_cost(json.dumps(key.to_dict(), sort_keys=True), stream)
        params += n
        passes = 1 if config.model.model in ("constant", "probe") else config.epochs(stream)  # 1: features once
        if flops is not None and None not in (d.train_videos, d.test_videos):
            flops += passes * fwd * (3 * d.train_videos + d.test_videos)
        else:
            flops = None  # "every video": unknown until the dataset is read
    kept = 0 if config.train.keep == "none" else params * 4
    return {"parameters": params, "train_tflop": None if flops is None else flops / 1e12,
            "memory_gb": params * 4 * 3 / 2**30,
            "disk_peak_gb": (2 * params * 8 + (kept if config.train.keep == "best" else 0)) / 2**30,
            "disk_end_gb": kept / 2**30}


def disk(costs: list[dict], slots: int) -> tuple[float, float]:
    """A sweep's disk at its peak (every trial's kept weights, and the ``slots`` largest
    checkpoints training at once: an upper bound) and in the end, in GB."""
    end = sum(c["disk_end_gb"] for c in costs)
    training = sorted((c["disk_peak_gb"] - c["disk_end_gb"] for c in costs), reverse=True)
    return end + sum(training[:slots]), end
