"""Sweep specs: YAML -> one profile's merged view -> ``--set`` overrides -> a validated ``SweepSpec``.

A spec file holds shared fields at the top level and per-profile overrides under
``profiles.<name>``; the selected profile (``--profile``, else the file's
``profile``, else ``mini``) is deep-merged over the shared fields, then every
``--set dotted.key=value`` is applied, then the whole view is validated at once.
Each problem is reported with the place it came from (``profiles.mini.train.lr``,
``--set train.lr``), the bad value and the allowed values.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from prernn.config import (BackboneConfig, DataConfig, ModelConfig, PretrainConfig, TrainConfig,  # noqa: F401
                           task_problems)
from prernn.settings import ConfigError, Problem, Section, fields_of, parse, setting, unknown_key
from prernn.tasks import TASKS
from records import PAPER_TABLES


class SpecError(ValueError):
    """Bad input: every problem found, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True, kw_only=True)
class Resources(Section):
    cpus: int = setting(1, ge=1, doc="CPU cores per trial (torch threads)")
    gpus: float = setting(0, ge=0, doc="GPUs per trial (fractions share a GPU)")
    mem_gb: float = setting(4, gt=0)
    timeout_min: int = setting(60, ge=1)


@dataclass(frozen=True, kw_only=True)
class SlurmConfig(Section):
    """Where SLURM runs the trials (each key can also be given on the command line)."""

    partition: str | None = setting(None, doc="sbatch --partition")
    account: str | None = setting(None, doc="sbatch --account")
    qos: str | None = setting(None, doc="sbatch --qos")
    constraint: str | None = setting(None, doc="sbatch --constraint")
    gpus_per_node: int | None = setting(None, ge=0, doc="GPUs per job (default: resources.gpus, rounded up)")
    max_running: int = setting(64, ge=1, doc="trials running at once at most (an array's %N throttle; a search's slots)")
    max_array_size: int | None = setting(None, ge=1, doc="tasks per array at most (default: the cluster's MaxArraySize)")
    max_queued: int | None = setting(None, ge=1, doc="your jobs in the queue at once at most (default: your "
                                     "association's MaxSubmitJobs and the cluster's MaxJobCount)")


# grid axes: model fields (but the derived ``matched``), seed, and train.* / data.* overrides
AXES = (tuple(f.name for f, _ in fields_of(ModelConfig) if f.name != "matched") + ("seed",)
        + tuple(f"train.{f.name}" for f, _ in fields_of(TrainConfig))
        + tuple(f"data.{f.name}" for f, _ in fields_of(DataConfig)))


@dataclass(frozen=True, kw_only=True)
class ParamSpace(Section):
    """One searched parameter: ``choices``, or a range ``low``..``high`` (``log``, ``integer``)."""

    choices: list[Any] | None = setting(None, min_len=1)
    low: float | None = setting(None)
    high: float | None = setting(None)
    log: bool = setting(False)
    integer: bool = setting(False)

    def resolve(self):
        ranged = self.low is not None and self.high is not None
        if (self.choices is None) == (not ranged) or (self.choices is not None and (self.low or self.high)):
            return [Problem((), "give either choices: [...] or low: and high:", kind="model")]
        if ranged and not self.low < self.high:
            return [Problem((), f"low must be below high, got {self.low} >= {self.high}", kind="model")]
        if ranged and self.log and self.low <= 0:
            return [Problem((), "a log range needs low > 0", kind="model")]
        return None


@dataclass(frozen=True, kw_only=True)
class SearchConfig(Section):
    """An Optuna search instead of the full grid: ``space`` keys are grid axes
    (``cell``, ``hidden_dim``, ``train.lr``, ...) overriding the grid's first block."""

    n_trials: int = setting(ge=1)
    sampler: Literal["tpe", "random", "grid"] = setting("tpe")
    pruner: Literal["median", "successive_halving", "none"] = setting("median")
    seed: int = setting(0)
    space: dict[str, ParamSpace] = setting(min_len=1)

    def resolve(self):
        searchable = [a for a in AXES if a != "seed"]
        problems = [Problem(("space", k), unknown_key(k, searchable), k, "unknown")
                    for k in self.space if k not in searchable]
        ranges = [k for k, p in self.space.items() if p.choices is None]
        if self.sampler == "grid" and ranges:
            problems.append(Problem(("sampler",), "the grid sampler needs choices for every parameter; "
                                    f"ranges: {', '.join(ranges)}", kind="model"))
        return problems


