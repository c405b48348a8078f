"""Training augmentation: random scaling, cropping (translation) and horizontal flipping.

The paper's list; the parameters are ours. One transform is drawn per sequence and
applied to all its frames (and to every frame of a C3D clip), so motion stays intact.
It is one affine warp (``grid_sample``), applied to what the frames show too:

- landmarks move with the frames; a flip mirrors x and swaps the left/right landmark
  indices (``synthetic_face.MIRROR``, the iBUG-68 layout);
- optical flow (u, v interleaved, 128 = no motion) is a field of displacements: a
  zoom by ``s`` scales them by ``s`` and a flip negates u (ours: the usual two-stream
  code flips the flow image only, which leaves u pointing the wrong way);
- a class can be direction-dependent (a gesture to the left, flipped, is a gesture to
  the right): ``Split.mirror`` gives, per class, the class a flipped video shows, or
  ``NO_FLIP`` where no class is one (such videos are never flipped).

Deterministic: a sequence's transform comes from its own ``torch.Generator``
(``prernn.data.loader`` seeds one per epoch and video, whatever the worker reading it).

Where the warp runs (ours): on the CPU, in the process or worker that reads the batch; for
a trial on a GPU, the workers only draw each sequence's transform (``Augment.transform``)
and the warp runs on the GPU after the copy (``Augment.warp_batch``, every sequence of the
batch in one ``grid_sample``), so that the CPUs only decode. Both warp from the same
draws: on the CPU the two give identical frames (a test checks it); on a GPU, whose
``grid_sample`` rounds differently, a pixel may differ by one grey level where the
sampled value lies within rounding of a half (``DEVICE_TOLERANCE``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .synthetic_face import MIRROR

NO_FLIP = -1  # in Split.mirror: a flipped video of this class shows no class; never flip it
DEVICE_TOLERANCE = 1  # grey levels a frame warped on a GPU may differ by from the CPU's warp


def draw(generator: torch.Generator, scale=(0.9, 1.1), shift: float = 0.1, flip_p: float = 0.5) -> dict:
    """One random transform: zoom ``s``, shift (tx, ty) as a fraction of the frame, flip."""
    u = torch.rand(4, generator=generator)
    return {"s": scale[0] + (scale[1] - scale[0]) * u[0].item(),
            "tx": shift * (2 * u[1].item() - 1), "ty": shift * (2 * u[2].item() - 1),
            "flip": bool(u[3].item() < flip_p)}


def _theta(t: dict) -> list[list[float]]:
    """The affine map of ``t`` in ``affine_grid``'s [-1, 1] coordinates (computed in Python floats)."""
    sign = -1.0 if t["flip"] else 1.0
    return [[sign / t["s"], 0.0, 2 * t["tx"]], [0.0, 1 / t["s"], 2 * t["ty"]]]


