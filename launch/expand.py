"""Spec -> trials: a pure function. Each trial's id is a hash of its fully resolved config.

A grid is a list of blocks; each block is the cartesian product of its axes (a
list of values; ``layers`` takes a list of layer lists). Axes are model fields,
``seed``, and ``train.<field>`` / ``data.<field>`` overrides. The trials of all blocks
are unioned (duplicates collapse to one trial), and every trial runs once per
seed in ``seeds`` unless the block has its own ``seed`` axis.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass

from prernn.config import ModelConfig, TrialConfig, resolve_model
from prernn.settings import ConfigError, Section, identity, parse
from prernn.tasks import TASKS

from .spec import SpecError, SweepSpec, grid_error


@dataclass(frozen=True)
class Trial:
    id: str
    config: TrialConfig

    @property
    def label(self) -> str:
        m = self.config.model
        if m.model in ("constant", "probe", "per-frame"):
            return {"constant": "constant", "probe": "linear probe", "per-frame": "per-frame CNN"}[m.model]
        if m.model == "traditional":
            size = f"matched={m.hidden_dim}" if m.matched else str(m.hidden_dim)
            return f"{m.cell} traditional h={size} x{m.num_layers}"
        extra = f" +{m.extra_layers} random" if m.extra_layers else ""
        init = "" if m.input_init == "pretrained" else f" {m.input_init}-init"
        return f"{m.cell} prernn-{m.variant} {'/'.join(m.layers)}{extra}{init}"


def _by_value(data):
    """Numbers hash by value: an integral float is written as the int it equals."""
    if isinstance(data, dict):
        return {k: _by_value(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_by_value(v) for v in data]
    if isinstance(data, float) and data.is_integer():
        return int(data)
    return data


def trial_id(config: TrialConfig | dict) -> str:
    """The content address of a resolved config: a hash of every field that differs from
    what trials implicitly had before it existed (``prernn.settings.identity``)."""
    view = identity(config) if isinstance(config, Section) else identity(TrialConfig, config)
    blob = json.dumps(_by_value(view), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _is_axis(key: str, value) -> bool:
    if not isinstance(value, list):
        return False
    if key == "layers":  # [fc6, fc7] is one value; [[fc6], [fc7]] is an axis
        return all(isinstance(v, list) for v in value)
    return True


def expand(spec: SweepSpec, spec_path: str = "spec") -> list[Trial]:
    """Every trial of the spec, in grid order; raises SpecError listing every bad grid point."""
    num_outputs = TASKS[spec.task].num_outputs
    problems, trials, seen = [], [], set()
    for i, block in enumerate(spec.grid):
        axes = {k: (v if _is_axis(k, v) else [v]) for k, v in block.items()}
        for combo in itertools.product(*axes.values()):
            values = dict(zip(axes, combo))
            seeds = [values.pop("seed")] if "seed" in values else spec.seeds
            sections = {"train": spec.train, "data": spec.data}
            try:
                for name, section in sections.items():  # train.* / data.* axes override the spec's section
                    update = {k.split(".", 1)[1]: values.pop(k) for k in list(values) if k.startswith(f"{name}.")}
                    if update:
                        sections[name] = parse(type(section), {**section.to_dict(), **update}, (name,))
                model = resolve_model(parse(ModelConfig, values), spec.backbone.name, num_outputs)
                for seed in seeds:
                    config = TrialConfig(task=spec.task, data=sections["data"], backbone=spec.backbone, model=model,
                                         train=sections["train"], seed=seed)
                    tid = trial_id(config)
                    if tid not in seen:
                        seen.add(tid)
                        trials.append(Trial(tid, config))
            except ConfigError as e:
                problems.append(grid_error(spec_path, i, dict(zip(axes, combo)), e))
    if problems:
        raise SpecError(sorted(set(problems), key=problems.index))
    return trials
