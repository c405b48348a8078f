"""A decoded-frame cache on disk (``data.cache_dir``): each video decoded once per machine.

A real dataset's item (one video's frames or flow stacks, as the loader returns it) is
stored as ``<cache_dir>/frames/<digest>.npy`` under a key that names the files it was
read from (path, size and modification time) and how (frame size, steps, stack): a
changed video, or other loading settings, is another key. One process decodes an item
while concurrent trials wait on its lock and then read the file; the file is written
to a temporary name and renamed, so a reader never sees half of one. Not part of a
trial's identity: with or without the cache a trial computes the same numbers (ours).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np


def file_key(*paths: Path | str, **how) -> str:
    """What an item is read from and how: a change to any file (size, mtime) is another key."""
    files = []
    for p in paths:
        st = os.stat(p)
        files.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
    return json.dumps({"files": files, "how": how}, sort_keys=True)


def cache_file(cache_dir: Path | str, key: str) -> Path:
    """Where the item read as ``key`` (``file_key``) is kept under ``cache_dir``."""
    return Path(cache_dir).expanduser() / "frames" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy"


def cached_load(load: Callable[[int], np.ndarray], keys: Callable[[int], str], cache_dir: Path | str,
                mmap: bool = False) -> Callable[[int], np.ndarray]:
    """``load`` through the cache: item ``i`` is decoded at most once per ``cache_dir``
    (``mmap``: read from the file as sliced, for a whole video of which a clip is wanted)."""

    def read(i: int) -> np.ndarray:
        path = cache_file(cache_dir, keys(i))
        folder = path.parent
        if not path.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            with open(path.with_suffix(".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # one process decodes; the others wait, then read
                if not path.is_file():
                    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
                    np.save(tmp, np.ascontiguousarray(load(i)))
                    os.replace(tmp, path)
        return np.load(path, mmap_mode="r" if mmap else None)

    return read
