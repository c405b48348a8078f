"""Backbone registry: ``create(name, pretrained=..., num_outputs=...)``.

Registered: vgg16, c3d, resnet50 (full size; pre-trained weights from local files,
see ``prernn.backbones.weights``) and mini_vgg, mini_c3d, mini_resnet (the same
topology and module names, sized for a CPU; their "pre-trained" weights come from
the sweep system's cached pre-training and are passed as a file path).
"""

from __future__ import annotations

import contextlib
import os

import torch

from . import c3d, resnet, vgg  # noqa: F401  (registers the backbones)
from .base import Backbone
from .registry import BACKBONES, DEFAULT_FILES
from .weights import WeightsNotFoundError, save_backbone

__all__ = ["BACKBONES", "DEFAULT_FILES", "Backbone", "WeightsNotFoundError", "create", "names", "save_backbone"]


def names() -> list[str]:
    return BACKBONES.names()


def create(name: str, pretrained: bool | str | os.PathLike = False, num_outputs: int | None = None,
           device: str | torch.device | None = None, **kwargs) -> Backbone:
    """Build a registered backbone.

    pretrained: False (random init), True (the default file, looked up locally), or a path.
    num_outputs: size of the new head (defaults to the backbone's task default).
    device: e.g. "meta" to get shapes and parameter counts without allocating weights.
    """
    make = BACKBONES[name]
    if num_outputs is not None:
        kwargs["num_outputs"] = num_outputs
    if device is not None and torch.device(device).type == "meta" and pretrained:
        raise ValueError("a backbone on the meta device has no values; use pretrained=False")
    with torch.device(device) if device is not None else contextlib.nullcontext():  # else: the caller's default
        return make(pretrained=pretrained, **kwargs)
