"""Synthetic 68-landmark face video: the mini profile's stand-in for 300VW (ours).

A parametric face in the iBUG-68 layout (jaw 0-16, brows 17-26, nose 27-35,
eyes 36-47, mouth 48-67) drifts smoothly in position, scale, roll and expression
(mouth opening, brow raise, blinks); it is drawn as grey strokes on a shaded
head with background texture. Some frames are corrupted - heavy noise, blur or
an occluding block - so that a frame alone is ambiguous and temporal context
helps. Everything is a deterministic function of the seed.
"""

from __future__ import annotations

import numpy as np

N_POINTS = 68
# left/right mirror of the 68 points (used by flip augmentation; a flip maps point i to MIRROR[i])
MIRROR = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65]
)
# strokes drawn between consecutive points (closed loops repeat their first point)
STROKES = [
    list(range(0, 17)), list(range(17, 22)), list(range(22, 27)), list(range(27, 31)), list(range(31, 36)),
    list(range(36, 42)) + [36], list(range(42, 48)) + [42], list(range(48, 60)) + [48], list(range(60, 68)) + [60],
]


def _arc(n, cx, cy, rx, ry, a0, a1):
    a = np.linspace(a0, a1, n)
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], 1)


# a face's identity: the shape parameters that differ between people (the template's defaults)
IDENTITY = {"jaw_w": 0.42, "jaw_h": 0.52, "eye_dx": 0.2, "eye_w": 0.09, "eye_y": -0.1, "brow_dy": 0.0,
            "nose": 0.23, "mouth_w": 0.17, "mouth_y": 0.3}
SPREAD = {"jaw_w": 0.05, "jaw_h": 0.05, "eye_dx": 0.03, "eye_w": 0.015, "eye_y": 0.03, "brow_dy": 0.03,
          "nose": 0.04, "mouth_w": 0.03, "mouth_y": 0.03}


def random_identity(rng) -> dict:
    """Shape parameters of a new face, each uniform within +-SPREAD of the default."""
    return {k: v + SPREAD[k] * rng.uniform(-1, 1) for k, v in IDENTITY.items()}


def face_template(mouth_open: float = 0.0, brow_raise: float = 0.0, eye_open: float = 1.0,
                  identity: dict | None = None) -> np.ndarray:
    """(68, 2) points in a unit face frame (x right, y down, centre at 0)."""
    f = identity or IDENTITY
    jaw = _arc(17, 0, -0.1, f["jaw_w"], f["jaw_h"], np.pi, 0)  # image-left ear, round the chin, image-right ear
    brow_y = f["eye_y"] - 0.12 + f["brow_dy"] - 0.06 * brow_raise
    brow_r = _arc(5, -f["eye_dx"], brow_y + 0.05, 0.13, 0.05, np.pi * 1.05, np.pi * 1.95)
    brow_l = _arc(5, f["eye_dx"], brow_y + 0.05, 0.13, 0.05, np.pi * 1.05, np.pi * 1.95)
    bridge = np.stack([np.zeros(4), np.linspace(f["eye_y"] - 0.05, f["eye_y"] - 0.05 + f["nose"], 4)], 1)
    tip = f["eye_y"] + f["nose"] - 0.03
    nostrils = np.stack([np.linspace(-0.08, 0.08, 5), tip + 0.02 * np.abs(np.linspace(-1, 1, 5))], 1)

    def eye(cx):  # left corner, two upper points, right corner, two lower points
        ang = np.array([1.0, 1.25, 1.75, 0.0, 0.25, 0.75]) * np.pi
        return np.stack([cx + f["eye_w"] * np.cos(ang), f["eye_y"] + (0.05 * eye_open + 0.006) * np.sin(ang)], 1)
    m = 0.02 + 0.1 * mouth_open
    ang12 = np.pi - np.arange(12) * (2 * np.pi / 12)
    outer = np.stack([f["mouth_w"] * np.cos(ang12), f["mouth_y"] + (0.04 + m / 2) * -np.sin(ang12)], 1)
    ang8 = np.pi - np.arange(8) * (2 * np.pi / 8)
    inner = np.stack([0.65 * f["mouth_w"] * np.cos(ang8), f["mouth_y"] + (m / 2) * -np.sin(ang8)], 1)
    return np.concatenate([jaw, brow_r, brow_l, bridge, nostrils, eye(-f["eye_dx"]), eye(f["eye_dx"]), outer, inner])