def _warp(x: Tensor, theta: Tensor, dtype: torch.dtype) -> Tensor:
    """(N, C, H, W) float images, (N, 2, 3) maps -> warped, back in ``dtype`` (uint8: rounded)."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    return out.round().clamp(0, 255).to(dtype) if dtype == torch.uint8 else out


def warp_frames(frames: Tensor, t: dict) -> Tensor:
    """(T, C, H, W) or (T, C, L, H, W) clips, uint8 or float -> same shape: output pixel u
    samples input pixel (±u_x / s + tx, u_y / s + ty) in [-1, 1] coordinates (outside: zeros);
    every frame of every clip alike."""
    return _warp_sequences(frames[None], [t])[0]


def warp_batch(frames: Tensor, transforms: Tensor, flow: bool = False) -> Tensor:
    """(B, T, C, H, W) frames or (B, T, C, L, H, W) clips (or flow, ``flow``), on any device, each
    sequence under its row of ``transforms`` ((B, 4) on the CPU: s, tx, ty, flip; ``as_rows``):
    what ``warp_frames`` / ``warp_flow`` give sequence by sequence, in one ``grid_sample``."""
    return _warp_sequences(frames, [{"s": s, "tx": tx, "ty": ty, "flip": bool(f)}
                                    for s, tx, ty, f in transforms.tolist()], flow)


def _warp_sequences(frames: Tensor, ts: list[dict], flow: bool = False) -> Tensor:
    """Sequence b of (B, T, ...) frames (or flow) under transform ``ts[b]``, all in one grid_sample
    (the maps made in Python floats, then float32)."""
    B, T = frames.shape[:2]
    clips = frames.dim() == 6
    x = frames.transpose(2, 3) if clips else frames  # (B, T, L, C, H, W): a clip's frames next to each other
    per_seq = T * (x.shape[2] if clips else 1)
    flat = x.reshape(B * per_seq, *x.shape[-3:])
    theta = torch.tensor([_theta(t) for t in ts], device=frames.device).repeat_interleave(per_seq, 0)
    if not flow:
        out = _warp(flat.float(), theta, frames.dtype)
    else:  # a field of displacements: moved like the frames (outside: 0, no motion), then scaled
        moved = _warp(flat.float() - 128, theta, torch.float32)
        gain = torch.tensor([_gain(t, flat.shape[1]) for t in ts], device=frames.device)
        moved = moved.view(B, per_seq, *flat.shape[1:]) * gain[:, None, :, None, None]
        out = (moved + 128).round().clamp(0, 255).to(torch.uint8)
    out = out.reshape(x.shape)
    return out.transpose(2, 3) if clips else out


def as_rows(ts: list[dict]) -> Tensor:
    """Transforms as a (B, 4) float64 tensor (s, tx, ty, flip), to travel with their batch."""
    return torch.tensor([[t["s"], t["tx"], t["ty"], float(t["flip"])] for t in ts], dtype=torch.float64)


def _gain(t: dict, channels: int) -> list[float]:
    """Per flow channel (u, v interleaved): the zoom, with u negated on a flip."""
    return [t["s"] * (-1.0 if t["flip"] and c % 2 == 0 else 1.0) for c in range(channels)]


def warp_flow(flow: Tensor, t: dict) -> Tensor:
    """(T, 2K, H, W) uint8 flow (u, v interleaved, 128 = none) -> the flow of the warped video:
    moved like the frames (outside: no motion), scaled by the zoom, u negated on a flip."""
    return _warp_sequences(flow[None], [t], flow=True)[0]


def warp_landmarks(points: Tensor, t: dict) -> Tensor:
    """(T, 136) landmarks in [0, 1] frame coordinates -> where ``warp_frames`` puts them."""
    p = points.unflatten(-1, (-1, 2)) * 2 - 1  # to [-1, 1]
    sign = -1.0 if t["flip"] else 1.0
    x = (p[..., 0] - 2 * t["tx"]) * t["s"] * sign
    y = (p[..., 1] - 2 * t["ty"]) * t["s"]
    out = (torch.stack([x, y], -1) + 1) / 2
    if t["flip"]:
        out = out[..., torch.as_tensor(MIRROR), :]  # the subject's left eye is now on the other side
    return out.flatten(-2)


@dataclass(frozen=True)
class Augment:
    """What one stream's training sequences are: landmark targets, flow, or a class with a mirror."""

    landmarks: bool = False
    flow: bool = False
    mirror: tuple[int, ...] | None = None  # per class: its class when flipped (NO_FLIP: never flip)

    def transform(self, target: Tensor, generator: torch.Generator) -> tuple[dict, Tensor]:
        """One sequence's transform, drawn, and its target under it ((T, 136) landmarks moved, or
        a class mirrored)."""
        t = draw(generator)
        if t["flip"] and self.mirror is not None and not self.landmarks:
            flipped = self.mirror[int(target)]
            if flipped == NO_FLIP:
                t["flip"] = False
            else:
                target = torch.as_tensor(flipped, dtype=target.dtype)
        return t, warp_landmarks(target, t) if self.landmarks else target

    def __call__(self, frames: Tensor, target: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """One sequence: (T, ...) frames and its target ((T, 136) landmarks or a class)."""
        t, target = self.transform(target, generator)
        return warp_flow(frames, t) if self.flow else warp_frames(frames, t), target

    def warp_batch(self, frames: Tensor, transforms: Tensor) -> Tensor:
        """A batch's frames (or flow), each sequence under its drawn transform (``as_rows``)."""
        return warp_batch(frames, transforms, self.flow)
