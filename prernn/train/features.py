"""A frozen backbone's conv features, computed once per dataset and shared by every trial (ours).

With ``train.freeze_backbone`` the conv part (the backbone's ``stem``) is not trained,
so its output on a split depends only on its weights and the data: it is computed
once, stored under ``$PRERNN_CACHE/features/`` keyed by a digest of the stem's
weights and the data config, and every trial of a sweep with the same pre-trained
weights and data reads it (file lock: concurrent trials compute it once). The
trial's network then runs from fc6 on. Augmented data change every epoch and are
not cached (the frozen stem runs on the fly).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from typing import Callable

import torch
from torch import nn

from ..data import Split, code_digest, to_input
from ..data.loader import Batches
from .device import Placement
from .loop import CPU
from .pretrain import cache_dir


class Frozen(nn.Module):
    """A module kept in eval mode (batch-norm statistics fixed) and out of autograd."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "Frozen":
        return super().train(False)

    def forward(self, x):
        with torch.no_grad():
            return self.module(x)


@torch.no_grad()
def stem_features(stem: nn.Module, data: Split, channels: int, batch_size: int = 16,
                  place: Placement = CPU, workers: int = 0) -> torch.Tensor:
    """(N, T, *feature shape) float32 on the CPU: the stem (already on ``place``) on every
    frame of every sequence, in fp32; real videos read by ``workers`` processes."""
    stem.eval()
    out = []
    for frames, _ in Batches(data, batch_size, workers, place.cuda).epoch():
        x = to_input(place.batch(frames), channels)
        out.append(stem(x.flatten(0, 1)).unflatten(0, x.shape[:2]).float().cpu())
    return torch.cat(out)


def weights_digest(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def cached_features(stem: nn.Module, load: Callable[[], Split], channels: int, key: dict, log=print,
                    place: Placement = CPU, workers: int = 0) -> Split:
    """The split ``load()`` would give with its frames replaced by the stem's features: from the
    cache (the data are then not read at all) or computed once on ``place`` and stored with the
    targets. The device type is part of the key: a GPU rounds differently from the CPU."""
    blob = json.dumps({**key, "stem": weights_digest(stem), "code": code_digest(),
                       **({"device": "cuda"} if place.cuda else {})}, sort_keys=True)
    path = cache_dir() / "features" / f"{hashlib.sha256(blob.encode()).hexdigest()[:20]}.pt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one process computes; the others read it afterwards
            if not path.is_file():
                log(f"computing frozen-backbone features once ({path.name})")
                data = load()
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                torch.save({"features": stem_features(stem, data, channels, place=place, workers=workers),
                            "targets": data.targets},
                           tmp)
                os.replace(tmp, path)
    saved = torch.load(path, weights_only=True)
    return Split(saved["features"], saved["targets"])  # never augmented: no mirror needed
