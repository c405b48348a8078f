"""Pre-trained weights from local files (nothing is downloaded at run time).

Where a backbone's default file is looked for, in order:
  1. ``$PRERNN_WEIGHTS`` (a directory), if set;
  2. ``~/.cache/prernn/weights``;
  3. torchvision's cache, ``$TORCH_HOME/hub/checkpoints`` (default
     ``~/.cache/torch/hub/checkpoints``), where ``torchvision.models`` puts its files.
Any backbone also takes an explicit file path. Two formats are read, both with
``weights_only=True``: the network's native state dict (torchvision's files, C3D's
usual key names), and our own ``save_backbone`` format (cached mini pre-training).
The pre-trained classifier is always dropped: a new head is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .base import Backbone

FORMAT_KEY = "prernn_backbone"  # marks a file written by save_backbone


class WeightsNotFoundError(FileNotFoundError):
    pass


def search_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("PRERNN_WEIGHTS"):
        dirs.append(Path(os.environ["PRERNN_WEIGHTS"]).expanduser())
    dirs.append(Path("~/.cache/prernn/weights").expanduser())
    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    return dirs


def find_weights(backbone: str, filenames: tuple[str, ...]) -> Path:
    looked = [d / f for d in search_dirs() for f in filenames]
    for path in looked:
        if path.is_file():
            return path
    raise WeightsNotFoundError(
        f"pre-trained weights for {backbone!r} not found; looked for "
        + ", ".join(str(p) for p in looked)
        + ". Put the file in one of these places, set $PRERNN_WEIGHTS to its directory, "
        "or pass its path as `pretrained=`."
    )


def resolve(backbone: str, pretrained: bool | str | os.PathLike | None, filenames: tuple[str, ...]) -> Path | None:
    """False/None -> None (random init); True -> the default file; a path -> that file."""
    if pretrained is False or pretrained is None:
        return None
    if pretrained is True:
        if not filenames:
            raise WeightsNotFoundError(
                f"{backbone!r} has no published weights file; pass the path of a state dict as `pretrained=`"
            )
        return find_weights(backbone, filenames)
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"pre-trained weights for {backbone!r}: no such file {path}")
    return path


def _load_checked(module: nn.Module, state: dict, skip: str, path: Path) -> None:
    """Strict for every key not under ``skip`` (the classifier), with a readable error."""
    state = {k: v for k, v in state.items() if not k.startswith(skip)}
    own = {k for k in module.state_dict() if not k.startswith(skip)}
    missing, unexpected = sorted(own - state.keys()), sorted(state.keys() - own)
    if missing or unexpected:
        raise ValueError(f"{path} does not fit {type(module).__name__}: "
                         f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
    try:
        module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise ValueError(f"{path} does not fit {type(module).__name__}: {e}") from None


def build(name: str, net: nn.Module, pretrained, filenames: tuple[str, ...], head_prefix: str,
          cut: Callable[[nn.Module], Backbone]) -> Backbone:
    """Load ``pretrained`` into the native ``net`` (or, for our format, into the cut
    Backbone), reading the file once; ``cut`` turns the native net into a Backbone."""
    path = resolve(name, pretrained, filenames)
    state = torch.load(path, map_location="cpu", weights_only=True) if path else None
    ours = isinstance(state, dict) and FORMAT_KEY in state
    if state is not None and not ours:
        if isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
        _load_checked(net, {k.removeprefix("module."): v for k, v in state.items()}, head_prefix, path)
    backbone = cut(net)
    if ours:
        if state[FORMAT_KEY] != name:
            raise ValueError(f"{path} holds {state[FORMAT_KEY]!r} weights, not {name!r}")
        _load_checked(backbone, state["state_dict"], "head.", path)
    return backbone


def save_backbone(backbone: Backbone, path: Path) -> None:
    """Write ``backbone``'s weights (head excluded) atomically in our format."""
    state = {k: v for k, v in backbone.state_dict().items() if not k.startswith("head.")}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({FORMAT_KEY: backbone.name, "state_dict": state}, tmp)
    os.replace(tmp, path)
