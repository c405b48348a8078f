"""Spec -> trials: a pure function. Each trial's id is a hash of its fully resolved config.

A grid is a list of blocks; each block is the cartesian product of its axes (a
list of values; ``layers`` takes a list of layer lists). Axes are model fields,
``seed``, and ``train.<field>`` / ``data.<field>`` overrides. The trials of all blocks
are unioned (duplicates collapse to one trial), and every trial runs once per
seed in ``seeds`` unless the block has its own ``seed`` axis.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from prernn.config import ModelConfig, TrialConfig, resolve_model
from prernn.settings import ConfigError, parse
from prernn.tasks import TASKS
from records.ids import arm_id, trial_id
from records.store import flatten

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
    problems += claim_problems(spec, trials, spec_path)
    if problems:
        raise SpecError(sorted(set(problems), key=problems.index))
    return trials


def claim_problems(spec: SweepSpec, trials: list[Trial], spec_path: str = "spec") -> list[str]:
    """A claim compares one configuration (an arm: one config, its seeds) with another: each of
    its selectors must pick the trials of exactly one configuration of the sweep."""
    flat = [(arm_id(t.config), flatten(t.config)) for t in trials]
    problems = []
    for i, claim in enumerate(spec.claims):
        for side in ("better", "worse"):
            selector = claim.columns(side)
            picked = {a: f for a, f in flat if all(f.get(k) == v for k, v in selector.items())}
            if len(picked) == 1:
                continue
            where = f"{spec_path}: claims.{i}.{side} {getattr(claim, side)}"
            if not picked:
                problems.append(f"{where}: picks no trial of the sweep")
                continue
            configs = list(picked.values())
            differ = sorted(k for k in configs[0] if k != "seed" and len({str(c.get(k)) for c in configs}) > 1)
            problems.append(f"{where}: picks {len(picked)} configurations, which differ in {', '.join(differ)}; a "
                            "claim compares one configuration with another: add those fields to the selector")
    return problems
