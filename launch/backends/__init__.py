"""Backends run a sweep's pending trials; local, ray and slurm are siblings behind ``Backend``.

Each declares its options (``Backend.Options``); ``options()`` is the union the command
line offers, and ``create`` builds the chosen backend from the spec and the options given,
refusing one the backend does not take. Importing a backend is cheap: Ray and submitit
are imported only when trials run.
"""

from __future__ import annotations

from prernn.registry import Registry
from prernn.settings import ConfigError, fields_of

from .base import Backend, BackendRefused, Events, Held, Job
from .local import LocalBackend
from .ray_tune import RayBackend
from .slurm import SlurmBackend

BACKENDS: Registry[type[Backend]] = Registry("backend")
for _cls in (LocalBackend, RayBackend, SlurmBackend):
    BACKENDS.register(_cls.name)(_cls)


def options() -> dict[str, tuple]:
    """Every backend option: field name -> (dataclasses.Field, annotation, names of the backends taking it)."""
    out: dict[str, tuple] = {}
    for name in BACKENDS:
        for f, ann in fields_of(BACKENDS[name].Options):
            out[f.name] = (f, ann, out.get(f.name, (None, None, ()))[2] + (name,))
    return out


class WrongBackendOption(ValueError):
    """Options given that the chosen backend does not take (each named with the backends that do)."""


def create(name: str, spec, given: dict) -> Backend:
    """The backend ``name`` built from the spec and the options given on the command line."""
    cls = BACKENDS[name]
    takes = {f.name for f, _ in fields_of(cls.Options)}
    table = options()
    wrong = [f"--{k.replace('_', '-')} is an option of the {' and '.join(table[k][2])} backend"
             f"{'s' if len(table[k][2]) > 1 else ''}, not of {name}" for k in given if k not in takes]
    if wrong:
        raise WrongBackendOption("; ".join(wrong))
    return cls.from_spec(spec, given)


def all_backends(spec) -> list[Backend]:
    """Every backend with its default options: ``status`` and ``cancel`` ask each what it holds."""
    return [BACKENDS[name].from_spec(spec, {}) for name in BACKENDS]


__all__ = ["BACKENDS", "Backend", "BackendRefused", "ConfigError", "Events", "Held", "Job", "WrongBackendOption", "all_backends",
           "create", "options"]