@dataclass(frozen=True, kw_only=True)
class ClaimSpec(Section):
    """A directed comparison the sweep exists to decide: the trials matching ``better`` have a
    better metric than those matching ``worse`` (selectors: grid-axis values, e.g.
    ``{model: prernn, cell: lstm}``)."""

    name: str | None = setting(None, doc="what is claimed, in words")
    better: dict[str, Any] = setting(min_len=1)
    worse: dict[str, Any] = setting(min_len=1)
    margin: float | None = setting(None, gt=0, doc="practical margin, relative to the worse arm's mean: a claim "
                                   "whose interval lies within it is equivalent (declare it before the run)")

    def columns(self, side: str) -> dict:
        """The ``better`` or ``worse`` selector as store columns (model fields live under 'model.';
        lists are JSON text, as the store keeps them; ``hidden_dim: matched`` is the column
        ``model.matched``, since a matched size is resolved to a number per cell)."""
        out = {}
        for k, v in getattr(self, side).items():
            if k == "hidden_dim" and v == "matched":
                out["model.matched"] = True
                continue
            col = k if k == "seed" or "." in k else f"model.{k}"
            out[col] = json.dumps(v) if isinstance(v, list) else v
        return out

    def resolve(self):
        return [Problem((side, k), unknown_key(k, AXES), k, "unknown")
                for side in ("better", "worse") for k in getattr(self, side) if k not in AXES]


@dataclass(frozen=True, kw_only=True)
class SweepSpec(Section):
    """A sweep: the trials' shared sections, the grid of what varies, and where they run."""

    EXTRA_KEYS = ("profiles",)

    name: str = setting(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    task: str = setting(names=lambda: TASKS)
    profile: str = setting()
    data: DataConfig = setting()
    backbone: BackboneConfig = setting()
    train: TrainConfig = setting()
    grid: list[dict[str, Any]] = setting(min_len=1)
    description: str = setting("")
    reference: str | None = setting(None, names=lambda: PAPER_TABLES, doc="the paper table shown beside ours")
    seeds: list[int] = setting(factory=lambda: [0], min_len=1)
    resources: Resources = setting(factory=Resources)
    slurm: SlurmConfig = setting(factory=SlurmConfig)
    search: SearchConfig | None = setting(None)
    claims: list[ClaimSpec] = setting(factory=list, doc="comparisons to test (analysis.claims)")

    def resolve(self):
        # ``train: {lr: ...}`` in a block is the axis ``train.lr`` (so profiles and --set can
        # address it as grid.0.train.lr)
        self._set(grid=[_flat_block(b) for b in self.grid])
        problems = []
        for i, block in enumerate(self.grid):
            for key, value in block.items():
                if key not in AXES:
                    problems.append(Problem(("grid", i, key), unknown_key(key, AXES), key, "unknown"))
                elif isinstance(value, list) and not value:
                    problems.append(Problem(("grid", i, key), "an axis needs at least one value", kind="model"))
        return problems + task_problems(self.task, self.data, self.train)


def _flat_block(block: dict) -> dict:
    out = {}
    for key, value in block.items():
        if key in ("train", "data") and isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------- loading


def _merge(base: dict, over: dict, label: str, origins: dict, path: tuple = ()) -> dict:
    """Deep-merge ``over`` into a copy of ``base``; remember where each value came from."""
    out = dict(base)
    for k, v in over.items():
        p = path + (k,)
        origins[p] = label + ".".join(map(str, p))
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v, label, origins, p)
        else:
            out[k] = v
    return out


