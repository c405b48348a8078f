"""What a trial will cost, computed without running it (for --dry-run).

Parameters are counted analytically (prernn.count_parameters); training FLOPs are
counted by torch's FlopCounterMode on the meta device (forward of one sequence,
x3 for forward + backward, x sequences x epochs, plus evaluation); memory is
weights + gradients + SGD momentum in fp32 (activations excluded).
"""

from __future__ import annotations

import functools

import torch
from torch.utils.flop_counter import FlopCounterMode

import prernn
from prernn.tasks import TASKS
from prernn.trial import build_network


def frame_shape(config: dict) -> tuple[int, ...]:
    b = prernn.backbones.create(config["backbone"]["name"], device="meta")
    size = config["data"]["size"]
    return (*b.frame_shape[:-2], size, size)


@functools.lru_cache(maxsize=256)
def _forward_flops(model_json: str, backbone: str, task: str, frames: int, size: int) -> int:
    import json

    cfg = {"task": task, "backbone": {"name": backbone}, "model": json.loads(model_json)}
    with torch.device("meta"):
        net = build_network(cfg)
    shape = frame_shape({"backbone": {"name": backbone}, "data": {"size": size}})
    x = torch.empty(1, frames, *shape, device="meta")
    with FlopCounterMode(display=False) as counter:
        net(x)
    return counter.get_total_flops()


def estimate(config: dict) -> dict:
    import json

    m, d, t = config["model"], config["data"], config["train"]
    b = config["backbone"]["name"]
    n_out = TASKS[config["task"]].num_outputs
    if m["model"] == "traditional":
        params = prernn.count_traditional(b, m["cell"], m["hidden_dim"], m["num_layers"], num_outputs=n_out)
    else:
        params = prernn.count_prernn(b, m["cell"], m["variant"], m["layers"], m["extra_layers"], num_outputs=n_out)
    fwd = _forward_flops(json.dumps(m, sort_keys=True), b, config["task"], d["frames"], d["size"])
    flops = t["epochs"] * fwd * (3 * d["train_videos"] + d["test_videos"])
    return {"parameters": params, "train_tflop": flops / 1e12, "memory_gb": params * 4 * 3 / 2**30}
