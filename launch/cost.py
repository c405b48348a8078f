"""What a trial will cost, computed without running it (for --dry-run).

Parameters are counted on the meta device (no weights allocated); training FLOPs
by torch's FlopCounterMode there too (forward of one sequence, x3 for forward +
backward, x sequences x epochs, plus evaluation), summed over a task's streams;
memory is weights + gradients + SGD momentum in fp32 (activations excluded).
"""

from __future__ import annotations

import functools
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from prernn.tasks import TASKS
from prernn.trial import build_network


@functools.lru_cache(maxsize=256)
def _stream_cost(model_json: str, backbone: str, task: str, data_json: str, stream: str) -> tuple[int, int]:
    """(parameters, forward FLOPs of one sequence) of one stream's network."""
    data = json.loads(data_json)
    cfg = {"task": task, "backbone": {"name": backbone}, "model": json.loads(model_json), "data": data}
    with torch.device("meta"):
        net = build_network(cfg, stream=stream)
    shape = (*net.backbone.frame_shape[:-2], data["size"], data["size"])
    x = torch.empty(1, data["frames"], *shape, device="meta")
    with FlopCounterMode(display=False) as counter:
        net(x)
    return sum(p.numel() for p in net.parameters()), counter.get_total_flops()


def estimate(config: dict) -> dict:
    m, d, t = config["model"], config["data"], config["train"]
    data = {k: d[k] for k in ("frames", "size", "flow_stack", "clip_frames")}
    params = flops = 0
    for stream in TASKS[config["task"]].streams:
        n, fwd = _stream_cost(json.dumps(m, sort_keys=True), config["backbone"]["name"], config["task"],
                              json.dumps(data, sort_keys=True), stream)
        epochs = t["temporal_epochs"] if stream == "temporal" and t.get("temporal_epochs") else t["epochs"]
        params += n
        if flops is not None and None not in (d["train_videos"], d["test_videos"]):
            flops += epochs * fwd * (3 * d["train_videos"] + d["test_videos"])
        else:
            flops = None  # "every video": unknown until the dataset is read
    return {"parameters": params, "train_tflop": None if flops is None else flops / 1e12,
            "memory_gb": params * 4 * 3 / 2**30}
