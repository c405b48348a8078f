"""Pre-trained weights from local files (nothing is downloaded at run time).

Where a backbone's default file is looked for, in order:
  1. ``$PRERNN_WEIGHTS`` (a directory), if set;
  2. ``~/.cache/prernn/weights``;
  3. torchvision's cache, ``$TORCH_HOME/hub/checkpoints`` (default
     ``~/.cache/torch/hub/checkpoints``), where ``torchvision.models`` puts its files.
Any backbone also takes an explicit file path. Files are state dicts loaded with
``weights_only=True``; the pre-trained classifier is dropped (a new head is built).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn


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


def resolve(backbone: str, pretrained: bool | str | os.PathLike, filenames: tuple[str, ...]) -> Path | None:
    """False -> None (random init); True -> the default file; a path -> that file."""
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


def load_into(net: nn.Module, path: Path, head_prefix: str) -> None:
    """Load a state dict into ``net``, strictly for everything but the classifier."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith(head_prefix)}
    own = {k for k in net.state_dict() if not k.startswith(head_prefix)}
    missing, unexpected = sorted(own - state.keys()), sorted(state.keys() - own)
    if missing or unexpected:
        raise ValueError(
            f"{path} does not fit {type(net).__name__}: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
        )
    try:
        net.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise ValueError(f"{path} does not fit {type(net).__name__}: {e}") from None
