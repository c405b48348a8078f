"""Backends run a sweep's pending trials; local, ray and slurm are siblings behind ``Backend``.

The registry maps a name to a loader, so a heavy backend (Ray) is imported only when used.
"""

from __future__ import annotations

import importlib
from typing import Callable

from prernn.registry import Registry

from .base import Backend, Job

BACKENDS: Registry[Callable[[], type[Backend]]] = Registry("backend")

for _name, _target in {"local": "local:LocalBackend", "ray": "ray_tune:RayBackend",
                       "slurm": "slurm:SlurmBackend"}.items():
    _module, _cls = _target.split(":")
    BACKENDS.register(_name)(
        lambda m=_module, c=_cls: getattr(importlib.import_module(f"{__name__}.{m}"), c))

__all__ = ["BACKENDS", "Backend", "Job"]
