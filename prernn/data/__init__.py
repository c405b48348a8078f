"""Datasets as sequence tensors, by name (``SOURCES``).

A source is called as ``source(split, videos=, frames=, size=, seed=, root=,
clip_frames=, flow_stack=)`` (each takes the keywords it needs and ignores the
rest) and returns a ``Split`` for "train" or "test":

  frames   uint8 (N, T, C, H, W) images, or (N, T, C, L, H, W) clips (C3D)
  targets  float32 (N, T, K) per-step targets, or int64 (N,) one class per video
  flow     two-stream sources only: uint8 (N, T, 2 * flow_stack, H, W), the optical
           flow (u, v interleaved, 128 = no motion) stacked around each RGB step
  mirror   classification only: per class, the class a horizontally flipped video
           shows (``augment.NO_FLIP``: none, never flip it); None: a flip keeps the class
  redraw   training splits drawn afresh every epoch (300VW): epoch seed -> that epoch's split
  mask     (N, T) bool, the steps the metrics count (300VW's overlapping test windows)
  groups   (N,) int, a sequence's group for per-group metrics (300VW's test categories)

Synthetic sources return tensors; the real datasets return ``LazyFrames``, which
index like a uint8 tensor but decode a video only when it is read, so a split
never has to fit in memory. ``to_input`` turns frames into the network's input.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..registry import Registry


class LazyFrames:
    """N items of one shape, each loaded by ``load(i) -> uint8 array`` when indexed.

    ``x[i]`` gives one item, ``x[idx]`` (slice, list or index tensor) a stacked batch -
    the subset of tensor indexing the training loop uses. ``key(i)`` names what item ``i``
    is read from and how (``frame_cache.file_key``), for the decoded-frame cache;
    ``cache_file(i)``, where that cache keeps what item ``i`` is decoded from (None: not cached),
    so that the cache can be filled before training (``loader.warm``).
    """

    def __init__(self, n: int, item_shape: tuple[int, ...], load: Callable[[int], np.ndarray],
                 key: Callable[[int], str] | None = None, cache_file: Callable[[int], Path] | None = None):
        self.n, self.item_shape, self.load, self.key = n, tuple(item_shape), load, key
        self.cache_file = cache_file

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n, *self.item_shape)

    def __len__(self) -> int:
        return self.n

    def _item(self, i: int) -> Tensor:
        x = torch.from_numpy(np.array(self.load(i), order="C"))  # a C-ordered copy (a cache file stays read-only)
        if tuple(x.shape) != self.item_shape or x.dtype != torch.uint8:
            raise ValueError(f"item {i}: loader returned {x.dtype} {tuple(x.shape)}, expected uint8 {self.item_shape}")
        return x

    def subset(self, indices: range) -> "LazyFrames":
        """The items at ``indices``, still loaded only when read."""
        key = None if self.key is None else (lambda i: self.key(indices[i]))
        file = None if self.cache_file is None else (lambda i: self.cache_file(indices[i]))
        return LazyFrames(len(indices), self.item_shape, lambda i: self.load(indices[i]), key, file)

    def cached(self, cache_dir: str | Path) -> "LazyFrames":
        """The same items, each decoded at most once per ``cache_dir`` (``frame_cache``)."""
        from .frame_cache import cache_file, cached_load

        if self.key is None:
            return self
        return LazyFrames(self.n, self.item_shape, cached_load(self.load, self.key, cache_dir), self.key,
                          lambda i: cache_file(cache_dir, self.key(i)))

    def __getitem__(self, idx) -> Tensor:
        if isinstance(idx, int):
            return self._item(range(self.n)[idx])
        if isinstance(idx, slice):
            idx = range(self.n)[idx]
        elif isinstance(idx, Tensor):
            idx = idx.tolist()
        return torch.stack([self._item(int(i)) for i in idx]) if len(idx) else torch.empty(0, *self.item_shape,
                                                                                          dtype=torch.uint8)


@dataclass(frozen=True, eq=False)  # holds tensors: compared and hashed by identity
class Split:
    frames: Tensor | LazyFrames
    targets: Tensor
    flow: Tensor | LazyFrames | None = field(default=None)
    mirror: tuple[int, ...] | None = field(default=None)
    redraw: Callable[[int], "Split"] | None = field(default=None)  # another epoch's sequences, from its seed
    mask: Tensor | None = field(default=None)  # (N, T) bool: the steps a metric counts (None: all)
    groups: Tensor | None = field(default=None)  # (N,) int: a sequence's group (300VW's test category)

    def __len__(self) -> int:
        return self.frames.shape[0]

    def subset(self, indices: range) -> "Split":
        """The videos at ``indices`` (e.g. the validation videos carved out of a training split)."""
        take = lambda x: None if x is None else (x.subset(indices) if isinstance(x, LazyFrames)  # noqa: E731
                                                 else x[indices.start:indices.stop])
        redraw = None if self.redraw is None else (lambda seed: self.redraw(seed).subset(indices))
        return replace(self, frames=take(self.frames), targets=take(self.targets), flow=take(self.flow),
                       mask=take(self.mask), groups=take(self.groups), redraw=redraw)

    def cached(self, cache_dir: str | Path) -> "Split":
        """Real datasets' frames and flow through the decoded-frame cache (``frame_cache``). A split
        drawn afresh every epoch is not cached item by item (each epoch's items would be new
        files); 300VW keeps whole decoded videos there itself."""
        if self.redraw is not None:
            return self
        through = lambda x: x.cached(cache_dir) if isinstance(x, LazyFrames) else x  # noqa: E731
        return replace(self, frames=through(self.frames), flow=through(self.flow))

    def stream(self, name: str) -> "Split":
        """The single-stream view a network trains on: ``spatial`` (RGB frames) or ``temporal`` (flow)."""
        if name == "temporal":
            if self.flow is None:
                raise ValueError("the temporal stream needs optical flow, and this data source has none")
            redraw = None if self.redraw is None else (lambda seed: self.redraw(seed).stream(name))
            return replace(self, frames=self.flow, flow=None, redraw=redraw)
        return replace(self, flow=None, redraw=None if self.redraw is None else
                       (lambda seed: self.redraw(seed).stream(name)))


SOURCES: Registry[Callable[..., Split]] = Registry("data source")


def code_digest(*paths: Path) -> str:
    """A digest of the Python files under ``paths`` (files or packages): part of a cache key, so
    that data (features, pre-trained weights) made by changed code is never read as if the
    old code had made it. Default: this package, the code that makes every dataset."""
    import hashlib

    h = hashlib.sha256()
    for root in paths or (Path(__file__).parent,):
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


def to_input(frames: Tensor, channels: int = 3) -> Tensor:
    """uint8 frames -> float, centred and scaled; grey frames repeated to ``channels``.
    Float input (a frozen backbone's cached features) is already the network's input."""
    if frames.dtype != torch.uint8:
        return frames
    x = frames.float().div_(255).sub_(0.5).div_(0.25)
    if x.shape[2] == 1 and channels != 1:
        x = x.expand(*x.shape[:2], channels, *x.shape[3:])
    return x


def sample_indices(n: int, videos: int | None, seed: int) -> list[int]:
    """Which of ``n`` listed videos a split uses: all (``videos`` None or >= n, in list
    order) or ``videos`` of them drawn without replacement from ``seed``, sorted."""
    if videos is None or videos >= n:
        return list(range(n))
    return sorted(np.random.default_rng(seed).choice(n, size=videos, replace=False).tolist())


from . import nvgesture, sources, ucf101, vw300  # noqa: E402,F401  (registers the sources)
