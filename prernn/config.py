"""The typed trial configuration: what one trial trains, fully resolved.

    TrialConfig = task + data + backbone + model + train + seed

Each section is a frozen dataclass (``prernn.settings``): a field's type, default,
bounds and allowed names are declared here once; the sweep spec (``launch/spec.py``)
is built from these types, the store's columns follow from them, and a worker
rebuilds a trial's ``TrialConfig`` from its stored row with ``TrialConfig.from_dict``.
The rules derived from a config (each stream's epochs and lr, the total number of
epochs, which history columns are final metrics) are defined once, on ``TrialConfig``.

``ModelConfig`` is resolved in two steps: its own rules when it is made (defaults
that follow from the model kind and cell), and ``resolve_model`` against the backbone
(the transformed layers, the activation, the conv kernel, the matched hidden size).

Fields added after trial ids were first fixed carry ``before=``: the value every
earlier trial implicitly had, so that such a trial keeps its id (``settings.identity``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal

from .settings import ConfigError, Problem, Section, parse, setting


def _names(module: str, attr: str):
    """Allowed names from a registry, looked up when checked (registries import torch code)."""
    return lambda: getattr(importlib.import_module(f"prernn.{module}"), attr)


@dataclass(frozen=True, kw_only=True)
class DataConfig(Section):
    source: str = setting(names=_names("data", "SOURCES"), doc="data source (a generated mini one or a real dataset)")
    root: str | None = setting(None, doc="the real dataset's directory (paper profiles)")
    train_videos: int | None = setting(96, ge=1, doc="training videos (clips for 300VW); null: every video")
    test_videos: int | None = setting(32, ge=1, doc="test videos; null: every video")
    frames: int = setting(16, ge=1, doc="time steps per sequence")
    size: int = setting(48, ge=8, doc="frame side in pixels")
    clip_frames: int = setting(16, ge=1, doc="gesture: frames per C3D clip (one clip per step)")
    flow_stack: int = setting(10, ge=1, doc="action: flow fields stacked per temporal-stream step")
    seed: int = setting(0, doc="seed of the generated videos")
    resample: bool = setting(False, before=False, doc="each replicate draws its own videos: a generated source is "
                             "drawn from data.seed + the trial's seed (the arms of one seed share it)")
    augment: bool = setting(False, doc="random scale, shift and flip per training sequence (prernn.data.augment)")
    validation: int = setting(0, ge=0, before=0, doc="the last training videos held out of training: the "
                                                      "validation split, carved from the training data")
    evaluate_on: Literal["test", "validation"] = setting(
        "test", before="test", doc="where the epoch metrics are measured; validation never reads the test split")
    workers: int | None = setting(None, ge=0, identifying=False, doc="processes reading real videos (0: the trial's "
                                  "own); null: the trial's resources.cpus - 1. Never changes a number")
    cache_dir: str | None = setting(None, identifying=False, doc="real datasets: a folder where each video is "
                                    "decoded once per machine and shared by every trial (null: no cache)")
    fail_at_epoch: int | None = setting(None, ge=0, doc="fault injection, for tests")

    def resolve(self):
        generated = importlib.import_module("prernn.data.sources").GENERATED
        if self.resample and self.source not in generated:
            return [Problem(("resample",), f"redraws a generated source ({', '.join(generated)}); {self.source!r} "
                            "is a fixed dataset with one draw", kind="model")]
        if self.evaluate_on == "validation" and not self.validation:
            return [Problem(("validation",), "evaluate_on: validation needs validation >= 1 held-out videos",
                            kind="model")]
        if self.train_videos is not None and self.validation >= self.train_videos:
            return [Problem(("validation",), f"must leave training videos: {self.validation} of {self.train_videos} "
                            "held out", kind="model")]
        return None


@dataclass(frozen=True, kw_only=True)
class PretrainConfig(Section):
    """The cached mini pre-training on a source task (see prernn.train.pretrain)."""

    examples: int = setting(8000, ge=1, doc="source-task examples trained on (frames, clips or flow stacks)")
    validation: int = setting(1000, ge=1, doc="held-out source examples: the validation curve")
    size: int = setting(48, ge=8, doc="frame side in pixels (the target's)")
    seed: int = setting(777)
    epochs: int = setting(8, ge=1)
    batch_size: int = setting(64, ge=1)
    lr: float = setting(0.05, gt=0, doc="peak lr of the one-cycle schedule (sgd), or Adam's lr")
    optimizer: Literal["sgd", "adam"] = setting("sgd")
    probe_videos: int = setting(60, ge=4, doc="target-domain videos of the probe gate (3/4 fit, 1/4 scored)")
    probe_steps: int = setting(8, ge=1, doc="time steps per probe video")


@dataclass(frozen=True, kw_only=True)
class BackboneConfig(Section):
    name: str = setting(names=_names("backbones", "BACKBONES"))
    pretrained: str = setting("cache", doc="cache | default | none | a weights file path")
    pretrain: PretrainConfig | None = setting(None, doc="the mini pre-training recipe (pretrained: cache)")

    def resolve(self):
        if self.pretrained == "cache" and self.pretrain is None:
            self._set(pretrain=PretrainConfig())
        elif self.pretrained != "cache" and self.pretrain is not None:
            return [Problem(("pretrain",), f"applies only with pretrained: cache, not {self.pretrained!r}",
                            kind="model")]
        return None


@dataclass(frozen=True, kw_only=True)
class TrainConfig(Section):
    epochs: int = setting(ge=1)
    batch_size: int = setting(8, ge=1)
    lr: float = setting(gt=0)
    momentum: float = setting(0.9, ge=0, lt=1)
    weight_decay: float = setting(5e-4, ge=0)
    schedule: str = setting("step", names=_names("train.recipes", "SCHEDULES"))
    milestones: list[int] = setting(factory=list, doc="schedule step: epochs at which the lr is multiplied by gamma")
    every: int = setting(10, ge=1, doc="schedule every: epochs between lr steps")
    patience: int = setting(40, ge=0, doc="schedule plateau: epochs without improvement before an lr step")
    gamma: float = setting(0.5, gt=0, doc="the lr factor of step, every and plateau")
    min_lr: float = setting(0, ge=0, doc="stop once the lr has fallen to this (0: never)")
    freeze_backbone: bool = setting(False, doc="the conv part stays as pre-trained; its features are computed once")
    eval_every: int = setting(1, ge=1, before=1, doc="epochs between evaluations (and always after the last); "
                                                       "epochs between have NaN metrics")
    temporal_lr: float | None = setting(None, gt=0, doc="two-stream tasks: the temporal stream's lr (default: lr)")
    temporal_epochs: int | None = setting(None, ge=1, doc="two-stream tasks: the temporal stream's epochs")
    device: Literal["auto", "cpu", "cuda"] = setting(
        "auto", before="auto", doc="auto: the GPU the scheduler gave the trial, else the CPU")
    precision: Literal["fp32", "bf16", "fp16"] = setting(
        "fp32", before="fp32", doc="autocast precision of training and evaluation (fp16 with a gradient scaler)")
    # CUDA only (the CPU's numbers are the same either way, so trials from before these existed
    # keep their ids): they change a GPU's numbers, so they are part of a trial's identity
    tf32: bool = setting(True, before=True, doc="CUDA: fp32 matmuls and convolutions on tensor cores (TF32, "
                         "10-bit mantissa); false: IEEE fp32, several times slower")
    deterministic: bool = setting(False, before=False, doc="CUDA: deterministic cuDNN algorithms, no autotuning: "
                                  "the same numbers on every run on one GPU model (slower)")
    keep: Literal["none", "last", "best"] = setting(
        "none", identifying=False, doc="weights kept once the trial has ended (runs/<id>/weights.pt): none (its "
        "checkpoint is deleted), last, or best (the epoch with the best primary metric, on the split the trial "
        "evaluates). Not part of a trial's identity")
    compile: bool = setting(True, identifying=False, doc="CUDA: the linear PreRNN time loop through torch.compile "
                            "(fused gate kernels; falls back to the plain loop where it cannot compile). Not "
                            "part of a trial's identity: it changes how the loop runs, not what it computes")


PRERNN_ONLY = ("variant", "layers", "input_init", "recurrent_init", "extra_layers", "activation", "shared_gate",
               "conv_kernel")
TRADITIONAL_ONLY = ("hidden_dim", "num_layers", "match_count")
MATCH_COUNTS = ("weights+biases", "weights")
# reference rows (prernn.train.reference): what a model must beat to have learned anything
REFERENCES = ("constant", "probe", "per-frame")
PER_FRAME = ("layers", "activation", "conv_kernel")  # the fields a per-frame CNN takes (it has no U to set up)


def _candidate(model: dict) -> str | None:
    """The shared gate every PreRNN trial had before ``shared_gate`` existed: the candidate."""
    from .recurrent import CELLS

    return CELLS[model["cell"]].candidate if model.get("cell") in CELLS else None


@dataclass(frozen=True, kw_only=True)
class ModelConfig(Section):
    """One network. Fields of the other kind of model stay unset (None).

    What is ours (the paper leaves it open) and why the defaults are what they are:
    ``activation`` φ defaults to the pre-trained layer's own (ReLU for fc6/fc7 and for
    ResNet's last block); ``shared_gate`` (which gate's input term *is* the pre-trained
    layer, the others starting as copies) defaults to the candidate (LSTM ``g``, GRU
    ``n``), the gate whose activation is φ like the pre-trained layer's; ``conv_kernel``
    (U's kernel in a conv recurrence, ResNet's ``layer4``) defaults to 1: the transformed
    block ends in a 1x1 conv, and a 1x1 U adds 4 x 2048^2 = 17 M weights to a PreLSTM
    where a 3x3 U adds 151 M, six times ResNet50's 25.6 M - a model no longer comparable
    with the one it came from. ``match_count`` is how parameter matching counts
    (``weights``: weight matrices and kernels only, the convention under which the
    paper's "Similar" sizes 2740 / 5761 / 5497 come out exactly; ``weights+biases``: all
    parameters, nearest integer size).

    Reference models (ours), in every table beside the paper's rows: ``constant``
    predicts the training set's mean target or class frequencies; ``probe`` is a
    linear read-out of the frozen pre-trained features; ``per-frame`` is the
    fine-tuned CNN without recurrence - a PreVRNN of all transformable layers whose
    U stays zero, i.e. the pre-trained network run frame by frame. They take no cell."""

    model: Literal["prernn", "traditional", "per-frame", "constant", "probe"] = setting()
    cell: str | None = setting(None, names=_names("recurrent.tables", "CELLS"))
    # PreRNN
    variant: str | None = setting(None, names=_names("recurrent.tables", "VARIANTS"))
    layers: list[str] | None = setting(None, doc="transformed layers; null: all the backbone's")
    input_init: Literal["pretrained", "random"] | None = setting(None)
    recurrent_init: str | None = setting(None, names=_names("recurrent.tables", "RECURRENT_INITS"))
    extra_layers: int | None = setting(None, ge=0, doc="random traditional recurrent layers on top (Table 2)")
    activation: str | None = setting(None, names=_names("recurrent.tables", "ACTIVATIONS"), before="relu",
                                     doc="φ of the recurrence; null: the pre-trained layer's")
    shared_gate: str | None = setting(None, before=_candidate, doc="gate variant: the gate that shares W, b")
    conv_kernel: int | None = setting(None, ge=1, before=3, doc="conv recurrence: U's kernel size (odd)")
    # traditional
    hidden_dim: int | Literal["matched"] | None = setting(None, ge=1)
    num_layers: int | None = setting(None, ge=1)
    match_count: Literal["weights+biases", "weights"] | None = setting(
        None, before="weights+biases", doc="how hidden_dim: matched counts parameters")
    matched: bool = setting(False, doc="hidden_dim was resolved from 'matched'")

    def resolve(self):
        from .recurrent import CELLS

        if isinstance(self.layers, str):  # a single layer name reads as a list of one
            self._set(layers=[self.layers])
        if self.model in REFERENCES:
            allowed = PER_FRAME if self.model == "per-frame" else ()
            wrong = [f for f in ("cell", *PRERNN_ONLY, *TRADITIONAL_ONLY) if f not in allowed
                     and getattr(self, f) is not None]
            if wrong:
                return [Problem((), f"{', '.join(wrong)} do not apply to the reference model {self.model!r}",
                                kind="model")]
            return None
        if self.cell is None:
            return [Problem(("cell",), f"a {self.model} model needs a cell", kind="model")]
        other = TRADITIONAL_ONLY if self.model == "prernn" else PRERNN_ONLY
        wrong = [f for f in other if getattr(self, f) is not None]
        if wrong:
            why = ("a PreRNN's hidden size is fixed by the pre-trained layer" if self.model == "prernn"
                   else "they configure PreRNN layers")
            return [Problem((), f"{', '.join(wrong)} do not apply to model {self.model!r} ({why})", kind="model")]
        if self.model == "traditional":
            if self.hidden_dim is None:
                return [Problem(("hidden_dim",), "a traditional model needs hidden_dim (an int or 'matched')",
                                kind="model")]
            matching = self.hidden_dim == "matched" or self.matched  # (a resolved size keeps its count)
            count = (self.match_count or "weights+biases") if matching else None
            self._set(num_layers=self.num_layers or 2, match_count=count)
            return None
        cell = CELLS[self.cell]
        variant = self.variant or "gate"
        try:
            cell.check_variant(self.cell, variant)
        except (KeyError, ValueError) as e:
            return [Problem(("variant",), str(e), kind="model")]
        shared = self.shared_gate
        if shared is not None and (variant != "gate" or len(cell.gates) == 1):
            return [Problem(("shared_gate",), f"applies to the gate variant of lstm and gru, not {variant} "
                            f"{self.cell} (one input term feeds every gate)", kind="model")]
        if variant == "gate" and len(cell.gates) > 1:
            shared = shared or cell.candidate
            if shared not in cell.gates:
                return [Problem(("shared_gate",), f"unknown {self.cell} gate {shared!r}; known: "
                                f"{', '.join(cell.gates)}", kind="model")]
        if self.conv_kernel is not None and self.conv_kernel % 2 == 0:
            return [Problem(("conv_kernel",), f"must be odd (same padding), got {self.conv_kernel}", kind="model")]
        self._set(variant=variant, input_init=self.input_init or "pretrained",
                  recurrent_init=self.recurrent_init or "zeros", extra_layers=self.extra_layers or 0,
                  shared_gate=shared)
        return None


def resolve_model(model: ModelConfig, backbone: str, num_outputs: int) -> ModelConfig:
    """Fill in what depends on the backbone: the transformed layers, φ and U's kernel of a
    PreRNN, the hidden size of a matched traditional network (Table 1's "Similar": the
    traditional network of the same cell whose parameter count is closest to the fc6/7
    PreRNN's, counted by ``match_count``)."""
    from torch import nn

    from .convert import resolve_layers
    from .params import match_hidden_dim

    b = _meta_backbone(backbone, num_outputs)
    if model.model in ("prernn", "per-frame"):
        try:
            layers = list(resolve_layers(b, model.layers))
        except (KeyError, ValueError) as e:
            raise ConfigError([Problem(("layers",), str(e).strip("'\""), kind="model")]) from None
        conv = [n for n in layers if not isinstance(b.layers[n], nn.Linear)]
        if model.conv_kernel is not None and not conv:
            raise ConfigError([Problem(("conv_kernel",), f"applies to conv layers; {b.name}'s "
                                       f"{', '.join(layers)} {'is' if len(layers) == 1 else 'are'} linear",
                                       kind="model")])
        return model.replace(layers=layers, activation=model.activation or b.activation,
                             conv_kernel=(model.conv_kernel or 1) if conv else None)
    if model.hidden_dim == "matched":
        h = match_hidden_dim(b, cell=model.cell, num_layers=model.num_layers, count=model.match_count)
        return model.replace(hidden_dim=h, matched=True)
    return model


_BACKBONES: dict = {}


def _meta_backbone(name: str, num_outputs: int):
    """A backbone's shapes (meta device, no memory), built once per process."""
    from . import backbones

    key = (name, num_outputs)
    if key not in _BACKBONES:
        _BACKBONES[key] = backbones.create(name, num_outputs=num_outputs, device="meta")
    return _BACKBONES[key]


def task_problems(task: str, data: DataConfig, train: TrainConfig) -> list[Problem]:
    """Whether data and training fit the task (shared by the sweep spec and TrialConfig)."""
    from .data.sources import GENERATED
    from .tasks import TASKS

    t = TASKS[task]
    if data.source not in t.sources:
        return [Problem(("data", "source"), f"data source {data.source!r} does not provide task {task!r}; allowed: "
                        f"{', '.join(t.sources)}", kind="model")]
    problems = []
    if data.source in GENERATED and data.root is not None:
        problems.append(Problem(("data", "root"), f"data source {data.source!r} is generated from its seed; "
                                "it takes no data.root", kind="model"))
    if data.source in GENERATED and None in (data.train_videos, data.test_videos):
        problems.append(Problem(("data",), "train_videos / test_videos: null (every video) needs a real dataset; "
                                f"generated source {data.source!r} needs a number", kind="model"))
    if len(t.streams) == 1 and (train.temporal_lr is not None or train.temporal_epochs is not None):
        problems.append(Problem(("train",), f"temporal_lr / temporal_epochs apply to two-stream tasks (action), "
                                f"not {task!r}", kind="model"))
    return problems


# the columns of a history row that describe the epoch rather than measure the model
BOOKKEEPING = ("id", "epoch", "lr", "epoch_seconds")


@dataclass(frozen=True, kw_only=True)
class TrialConfig(Section):
    """Everything one trial needs; ``prernn.trial.run_trial`` trains it."""

    task: str = setting(names=_names("tasks", "TASKS"))
    data: DataConfig = setting()
    backbone: BackboneConfig = setting()
    model: ModelConfig = setting()
    train: TrainConfig = setting()
    seed: int = setting(0)

    def resolve(self):
        return task_problems(self.task, self.data, self.train)

    @classmethod
    def from_dict(cls, data: dict) -> "TrialConfig":
        """Rebuild (and re-check) a trial's config from plain data: a stored row, a job."""
        return parse(cls, data)

    @property
    def data_seed(self) -> int:
        """The seed the generated videos are drawn from: ``data.seed``, plus the trial's own with
        ``data.resample`` (each replicate its own draw; ours, after Bouthillier et al. 2021)."""
        return self.data.seed + (self.seed if self.data.resample else 0)

    @property
    def streams(self) -> tuple[str, ...]:
        from .tasks import TASKS

        return TASKS[self.task].streams

    def epochs(self, stream: str = "spatial") -> int:
        """The paper's two-stream recipe trains each stream for its own number of epochs."""
        t = self.train
        return t.temporal_epochs if stream == "temporal" and t.temporal_epochs else t.epochs

    def lr(self, stream: str = "spatial") -> float:
        t = self.train
        return t.temporal_lr if stream == "temporal" and t.temporal_lr else t.lr

    @property
    def total_epochs(self) -> int:
        """Epoch rows a trial writes at most: its longest stream's epochs."""
        return max(self.epochs(s) for s in self.streams)

    @staticmethod
    def final_metrics(row: dict) -> dict:
        """A history row's metrics (what the trial's row records as its result)."""
        return {k: v for k, v in row.items() if k not in BOOKKEEPING}
