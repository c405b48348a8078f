"""Where a trial trains and in what precision (``train.device``, ``train.precision``).

device
  ``auto``  the GPU the scheduler gave the trial, else the CPU. Every backend makes
            CUDA_VISIBLE_DEVICES say what it gave: SLURM and Ray set it to the
            trial's GPUs, the local backend to each worker's share (empty without
            GPUs), so "a CUDA device is visible" means "a GPU was given".
  ``cuda``  the first visible GPU; none visible is an error before anything runs.
  ``cpu``   the CPU, whatever is visible.
precision
  ``fp32``  no autocast.
  ``bf16``  autocast to bfloat16 (CPU and CUDA); weights and optimiser state stay fp32.
  ``fp16``  autocast to float16 with a gradient scaler (loss scaling, skipped steps
            on overflow): CUDA's mixed precision; on the CPU it runs but is slow.

On CUDA, conv backbones run channels-last (NHWC, what cuDNN's tensor-core kernels
want) with cuDNN autotuning. Under autocast the linear PreRNN layer
(``prernn.recurrent.PreRNNLinear``) runs its input GEMMs (fc6's: 25088 -> 4 x 4096 gates)
in autocast's dtype on tensor cores and only its time loop in fp32, the loop as the
Python twin of the CPU's C++ loop through ``torch.compile`` (``train.compile``; fused
gate kernels, ``prernn.recurrent.loops``). With augmentation, the warp runs on the GPU after the copy
(``prernn.data.augment``). Conv recurrences (ResNet's layer4)
run their loop in autograd under autocast like the rest of the network.
All of this is ours: the paper trained on GPUs and publishes none of it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ..recurrent import loops

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceUnavailable(RuntimeError):
    """The trial asked for a device this process cannot see."""


def resolve_device(device: str) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` -> the torch device this process trains on."""
    if device == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if device == "cuda":
        raise DeviceUnavailable("train.device is cuda, but this process sees no CUDA device "
                                "(CUDA_VISIBLE_DEVICES, the driver, or a CPU-only torch build); "
                                "use train.device: auto or cpu, or run it where a GPU is given")
    return torch.device("cpu")


def to_channels_last(net: nn.Module) -> nn.Module:
    """Every conv weight in the layout tensor cores read, module by module: ``channels_last``
    for 2-D kernels, ``channels_last_3d`` for 3-D ones (C3D). ``net.to(memory_format=
    torch.channels_last)`` on the whole network raises on the first 5-D weight ("required rank
    4 tensor to use channels_last format"), so it cannot serve a network with 3-D convs."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            layout = torch.channels_last_3d if isinstance(m, nn.Conv3d) else torch.channels_last
            m.weight.data = m.weight.data.contiguous(memory_format=layout)
    return net


@dataclass(frozen=True)
class Placement:
    """A trial's device and precision, and what follows from them."""

    device: torch.device
    precision: str = "fp32"
    tf32: bool = True  # CUDA: fp32 matmuls and convolutions on tensor cores
    deterministic: bool = False  # CUDA: deterministic cuDNN, no autotuning
    compile: bool = True  # CUDA: the linear PreRNN time loop through torch.compile

    @classmethod
    def of(cls, device: str, precision: str, tf32: bool = True, deterministic: bool = False,
           compile: bool = True) -> "Placement":
        if precision not in DTYPES:
            raise ValueError(f"unknown precision {precision!r}; known: {', '.join(DTYPES)}")
        return cls(resolve_device(device), precision, tf32, deterministic, compile)

    @classmethod
    def of_train(cls, train) -> "Placement":
        """A trial's placement from its ``train`` section (device, precision, tf32, deterministic, compile)."""
        return cls.of(train.device, train.precision, train.tf32, train.deterministic, train.compile)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def name(self) -> str:
        """'cpu' or 'cuda:0', as recorded in the trial's row."""
        return str(self.device)

    @property
    def gpu(self) -> str | None:
        return torch.cuda.get_device_name(self.device) if self.cuda else None

    def autocast(self):
        dtype = DTYPES[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for fp16 (a no-op scaler otherwise)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def prepare(self, net: nn.Module) -> nn.Module:
        """Move a network here; on CUDA also: TF32 (or IEEE fp32) for fp32 matmuls and
        convolutions, cuDNN autotuning unless deterministic, the compiled PreRNN time loop
        unless not ``compile``, conv weights channels-last. These switches are process-wide: a
        process trains one trial at a time."""
        net = net.to(self.device)
        if not self.cuda:
            return net
        precision = "tf32" if self.tf32 else "ieee"
        torch.backends.cuda.matmul.fp32_precision = precision
        torch.backends.cudnn.conv.fp32_precision = precision
        torch.backends.cudnn.benchmark = not self.deterministic
        torch.backends.cudnn.deterministic = self.deterministic
        loops.compile_on = {"cuda"} if self.compile else set()
        if any(isinstance(m, (nn.Conv2d, nn.Conv3d)) for m in net.modules()):
            net = to_channels_last(net)
        return net

    def batch(self, x: Tensor, warp: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """A batch of (B, T, C, H, W) frames or (B, T, C, L, H, W) clips, here, then ``warp``ed
        (the augmentation, when it runs on the device); on CUDA laid out so that each frame
        (clip) the stem sees after flattening B and T is channels-last."""
        x = x.to(self.device, non_blocking=True)
        if warp is not None:
            x = warp(x)
        if not self.cuda or x.dim() not in (5, 6):
            return x
        last = (0, 1, *range(3, x.dim()), 2)  # channels to the end, then back as a view
        back = (0, 1, x.dim() - 1, *range(2, x.dim() - 1))
        return x.permute(last).contiguous().permute(back)
