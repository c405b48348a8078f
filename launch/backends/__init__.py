"""Backends run a sweep's pending trials; local, ray and slurm are siblings behind ``Backend``."""

from __future__ import annotations

from prernn.registry import Registry

from .base import Backend, Job

BACKENDS: Registry[type[Backend]] = Registry("backend")


def _register() -> None:
    from .local import LocalBackend
    from .slurm import SlurmBackend

    BACKENDS.register("local")(LocalBackend)
    BACKENDS.register("slurm")(SlurmBackend)


_register()
__all__ = ["BACKENDS", "Backend", "Job"]
