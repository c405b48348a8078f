"""The C++ time loop (``csrc/recurrence.cpp``), built on first use.

``load()`` compiles the extension with torch's JIT C++ builder (g++ and ninja; about
30 s once, then cached under ``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``
and shared by every process on the machine) and returns it, or ``None`` when it
cannot be built - then ``loops.py`` runs the same loop in Python, slower on the
CPU (see BENCHMARKS.md), with one warning. ``PRERNN_KERNELS=0`` turns it off.
``setup.sh`` builds it, so a sweep does not pay the compile in its first trial.

It is built with OpenMP (torch's ``at::parallel_for``) and for the instruction set
torch itself uses on this CPU (AVX-512, AVX2 or neither), each under its own module
name, so that machines of different kinds can share one build cache. Its cell and
activation ids are ``tables.py``'s: ``check_source`` compares the C++ enums with the
tables before every build.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import warnings
from pathlib import Path

SOURCE = Path(__file__).parent / "csrc" / "recurrence.cpp"

_module = None
_tried = False


# Instruction sets the gate loops may use, as torch's own kernels do (ATen's vector types pick
# their width from CPU_CAPABILITY_*); the capability is in the module's name, so that machines
# sharing one build cache (a cluster's home directory) each get their own build.
CAPABILITY_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-DCPU_CAPABILITY_AVX512"],
    "AVX2": ["-mavx2", "-mfma", "-DCPU_CAPABILITY_AVX2"],
}


def _target() -> tuple[str, list[str]]:
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    flags = CAPABILITY_FLAGS.get(capability, [])
    # our own namespace for ATen's inline vector code, apart from libtorch's copies of it
    suffix = capability.lower() if flags else "default"
    return f"prernn_recurrence_{suffix}", [*flags, f"-DCPU_CAPABILITY=prernn_{suffix}"]


def source_ids(enum: str, source: str | None = None) -> dict[str, int]:
    """The C++ ``enum <enum> { NAME = id, ... }`` as {"name": id}."""
    text = SOURCE.read_text() if source is None else source
    body = re.search(rf"enum {enum} \{{([^}}]*)\}}", text)
    if body is None:
        raise ValueError(f"{SOURCE.name} has no `enum {enum}`")
    return {name.lower(): int(i) for name, i in re.findall(r"(\w+)\s*=\s*(\d+)", body.group(1))}


def check_source(source: str | None = None) -> None:
    """The C++ enums give every cell and activation the kernel id ``tables.py`` gives it
    (raises ValueError naming each disagreement)."""
    from .tables import ACTIVATIONS, CELLS

    problems = []
    for enum, table in (("CellId", CELLS), ("Act", ACTIVATIONS)):
        want = {name: table[name].kernel_id for name in table}
        have = source_ids(enum, source)
        if have != want:
            problems.append(f"enum {enum} is {have}, tables.py says {want}")
    if problems:
        raise ValueError(f"{SOURCE} disagrees with prernn/recurrent/tables.py: " + "; ".join(problems))


def load(required: bool = False):
    global _module, _tried
    if _tried and not required:
        return _module
    _tried = True
    if os.environ.get("PRERNN_KERNELS") == "0" and not required:
        return None
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "no CUDA runtime" is expected
    if shutil.which("ninja") is None:  # the pip package's binary, when the venv is not on PATH
        with contextlib.suppress(ImportError):
            import ninja

            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    try:
        from torch.utils.cpp_extension import load as build

        check_source()
        name, flags = _target()
        _module = build(name, [str(SOURCE)], extra_cflags=["-O3", "-fopenmp", *flags],
                        extra_ldflags=["-fopenmp"])  # OpenMP: at::parallel_for is a pragma in a header
    except Exception as e:  # no compiler, no ninja, read-only cache, ...
        if required:
            raise
        warnings.warn(f"prernn: the C++ time loop could not be built ({type(e).__name__}: {e}); "
                      "using the Python loop (same results, slower on the CPU)", stacklevel=2)
    return _module