def _smooth(rng, T, n_waves=3, scale=1.0, freq=(0.02, 0.12)):
    """A smooth random signal of length T: a sum of slow sinusoids (``freq``: cycles per frame)."""
    t = np.arange(T)[:, None]
    freq = rng.uniform(*freq, n_waves)
    phase = rng.uniform(0, 2 * np.pi, n_waves)
    amp = rng.uniform(0.3, 1.0, n_waves) / n_waves
    return scale * (amp * np.sin(2 * np.pi * freq * t + phase)).sum(1)


def _landmarks(rng, T, size, identity: dict):
    mouth = np.clip(0.5 + _smooth(rng, T, scale=1.2), 0, 1)
    brow = _smooth(rng, T, scale=1.0)
    blink = np.ones(T)
    for start in rng.choice(T, size=max(1, T // 12), replace=False):
        blink[start:start + 2] = 0.1
    # a head moves slowly next to the frame rate (video at 25 fps; a period of 25-200 frames), so
    # the frames before an occlusion say where the face is during it; expressions change faster
    pose = (0.005, 0.04)
    scale = size * (0.55 + 0.08 * _smooth(rng, T, freq=pose)) * rng.uniform(0.9, 1.1)
    cx = size * (0.5 + 0.08 * _smooth(rng, T, freq=pose))
    cy = size * (0.5 + 0.08 * _smooth(rng, T, freq=pose))
    roll = 0.25 * _smooth(rng, T, freq=pose)
    return np.stack([_place(face_template(mouth[t], brow[t], blink[t], identity), scale[t], roll[t], cx[t], cy[t])
                     for t in range(T)])


def _place(points, scale, roll, cx, cy):
    c, s = np.cos(roll), np.sin(roll)
    return points * scale @ np.array([[c, s], [-s, c]]) + [cx, cy]


def _draw(pts, size, rng, yy, xx):
    """Grey strokes through the landmarks on a shaded head and textured background."""
    img = 0.35 + 0.1 * np.sin(xx / size * rng.uniform(2, 6) + rng.uniform(0, 6)) * np.cos(yy / size * rng.uniform(2, 6))
    centre = pts[:17].mean(0) * [1, 0] + [0, pts[27:31, 1].mean()]
    rx, ry = np.ptp(pts[:17, 0]) / 2 + 1, np.ptp(pts[:, 1]) / 1.6 + 1
    head = ((xx - centre[0]) / rx) ** 2 + ((yy - centre[1]) / ry) ** 2 < 1
    img = np.where(head, 0.6, img)
    seg = np.concatenate([np.stack([pts[s[:-1]], pts[s[1:]]], 1) for s in STROKES])  # (S, 2, 2)
    w = np.linspace(0, 1, 8)[None, :, None]
    samples = (seg[:, :1] * (1 - w) + seg[:, 1:] * w).reshape(-1, 2)
    ix = np.clip(np.round(samples).astype(int), 0, size - 1)
    ink = np.zeros((size, size))
    np.add.at(ink, (ix[:, 1], ix[:, 0]), 1.0)
    ink = _blur(np.minimum(ink, 1.0), 0.7)
    return img - 0.9 * ink / max(ink.max(), 1e-6) * 0.6


def _blur(img, sigma):
    r = max(1, int(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    img = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 0, img)
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 1, img)


def _occlude(img, rng, size, strength: float):
    """A block over ``strength`` of the frame's width and height, of one grey."""
    h, w = (np.array([strength, strength]) * size * rng.uniform(0.8, 1.0, 2)).astype(int)
    y0, x0 = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
    img[y0:y0 + h, x0:x0 + w] = rng.uniform(0.1, 0.9)
    return img


def make_videos(n_videos: int, frames: int, size: int, seed: int, corrupt: float = 0.1, blocks: float = 1.5,
                hidden_mask: bool = False):
    """-> (frames uint8 (N, T, size, size), landmarks float32 (N, T, 68, 2) in pixels), and with
    ``hidden_mask`` a bool (N, T) of the frames in occluded runs (for diagnostics).

    Each video is a new identity. Single frames are corrupted with probability
    ``corrupt`` (an occluder, blur or heavy noise), and each video has on average
    ``blocks`` runs of 3-5 consecutive frames hidden behind a large occluder or heavy
    noise: there a frame alone says little, the frames before it say much."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    video = np.empty((n_videos, frames, size, size), np.uint8)
    marks = np.empty((n_videos, frames, N_POINTS, 2), np.float32)
    hiddens = np.zeros((n_videos, frames), bool)
    for v in range(n_videos):
        pts = _landmarks(rng, frames, size, random_identity(rng))
        marks[v] = pts
        hidden = hiddens[v]
        for _ in range(rng.poisson(blocks)):
            start = rng.integers(1, max(2, frames - 2))  # never the first frame: something to carry over
            hidden[start:start + rng.integers(3, 6)] = True
        for t in range(frames):
            img = _draw(pts[t], size, rng, yy, xx)
            if hidden[t]:
                img = _occlude(img, rng, size, 0.75) if rng.random() < 0.5 else img + rng.normal(0, 0.6, img.shape)
            else:
                kind = rng.random()
                if kind < corrupt / 3:  # occluder
                    img = _occlude(img, rng, size, 0.4)
                elif kind < 2 * corrupt / 3:  # motion-like blur
                    img = _blur(img, 1.6)
                elif kind < corrupt:  # heavy noise
                    img = img + rng.normal(0, 0.25, img.shape)
            img = img + rng.normal(0, 0.03, img.shape)
            video[v, t] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return (video, marks, hiddens) if hidden_mask else (video, marks)


# the pre-training source task: attributes of single faces, each binned into a few classes
ATTRIBUTES = {"roll": (-0.5, 0.5, 5), "mouth": (0.0, 1.0, 3), "cx": (0.38, 0.62, 5), "cy": (0.4, 0.6, 5),
              "scale": (0.45, 0.65, 4), "brow": (-1.0, 1.0, 3)}  # name: (low, high, bins)
ATTRIBUTE_CLASSES = tuple(bins for _, _, bins in ATTRIBUTES.values())


def make_faces(n: int, size: int, seed: int, corrupt: float = 0.1):
    """Single faces for pre-training (the mini profile's ImageNet, ours): every face a new
    identity in a random pose and expression, wider than the videos' (roll, position and
    scale), labelled with each attribute of ``ATTRIBUTES`` binned into equal ranges - a
    multi-attribute classification, as CelebA's. -> (frames uint8 (N, size, size),
    classes int64 (N, len(ATTRIBUTES)))."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    images = np.empty((n, size, size), np.uint8)
    labels = np.empty((n, len(ATTRIBUTES)), np.int64)
    for i in range(n):
        a = {k: rng.uniform(low, high) for k, (low, high, _) in ATTRIBUTES.items()}
        face = face_template(a["mouth"], a["brow"], rng.choice([1.0, 0.1], p=[0.9, 0.1]), random_identity(rng))
        img = _draw(_place(face, size * a["scale"], a["roll"], size * a["cx"], size * a["cy"]), size, rng, yy, xx)
        if rng.random() < corrupt:
            img = _occlude(img, rng, size, 0.4)
        images[i] = np.clip((img + rng.normal(0, 0.03, img.shape)) * 255, 0, 255).astype(np.uint8)
        labels[i] = [min(bins - 1, int((a[k] - low) / (high - low) * bins)) for k, (low, high, bins) in ATTRIBUTES.items()]
    return images, labels
