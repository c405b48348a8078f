"""Training augmentation: random scaling, cropping (translation) and horizontal flipping.

The paper's list; the parameters are ours. One transform is drawn per sequence
and applied to all its frames, so motion stays intact. It is one affine warp
(``grid_sample``), applied to landmarks too: a flip mirrors x and swaps the
left/right landmark indices (``synthetic_face.MIRROR``, the iBUG-68 layout).
Deterministic under a ``torch.Generator``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .synthetic_face import MIRROR


def draw(generator: torch.Generator, scale=(0.9, 1.1), shift: float = 0.1, flip_p: float = 0.5) -> dict:
    """One random transform: zoom ``s``, shift (tx, ty) as a fraction of the frame, flip."""
    u = torch.rand(4, generator=generator)
    return {"s": scale[0] + (scale[1] - scale[0]) * u[0].item(),
            "tx": shift * (2 * u[1].item() - 1), "ty": shift * (2 * u[2].item() - 1),
            "flip": bool(u[3].item() < flip_p)}


def warp_frames(frames: Tensor, t: dict) -> Tensor:
    """(T, C, H, W) uint8 or float -> same shape: output pixel u samples input pixel
    (±u_x / s + tx, u_y / s + ty) in [-1, 1] coordinates (outside: zeros)."""
    sign = -1.0 if t["flip"] else 1.0
    theta = torch.tensor([[sign / t["s"], 0.0, 2 * t["tx"]], [0.0, 1 / t["s"], 2 * t["ty"]]])
    x = frames.float()
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    return out.round().clamp(0, 255).to(frames.dtype) if frames.dtype == torch.uint8 else out


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


def augment(frames: Tensor, landmarks: Tensor | None, generator: torch.Generator, **kw) -> tuple[Tensor, Tensor | None]:
    """One sequence: (T, C, H, W) frames and optional (T, 136) landmarks."""
    t = draw(generator, **kw)
    return warp_frames(frames, t), None if landmarks is None else warp_landmarks(landmarks, t)
