"""Backbone registry: name -> constructor(pretrained=..., num_outputs=...) -> Backbone."""

from __future__ import annotations

from typing import Callable

from ..registry import Registry
from .base import Backbone

BACKBONES: Registry[Callable[..., Backbone]] = Registry("backbone")
register = BACKBONES.register
