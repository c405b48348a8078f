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
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

import prernn
from prernn import backbones
from prernn.data import SOURCES
from prernn.data.sources import GENERATED
from prernn.tasks import TASKS
from prernn.train.recipes import SCHEDULES


class SpecError(ValueError):
    """Bad input: every problem found, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def _registry_check(registry, value: str) -> str:
    registry[value]  # raises UnknownNameError listing the known names
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(Strict):
    source: str
    root: str | None = None  # real datasets' directory (paper profiles)
    train_videos: int | None = Field(96, ge=1, description="videos (clips for 300VW) per split; null: all")
    test_videos: int | None = Field(32, ge=1)
    frames: int = Field(16, ge=1, description="time steps per sequence")
    size: int = Field(48, ge=8, description="frame side in pixels")
    clip_frames: int = Field(16, ge=1, description="gesture: frames per C3D clip (one clip per step)")
    flow_stack: int = Field(10, ge=1, description="action: flow fields stacked per temporal-stream step")
    seed: int = 0
    augment: bool = False  # random scale, shift and flip per training sequence (prernn.data.augment)
    fail_at_epoch: int | None = Field(None, ge=0, description="fault injection, for tests")

    _source = field_validator("source")(lambda v: _registry_check(SOURCES, v))


class PretrainConfig(Strict):
    """The cached mini pre-training (see prernn.train.pretrain)."""

    videos: int = Field(128, ge=1)
    frames: int = Field(16, ge=1)
    size: int = Field(48, ge=8)
    seed: int = 777
    epochs: int = Field(6, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(0.01, gt=0)
    optimizer: Literal["sgd", "adam"] = "sgd"  # adam trains the deep plain mini C3D from scratch; SGD does not


class BackboneConfig(Strict):
    name: str
    pretrained: str = Field("cache", description="cache | default | none | a weights file path")
    pretrain: PretrainConfig | None = None

    _name = field_validator("name")(lambda v: _registry_check(backbones.BACKBONES, v))

    @model_validator(mode="after")
    def _pretrain_iff_cache(self):
        if self.pretrained == "cache" and self.pretrain is None:
            return self.model_copy(update={"pretrain": PretrainConfig()})
        if self.pretrained != "cache" and self.pretrain is not None:
            raise ValueError("backbone.pretrain applies only with pretrained: cache")
        return self


class TrainConfig(Strict):
    epochs: int = Field(ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    schedule: str = "step"
    milestones: list[int] = []  # schedule: step
    every: int = Field(10, ge=1)  # schedule: every
    patience: int = Field(40, ge=0)  # schedule: plateau
    gamma: float = Field(0.5, gt=0)  # the lr factor of step, every and plateau
    min_lr: float = Field(0, ge=0)  # stop once the lr has fallen to this (0: never)
    # the backbone's conv part stays as pre-trained; its features are computed once and shared
    freeze_backbone: bool = False
    # two-stream tasks: the temporal stream's own lr and epochs (default: lr and epochs)
    temporal_lr: float | None = Field(None, gt=0)
    temporal_epochs: int | None = Field(None, ge=1)

    _schedule = field_validator("schedule")(lambda v: _registry_check(SCHEDULES, v))


PRERNN_ONLY = ("variant", "layers", "input_init", "recurrent_init", "extra_layers")
TRADITIONAL_ONLY = ("hidden_dim", "num_layers")


class ModelConfig(Strict):
    """One network. Fields of the other kind of model must stay unset (None)."""

    model: Literal["prernn", "traditional"]
    cell: str
    # PreRNN
    variant: str | None = None
    layers: list[str] | None = None  # None: all the backbone's transformable layers
    input_init: Literal["pretrained", "random"] | None = None
    recurrent_init: str | None = None
    extra_layers: int | None = Field(None, ge=0)
    # traditional
    hidden_dim: int | Literal["matched"] | None = None
    num_layers: int | None = Field(None, ge=1)
    matched: bool = False  # hidden_dim was resolved from "matched"

    _cell = field_validator("cell")(lambda v: _registry_check(prernn.CELLS, v))

    @field_validator("layers", mode="before")
    @classmethod
    def _one_layer(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("recurrent_init")
    @classmethod
    def _rinit(cls, v):
        return v if v is None else _registry_check(prernn.RECURRENT_INITS, v)

    @field_validator("hidden_dim")
    @classmethod
    def _hidden(cls, v):
        if isinstance(v, int) and v < 1:
            raise ValueError(f"hidden_dim must be >= 1 or 'matched', got {v}")
        return v

    @model_validator(mode="after")
    def _fill_defaults(self):
        other = TRADITIONAL_ONLY if self.model == "prernn" else PRERNN_ONLY
        wrong = [f for f in other if getattr(self, f) is not None]
        if wrong:
            why = ("a PreRNN's hidden size is fixed by the pre-trained layer" if self.model == "prernn"
                   else "they configure PreRNN layers")
            raise ValueError(f"{', '.join(wrong)} do not apply to model {self.model!r} ({why})")
        if self.model == "traditional":
            if self.hidden_dim is None:
                raise ValueError("a traditional model needs hidden_dim (an int or 'matched')")
            return self.model_copy(update={"num_layers": self.num_layers or 2})
        variant = self.variant or "gate"
        prernn.CELLS[self.cell].check_variant(self.cell, variant)
        return self.model_copy(update=dict(
            variant=variant, input_init=self.input_init or "pretrained",
            recurrent_init=self.recurrent_init or "zeros", extra_layers=self.extra_layers or 0))


class Resources(Strict):
    cpus: int = Field(1, ge=1)
    gpus: float = Field(0, ge=0)
    mem_gb: float = Field(4, gt=0)
    timeout_min: int = Field(60, ge=1)


class SlurmConfig(Strict):
    """Where SLURM runs the trials (each key can also be given on the command line)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpus_per_node: int | None = Field(None, ge=0)
    array_parallelism: int = Field(64, ge=1)


