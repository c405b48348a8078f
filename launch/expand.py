"""Spec -> trials: a pure function. Each trial's id is a hash of its fully resolved config.

A grid is a list of blocks; each block is the cartesian product of its axes (a
list of values; ``layers`` takes a list of layer lists). Axes are model fields,
``seed``, and ``train.<field>`` / ``data.<field>`` overrides. The trials of all blocks
are unioned (duplicates collapse to one trial), and every trial runs once per
seed in ``seeds`` unless the block has its own ``seed`` axis.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from dataclasses import dataclass

from pydantic import ValidationError

import prernn
from prernn import backbones
from prernn.convert import resolve_layers
from prernn.tasks import TASKS

from .spec import ModelConfig, SpecError, SweepSpec, grid_error


@dataclass(frozen=True)
class Trial:
    id: str
    config: dict  # task, data, backbone, model, train, seed: everything run_trial needs

    @property
    def label(self) -> str:
        m = self.config["model"]
        if m["model"] == "traditional":
            size = f"matched={m['hidden_dim']}" if m["matched"] else str(m["hidden_dim"])
            return f"{m['cell']} traditional h={size} x{m['num_layers']}"
        extra = f" +{m['extra_layers']} random" if m["extra_layers"] else ""
        init = "" if m["input_init"] == "pretrained" else f" {m['input_init']}-init"
        return f"{m['cell']} prernn-{m['variant']} {'/'.join(m['layers'])}{extra}{init}"


def trial_id(config: dict) -> str:
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _is_axis(key: str, value) -> bool:
    if not isinstance(value, list):
        return False
    if key == "layers":  # [fc6, fc7] is one value; [[fc6], [fc7]] is an axis
        return all(isinstance(v, list) for v in value)
    return True


@functools.lru_cache(maxsize=16)
def _meta_backbone(name: str, num_outputs: int) -> backbones.Backbone:
    return backbones.create(name, num_outputs=num_outputs, device="meta")


def resolve_model(model: ModelConfig, backbone: str, num_outputs: int) -> ModelConfig:
    """Fill what depends on the backbone: PreRNN layers, the matched hidden size."""
    b = _meta_backbone(backbone, num_outputs)
    if model.model == "prernn":
        return model.model_copy(update={"layers": list(resolve_layers(b, model.layers))})
    if model.hidden_dim == "matched":  # Table 1's "Similar": match the fc6/7 PreRNN of the same cell
        h = prernn.match_hidden_dim(b, cell=model.cell, num_layers=model.num_layers)
        return model.model_copy(update={"hidden_dim": h, "matched": True})
    return model


def expand(spec: SweepSpec, spec_path: str = "spec") -> list[Trial]:
    """Every trial of the spec, in grid order; raises SpecError listing every bad grid point."""
    num_outputs = TASKS[spec.task].num_outputs
    fixed = {"task": spec.task, "backbone": spec.backbone.model_dump()}
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
                        sections[name] = type(section).model_validate({**section.model_dump(), **update})
                model = resolve_model(ModelConfig.model_validate(values), spec.backbone.name, num_outputs)
            except (ValidationError, ValueError, KeyError) as e:
                problems.append(grid_error(spec_path, i, dict(zip(axes, combo)), e))
                continue
            for seed in seeds:
                if not isinstance(seed, int) or isinstance(seed, bool):
                    problems.append(f"{spec_path}: grid.{i}: seed must be an integer, got {seed!r}")
                    continue
                config = {**fixed, "data": sections["data"].model_dump(), "train": sections["train"].model_dump(),
                          "model": model.model_dump(), "seed": seed}
                tid = trial_id(config)
                if tid not in seen:
                    seen.add(tid)
                    trials.append(Trial(tid, config))
    if problems:
        raise SpecError(sorted(set(problems), key=problems.index))
    return trials
