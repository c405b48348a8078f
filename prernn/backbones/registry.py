"""Backbone registry: name -> constructor(pretrained=..., num_outputs=...) -> Backbone."""

from __future__ import annotations

from typing import Callable

from ..registry import Registry
from .base import Backbone

BACKBONES: Registry[Callable[..., Backbone]] = Registry("backbone")
register = BACKBONES.register
# name -> file names of its published weights, looked up locally for pretrained=True
DEFAULT_FILES: dict[str, tuple[str, ...]] = {}