AXES = (tuple(f for f in ModelConfig.model_fields if f != "matched") + ("seed",)
        + tuple(f"train.{f}" for f in TrainConfig.model_fields)
        + tuple(f"data.{f}" for f in DataConfig.model_fields))


class ParamSpace(Strict):
    """One searched parameter: ``choices``, or a range ``low``..``high`` (``log``, ``integer``)."""

    choices: list[Any] | None = Field(None, min_length=1)
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _one_kind(self):
        ranged = self.low is not None and self.high is not None
        if (self.choices is None) == (not ranged) or (self.choices is not None and (self.low or self.high)):
            raise ValueError("give either choices: [...] or low: and high:")
        if ranged and not self.low < self.high:
            raise ValueError(f"low must be below high, got {self.low} >= {self.high}")
        if ranged and self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


class SearchConfig(Strict):
    """An Optuna search instead of the full grid: ``space`` keys are grid axes
    (``cell``, ``hidden_dim``, ``train.lr``, ...) overriding the grid's first block."""

    n_trials: int = Field(ge=1)
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    pruner: Literal["median", "successive_halving", "none"] = "median"
    seed: int = 0
    space: dict[str, ParamSpace] = Field(min_length=1)

    @field_validator("space")
    @classmethod
    def _axes(cls, space):
        for key in space:
            if key not in AXES or key == "seed":
                raise ValueError(_unknown_key("search.space", key, [a for a in AXES if a != "seed"]))
        return space

    @model_validator(mode="after")
    def _grid_sampler_needs_choices(self):
        ranges = [k for k, p in self.space.items() if p.choices is None]
        if self.sampler == "grid" and ranges:
            raise ValueError(f"the grid sampler needs choices for every parameter; ranges: {', '.join(ranges)}")
        return self


class SweepSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    task: str
    description: str = ""
    profile: str
    reference: Literal["table1", "table2", "table3"] | None = None  # the paper table shown beside ours
    data: DataConfig
    backbone: BackboneConfig
    train: TrainConfig
    grid: list[dict[str, Any]] = Field(min_length=1)
    seeds: list[int] = Field([0], min_length=1)
    resources: Resources = Resources()
    slurm: SlurmConfig = SlurmConfig()
    search: SearchConfig | None = None

    _task = field_validator("task")(lambda v: _registry_check(TASKS, v))

    @field_validator("grid")
    @classmethod
    def _axes_known(cls, grid):
        for i, block in enumerate(grid):
            for key, value in block.items():
                if key not in AXES:
                    raise ValueError(_unknown_key(f"grid.{i}", key, AXES))
                if isinstance(value, list) and not value:
                    raise ValueError(f"grid.{i}.{key}: an axis needs at least one value")
        return grid

    @model_validator(mode="after")
    def _source_fits_task(self):
        if self.data.source not in TASKS[self.task].sources:
            raise ValueError(f"data.source {self.data.source!r} does not provide task {self.task!r}; "
                             f"allowed: {', '.join(TASKS[self.task].sources)}")
        if self.data.source in GENERATED and self.data.root is not None:
            raise ValueError(f"data.root: data source {self.data.source!r} is generated from its seed; "
                             "it takes no data.root")
        if self.data.source in GENERATED and None in (self.data.train_videos, self.data.test_videos):
            raise ValueError("data.train_videos / test_videos: null (every video) needs a real dataset; "
                             f"generated source {self.data.source!r} needs a number")
        two = len(TASKS[self.task].streams) > 1
        if not two and (self.train.temporal_lr is not None or self.train.temporal_epochs is not None):
            raise ValueError(f"train.temporal_lr / temporal_epochs apply to two-stream tasks (action), "
                             f"not {self.task!r}")
        return self


# ---------------------------------------------------------------- loading


def _unknown_key(where: str, key: str, allowed) -> str:
    msg = f"unknown key {key!r}; allowed: {', '.join(allowed)}"
    close = difflib.get_close_matches(key, list(allowed), n=1)
    return f"{msg} (did you mean {close[0]!r}?)" if close else msg


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
        return SweepSpec.model_validate(view)
    except ValidationError as e:
        raise SpecError([f"{path}: {_describe(err, origins)}" for err in e.errors()]) from None


def _where(loc: tuple, origins: dict) -> str:
    for n in range(len(loc), 0, -1):
        if loc[:n] in origins:
            rest = ".".join(map(str, loc[n:]))
            return origins[loc[:n]] + (f".{rest}" if rest else "")
    return ".".join(map(str, loc)) or "(top level)"


def _describe(err: dict, origins: dict) -> str:
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-")))
    where = _where(loc, origins)
    if err["type"] == "extra_forbidden":
        allowed = _fields_at(SweepSpec, loc[:-1])
        if not loc[:-1]:
            allowed = [f for f in allowed if f != "profile"] + ["profile", "profiles"]
        return f"{where}: {_unknown_key(where, str(loc[-1]), allowed)}"
    if err["type"] == "missing":
        return f"{where}: required, but missing"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "value_error" and not loc:
        return msg
    return f"{where}: {msg} (got {err.get('input')!r})"


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the nested model at ``loc`` (for 'allowed keys' messages)."""
    for key in loc:
        if isinstance(key, int):
            continue
        ann = model.model_fields[key].annotation
        args = typing.get_args(ann) if isinstance(ann, types.UnionType) or typing.get_origin(ann) else (ann,)
        sub = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if not sub:
            return []
        model = sub[0]
    return list(model.model_fields)


def grid_error(spec_path, block: int, combo: dict, err: Exception) -> str:
    if isinstance(err, ValidationError):
        msgs = "; ".join(f"{'.'.join(map(str, x['loc'])) or 'model'}: {x['msg'].removeprefix('Value error, ')}"
                         for x in err.errors())
    else:
        msgs = str(err)
    shown = ", ".join(f"{k}={v}" for k, v in combo.items())
    return f"{spec_path}: grid.{block} ({shown}): {msgs}"
