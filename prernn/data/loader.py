"""Batches of a split, epoch after epoch, read in this process or by worker processes.

A trial asks ``Batches.epoch(order, seed, augment)`` for one pass: ``order`` (the video
indices, drawn on the CPU from the epoch's seed) is cut into batches; a split drawn
afresh every epoch (``Split.redraw``, 300VW) draws from the seed, and with ``augment``
each training sequence is transformed under its own generator, seeded from (epoch
seed, video index). What a batch holds therefore depends only on the seed - not on which
process reads it or how many there are: 0 and 4 workers give the same numbers.

Real datasets (``LazyFrames``: a video is decoded when read) are read by
``workers`` processes of a torch ``DataLoader`` (ours): persistent across epochs,
each keeping ``prefetch`` batches ready, batches in pinned memory when the trial
trains on CUDA; for such a trial the augmentation's warp waits for the GPU
(``warp_on_device``; the workers draw the transforms). Data already in memory (the
generated mini datasets, cached features) are sliced here: a worker would only copy them.
"""

from __future__ import annotations

import functools
import multiprocessing
import sys
import time
from typing import Callable, Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from . import LazyFrames, Split
from .augment import Augment, as_rows


# workers are forked where the platform can (Linux): a split's loaders are closures over the
# dataset's files, which a spawned worker would have to unpickle (and backends start trials by spawning)
_CONTEXT = "fork" if "fork" in multiprocessing.get_all_start_methods() and sys.platform != "darwin" else None


def sequence_seed(epoch_seed: int, index: int) -> int:
    """The seed of one video's augmentation in one epoch."""
    return (epoch_seed * 1_000_003 + index) % (2 ** 63)


class _Batch(Dataset):
    """batch key (video indices, epoch seed or None, augment?) -> (frames, targets), or with
    ``warp_later`` and augmentation (frames, targets, transforms): the frames as read, the
    targets already transformed, each sequence's transform as a row (``augment.as_rows``)."""

    def __init__(self, split: Split, augment: Augment | None, warp_later: bool = False):
        self.split, self.augment, self.warp_later = split, augment, warp_later

    def __getitem__(self, key: tuple[list[int], int | None, bool]) -> tuple[Tensor, ...]:
        idx, seed, augment = key
        split = self.split if seed is None or self.split.redraw is None else _drawn(self.split, seed)
        frames, targets = split.frames[idx], split.targets[idx]
        if not augment or self.augment is None:
            return frames, targets
        generators = [torch.Generator().manual_seed(sequence_seed(seed, i)) for i in idx]
        if self.warp_later:
            drawn = [self.augment.transform(t, g) for t, g in zip(targets, generators)]
            return frames, torch.stack([t for _, t in drawn]), as_rows([d for d, _ in drawn])
        pairs = [self.augment(f, t, g) for f, t, g in zip(frames, targets, generators)]
        return torch.stack([f for f, _ in pairs]), torch.stack([t for _, t in pairs])


@functools.lru_cache(maxsize=1)
def _drawn(split: Split, seed: int) -> Split:
    """The epoch's sequences of a split drawn afresh every epoch (drawn once per process and epoch)."""
    return split.redraw(seed)


class _Read(Dataset):
    """item -> 0, having read it (through the frame cache, which keeps it)."""

    def __init__(self, frames: LazyFrames):
        self.frames = frames

    def __getitem__(self, i: int) -> int:
        self.frames.load(i)
        return 0


def warm(frames: Tensor | LazyFrames, workers: int, log: Callable[[str], None] = print, every: float = 30.0) -> int:
    """Fill the frame cache (``data.cache_dir``) with what ``frames`` are read from, by ``workers``
    processes, before the first epoch, so that no epoch waits for a first decoding (ours). One
    item per cache file is read (a 300VW video's clips share one); returns how many files were
    made. Progress is logged every ``every`` seconds."""
    if not isinstance(frames, LazyFrames) or frames.cache_file is None:
        return 0
    missing: dict = {}  # cache file -> one item read from it
    for i in range(len(frames)):
        missing.setdefault(frames.cache_file(i), i)
    missing = {f: i for f, i in missing.items() if not f.is_file()}
    if not missing:
        return 0
    folder = next(iter(missing)).parent
    log(f"frame cache: decoding {len(missing)} video(s) into {folder} with {max(workers, 1)} process(es) "
        "before the first epoch")
    start = last = time.monotonic()
    loader = DataLoader(_Read(frames), batch_size=None, sampler=list(missing.values()), num_workers=workers,
                        multiprocessing_context=_CONTEXT if workers else None)
    for done, _ in enumerate(loader, 1):
        if time.monotonic() - last >= every:
            last = time.monotonic()
            log(f"frame cache: {done} of {len(missing)} decoded ({done / (last - start):.1f}/s)")
    log(f"frame cache: {len(missing)} decoded in {time.monotonic() - start:.1f} s")
    return len(missing)


class _Keys(Sampler):
    """The current epoch's batch keys: the sampler is iterated in the trial's process, so a
    persistent loader reads each epoch's order from here."""

    def __init__(self):
        self.keys: list = []

    def __iter__(self):
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


class Batches:
    """One stream's batches of one split (see the module docstring)."""

    def __init__(self, split: Split, batch_size: int, workers: int = 0, pin_memory: bool = False,
                 augment: Augment | None = None, prefetch: int = 2, warp_on_device: bool = False):
        self.split, self.batch_size, self.augment = split, batch_size, augment
        self.batch = _Batch(split, augment, warp_on_device and augment is not None)
        self.keys = _Keys()
        self.waited = 0.0  # seconds the last epoch's consumer waited for its batches
        self.loader = None
        if workers > 0 and isinstance(split.frames, LazyFrames):
            self.loader = DataLoader(self.batch, batch_size=None, sampler=self.keys, num_workers=workers,
                                     persistent_workers=True, prefetch_factor=prefetch, pin_memory=pin_memory,
                                     generator=torch.Generator(),  # its seeds never draw on the trial's RNG
                                     multiprocessing_context=_CONTEXT)

    def __len__(self) -> int:
        return len(self.split)

    @property
    def targets(self) -> Tensor:
        return self.split.targets

    def epoch(self, order: Tensor | None = None, seed: int | None = None, augment: bool = False
              ) -> Iterator[tuple[Tensor, ...]]:
        """The batches of one pass over ``order`` (default: in order). ``seed``: the epoch's, from
        which a split drawn afresh every epoch draws its sequences and, with ``augment``, each
        sequence its transform. Yields (frames, targets), or with ``warp_on_device``
        (frames, targets, transforms), for ``Placement.batch`` to warp after the copy."""
        idx = list(range(len(self.split))) if order is None else order.tolist()
        self.keys.keys = [(idx[i:i + self.batch_size], seed, augment) for i in range(0, len(idx), self.batch_size)]
        batches = (self.batch[k] for k in self.keys.keys) if self.loader is None else iter(self.loader)
        return self._timed(batches)

    def _timed(self, batches: Iterator) -> Iterator:
        """``batches``, adding the time spent waiting for each to ``waited`` (from zero)."""
        self.waited = 0.0
        while True:
            start = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            finally:
                self.waited += time.perf_counter() - start
            yield batch

    @property
    def reads_videos(self) -> bool:
        """Whether its batches are decoded from video files (else sliced from memory)."""
        return isinstance(self.split.frames, LazyFrames)