def parse_set(item: str) -> tuple[list[str], Any]:
    """'train.lr=0.1' -> (['train', 'lr'], 0.1); the value is read as YAML."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise SpecError([f"--set {item!r}: expected key=value with a dotted key, e.g. train.lr=0.01"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise SpecError([f"--set {item!r}: the value is not valid YAML ({e.problem})"]) from None
    return key.strip().split("."), value


def _index(key: str) -> str | int:
    return int(key) if key.isdigit() else key


def _apply_set(view: dict, keys: list[str], value: Any, item: str) -> None:
    node = view
    for i, k in enumerate(keys[:-1]):
        if isinstance(node, list):
            if not k.isdigit() or int(k) >= len(node):
                raise SpecError([f"{item}: {'.'.join(keys[:i + 1])} is not an index of a list of {len(node)}"])
            node = node[int(k)]
        else:
            node = node.setdefault(k, {})
            if not isinstance(node, (dict, list)):
                raise SpecError([f"{item}: {'.'.join(keys[:i + 1])} is a value, not a section"])
    last = keys[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise SpecError([f"{item}: {last!r} is not an index of a list of {len(node)}"])
        node[int(last)] = value
    else:
        node[last] = value


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SpecError([f"{path}: cannot read the spec ({e.strerror or e})"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise SpecError([f"{path}: not valid YAML{at}: {getattr(e, 'problem', e)}"]) from None
    if not isinstance(raw, dict):
        raise SpecError([f"{path}: a spec is a YAML mapping (name:, task:, ...), got {type(raw).__name__}"])
    return raw


def profiles_of(raw: dict) -> list[str]:
    return list(raw.get("profiles") or {}) or ["mini"]


def load_spec(path: str | Path, profile: str | None = None, overrides: list[str] = ()) -> SweepSpec:
    """Read, merge, override and validate; raise SpecError listing every problem."""
    path = Path(path)
    raw = read_yaml(path)
    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise SpecError([f"{path}: profiles: a mapping of profile name -> overrides"])
    chosen = profile or raw.get("profile") or "mini"
    if profiles and chosen not in profiles:
        src = "--profile" if profile else "profile"
        raise SpecError([f"{path}: {src}: unknown profile {chosen!r}; allowed: {', '.join(profiles)}"])
    origins: dict = {}
    shared = {k: v for k, v in raw.items() if k != "profiles"}
    view = _merge({}, shared, "", origins)
    over = copy.deepcopy(profiles.get(chosen, {}))
    dotted = {k: over.pop(k) for k in list(over) if isinstance(k, str) and "." in k}
    view = _merge(view, over, f"profiles.{chosen}.", origins)
    for key, value in dotted.items():  # profile keys may address into lists, like --set
        _apply_set(view, key.split("."), value, f"profiles.{chosen}.{key}")
        origins[tuple(_index(k) for k in key.split("."))] = f"profiles.{chosen}.{key}"
    for item in overrides:
        keys, value = parse_set(item)
        _apply_set(view, keys, value, f"--set {item}")
        origins[tuple(_index(k) for k in keys)] = f"--set {'.'.join(keys)}"
    view["profile"] = chosen
    try:
        return parse(SweepSpec, view)
    except ConfigError as e:
        raise SpecError([f"{path}: {_describe(p, origins)}" for p in e.problems]) from None


def _where(loc: tuple, origins: dict) -> str:
    for n in range(len(loc), 0, -1):
        if loc[:n] in origins:
            rest = ".".join(map(str, loc[n:]))
            return origins[loc[:n]] + (f".{rest}" if rest else "")
    return ".".join(map(str, loc)) or "(top level)"


def _describe(problem: Problem, origins: dict) -> str:
    """One problem, named by where its value came from (the spec, a profile, ``--set``)."""
    return f"{_where(problem.loc, origins)}: {problem.text}"


def grid_error(spec_path, block: int, combo: dict, err: Exception) -> str:
    if isinstance(err, ConfigError):
        msgs = "; ".join(f"{'.'.join(map(str, p.loc)) or 'model'}: {p.text}" for p in err.problems)
    else:
        msgs = str(err)
    shown = ", ".join(f"{k}={v}" for k, v in combo.items())
    return f"{spec_path}: grid.{block} ({shown}): {msgs}"
