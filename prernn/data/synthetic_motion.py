"""Synthetic gesture and action video: the mini profile's stand-ins for nvGesture and UCF101 (ours).

Gesture: a hand-like shape (palm and three fingers) on a textured grey background
makes two strokes, one after the other; the class is the ordered pair. The ten
classes are five pairs of strokes, each pair in both orders - right then left /
left then right, up then down / down then up, push then pull / pull then push,
circle clockwise then anticlockwise / the reverse, shake sideways then up-down /
the reverse - with a random start, extent, speed profile and brightness. Each pair
covers the same places in both orders (a stroke and its reverse, or strokes about
the centre), so where the hand is says little about the order. A video is
``steps`` clips of ``clip_frames`` frames; a clip shows one stroke (or the turn
between them), which two classes share, so only the order of the clips tells the
two apart: the set of clips (a per-clip network averaged over the video, the
linear probe of averaged features) leaves a pair of classes to guess between, and a
network that carries context across clips can tell them apart. (An earlier design
with ten single-stroke classes was solved from the set of clips alone - the probe of
the pre-trained mini C3D scored accuracy 1.0 - so it could not show what recurrence
adds.)

Action: a coloured actor (disc or square) does one of five motions - walk,
jump, circle, wave, approach - in front of a coloured textured background while
the camera pans; class = motion x shape (10 classes). The RGB stream sees
colours and shape, the flow stream sees motion: flow is computed exactly from the
generator's known motion (actor: its displacement per pixel; background: the
pan), u and v interleaved, ``FLOW_ZERO + FLOW_SCALE * pixels`` in uint8 like the
usual TV-L1 jpeg exports.

Everything is a deterministic function of the seed.
"""

from __future__ import annotations

import numpy as np

STROKE_PAIRS = (("right", "left"), ("up", "down"), ("push", "pull"), ("circle_cw", "circle_ccw"), ("shake_x", "shake_y"))
GESTURES = tuple(pair for a, b in STROKE_PAIRS for pair in ((a, b), (b, a)))  # class = (first, second) stroke
# a horizontal flip turns these strokes into each other (the others into themselves)
FLIPPED_STROKE = {"right": "left", "left": "right", "circle_cw": "circle_ccw", "circle_ccw": "circle_cw"}
MOTIONS = ("walk", "jump", "circle", "wave", "approach")
SHAPES = ("disc", "square")
ACTIONS = tuple(f"{m}_{s}" for s in SHAPES for m in MOTIONS)
FLOW_ZERO, FLOW_SCALE = 128, 16.0
DIAGONALS = {"up_right": (1, -1), "up_left": (-1, -1), "down_right": (1, 1), "down_left": (-1, 1)}
# pre-training sources (the mini profiles' Sports-1M and ImageNet, ours): other shapes, more classes
SOURCE_MOTIONS = ("right", "left", "up", "down", *DIAGONALS, "circle_cw", "circle_ccw", "push", "pull", "shake_x",
                  "shake_y", "jump", "still")
SOURCE_SHAPES = ("disc", "square", "triangle", "diamond", "cross", "ring", "bar")


def _texture(rng: np.random.Generator, h: int, w: int, smooth: int = 4) -> np.ndarray:
    """Smooth random texture in [0, 1], (h, w)."""
    coarse = rng.random((h // smooth + 2, w // smooth + 2))
    ys, xs = np.linspace(0, coarse.shape[0] - 1.001, h), np.linspace(0, coarse.shape[1] - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    c = coarse
    return ((c[y0][:, x0] * (1 - fx) + c[y0][:, x0 + 1] * fx) * (1 - fy)
            + (c[y0 + 1][:, x0] * (1 - fx) + c[y0 + 1][:, x0 + 1] * fx) * fy)


def _path(kind: str, s: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Centre (n, 2) in [0, 1] frame units and relative scale (n,) along progress s in [0, 1]."""
    a = rng.uniform(0.45, 0.6)  # extent
    c = rng.uniform(0.42, 0.58, size=2)
    scale = np.ones_like(s)
    if kind in ("right", "left", "up", "down", "walk"):
        d = {"right": (1, 0), "left": (-1, 0), "up": (0, -1), "down": (0, 1), "walk": (rng.choice([-1, 1]), 0)}[kind]
        p = c + np.outer(s - 0.5, d) * a * 1.4
    elif kind in ("circle_cw", "circle_ccw", "circle"):
        sign = {"circle_cw": 1, "circle_ccw": -1, "circle": rng.choice([-1, 1])}[kind]
        ang = rng.uniform(0, 2 * np.pi) + sign * 2 * np.pi * s
        p = c + 0.5 * a * np.stack([np.cos(ang), np.sin(ang)], 1)
    elif kind in ("push", "pull", "approach"):
        grow = s if kind in ("push", "approach") else 1 - s
        p, scale = np.tile(c, (len(s), 1)), 0.7 + 0.9 * grow
    elif kind in ("shake_x", "shake_y", "wave"):
        axis = 1 if kind == "shake_y" else 0
        p = np.tile(c, (len(s), 1))
        p[:, axis] += 0.4 * a * np.sin(2 * np.pi * rng.uniform(1.5, 2.5) * s + rng.uniform(0, 2 * np.pi))
    elif kind in DIAGONALS:
        d = np.array(DIAGONALS[kind]) / np.sqrt(2)
        p = c + np.outer(s - 0.5, d) * a * 1.4
    elif kind == "still":
        p = np.tile(c, (len(s), 1)) + rng.normal(0, 0.005, (len(s), 2))
    elif kind == "jump":
        p = np.tile(c, (len(s), 1))
        p[:, 1] += 0.25 - 0.5 * a * np.abs(np.sin(2 * np.pi * rng.uniform(1.0, 1.5) * s))
    else:
        raise ValueError(f"unknown motion {kind!r}")
    return p, scale


def _progress(n: int, rng: np.random.Generator) -> np.ndarray:
    """0..1 over n frames with a random speed profile (ease in/out, or uneven)."""
    return np.linspace(0, 1, n) ** rng.uniform(0.7, 1.4)


def _strokes(pair: tuple[str, str], n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Centre (n, 2) and scale (n,) of two strokes over n frames, the second starting where
    the first ended (position and size), the pair centred in the frame."""
    half = n // 2
    p1, s1 = _path(pair[0], _progress(half, rng), rng)
    p2, s2 = _path(pair[1], _progress(n - half, rng), rng)
    p2 = p2 - p2[0] + p1[-1]
    s2 = s2 * (s1[-1] / s2[0])
    p = np.concatenate([p1, p2])
    p = p - (p.max(0) + p.min(0)) / 2 + rng.uniform(0.45, 0.55, size=2)  # the whole gesture inside the frame
    return p, np.concatenate([s1, s2])


def gesture_mirror() -> tuple[int, ...]:
    """Per gesture class, the class its horizontally flipped video shows (``Split.mirror``)."""
    flip = lambda stroke: FLIPPED_STROKE.get(stroke, stroke)  # noqa: E731
    return tuple(GESTURES.index((flip(a), flip(b))) for a, b in GESTURES)


def gesture_videos(videos: int, steps: int, clip_frames: int, size: int, seed: int):
    """uint8 (N, steps, 1, clip_frames, size, size) grey clips and int64 (N,) classes."""
    rng = np.random.default_rng(seed)
    n = steps * clip_frames
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((videos, n, size, size), np.uint8)
    labels = rng.integers(len(GESTURES), size=videos)
    for v in range(videos):
        centre, scale = _strokes(GESTURES[labels[v]], n, rng)
        bg = 0.2 + 0.3 * _texture(rng, size, size)
        bright = rng.uniform(0.8, 1.0)
        r = rng.uniform(0.11, 0.14) * scale
        fingers = np.array([[-0.9, -1.3], [0.0, -1.5], [0.9, -1.3]])
        for t in range(n):
            dy, dx = yy - centre[t, 1], xx - centre[t, 0]
            hand = (dx / r[t]) ** 2 + (dy / (1.2 * r[t])) ** 2 <= 1
            for fx, fy in fingers:
                hand |= (dx - fx * r[t] * 0.6) ** 2 + (dy - fy * r[t] * 0.8) ** 2 <= (0.35 * r[t]) ** 2
            frame = np.where(hand, bright, bg) + rng.normal(0, 0.04, (size, size))
            out[v, t] = np.clip(frame * 255, 0, 255).astype(np.uint8)
    clips = out.reshape(videos, steps, clip_frames, 1, size, size).transpose(0, 1, 3, 2, 4, 5)
    return np.ascontiguousarray(clips), labels.astype(np.int64)


def action_videos(videos: int, steps: int, flow_stack: int, size: int, seed: int, gap: int = 3):
    """uint8 RGB (N, steps, 3, size, size), uint8 flow (N, steps, 2 * flow_stack, size, size)
    and int64 (N,) classes. Step t shows frame t * gap and the flow of frames
    t * gap .. t * gap + flow_stack - 1 (each to the next)."""
    rng = np.random.default_rng(seed)
    n = (steps - 1) * gap + flow_stack + 1  # frames 0..n-1
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    rgb = np.empty((videos, steps, 3, size, size), np.uint8)
    flow = np.empty((videos, steps, 2 * flow_stack, size, size), np.uint8)
    labels = rng.integers(len(ACTIONS), size=videos)
    for v in range(videos):
        motion, shape = MOTIONS[labels[v] % len(MOTIONS)], SHAPES[labels[v] // len(MOTIONS)]
        centre, scale = _path(motion, _progress(n, rng), rng)
        centre = centre * size
        radius = rng.uniform(0.1, 0.14) * size * scale
        pan = rng.integers(-1, 2, size=2)  # camera velocity, whole pixels per frame
        world = _texture(rng, size + 2 * n + 2, size + 2 * n + 2, smooth=6)
        tint = rng.uniform(0.2, 0.8, size=3)
        colour = rng.uniform(0.3, 1.0, size=3)
        cam = np.array([n + 1, n + 1]) + np.outer(np.arange(n + 1), pan)  # (x, y) of the view in the world
        frames, masks = [], []
        for t in range(n + 1):
            x0, y0 = cam[t]
            bg = world[y0:y0 + size, x0:x0 + size][None] * tint[:, None, None]
            dx, dy = xx - centre[min(t, n - 1), 0], yy - centre[min(t, n - 1), 1]
            r = radius[min(t, n - 1)]
            mask = (dx ** 2 + dy ** 2 <= r ** 2) if shape == "disc" else (np.maximum(abs(dx), abs(dy)) <= 0.85 * r)
            frames.append(np.where(mask[None], colour[:, None, None], bg))
            masks.append((mask, dx, dy, r))
        noise = rng.normal(0, 0.03, (steps, 3, size, size))
        rgb[v] = np.clip((np.stack(frames[:n:gap][:steps]) + noise) * 255, 0, 255).astype(np.uint8)
        # exact flow frame k -> k+1: background moves by -pan; an actor pixel keeps its place relative to
        # the actor's centre and scale: p' = c' + (p - c) * r' / r
        fields = []
        for k in range(n - 1):
            mask, dx, dy, r = masks[k]
            r1 = radius[k + 1]
            u = np.where(mask, centre[k + 1, 0] + dx * r1 / r - xx, -pan[0])
            w = np.where(mask, centre[k + 1, 1] + dy * r1 / r - yy, -pan[1])
            fields.append(np.stack([u, w]))
        fields = np.stack(fields)  # (n - 1, 2, size, size)
        for t in range(steps):
            stack = fields[t * gap:t * gap + flow_stack].reshape(2 * flow_stack, size, size)
            flow[v, t] = np.clip(np.round(FLOW_ZERO + FLOW_SCALE * stack), 0, 255).astype(np.uint8)
    return rgb, flow, labels.astype(np.int64)


def shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Pixels of ``shape`` of radius ``r`` centred where (dx, dy) = 0."""
    ax, ay = np.abs(dx), np.abs(dy)
    return {"disc": dx ** 2 + dy ** 2 <= r ** 2,
            "square": np.maximum(ax, ay) <= 0.85 * r,
            "triangle": (dy <= 0.7 * r) & (dy >= -r + 2 * ax),
            "diamond": ax + ay <= r,
            "cross": ((ax <= 0.3 * r) & (ay <= r)) | ((ay <= 0.3 * r) & (ax <= r)),
            "ring": (dx ** 2 + dy ** 2 <= r ** 2) & (dx ** 2 + dy ** 2 >= (0.55 * r) ** 2),
            "bar": (ax <= r) & (ay <= 0.35 * r)}[shape]


def motion_clips(n: int, clip_frames: int, size: int, seed: int):
    """Pre-training source for the gesture task: single grey clips of one of the
    ``SOURCE_SHAPES`` moving along one of the ``SOURCE_MOTIONS`` (the label), over a
    textured background. uint8 (n, 1, clip_frames, size, size), int64 (n,)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    clips = np.empty((n, 1, clip_frames, size, size), np.uint8)
    labels = rng.integers(len(SOURCE_MOTIONS), size=n)
    for i in range(n):
        centre, scale = _path(SOURCE_MOTIONS[labels[i]], _progress(clip_frames, rng), rng)
        shape = SOURCE_SHAPES[rng.integers(len(SOURCE_SHAPES))]
        bg = 0.2 + 0.3 * _texture(rng, size, size)
        bright, r = rng.uniform(0.7, 1.0), rng.uniform(0.1, 0.15) * scale
        for t in range(clip_frames):
            mask = shape_mask(shape, xx - centre[t, 0], yy - centre[t, 1], r[t])
            frame = np.where(mask, bright, bg) + rng.normal(0, 0.04, (size, size))
            clips[i, 0, t] = np.clip(frame * 255, 0, 255).astype(np.uint8)
    return clips, labels.astype(np.int64)


def shape_frames(n: int, size: int, seed: int):
    """Pre-training source for the action task's spatial stream: single RGB frames of one
    of the ``SOURCE_SHAPES``, small or large (the label: 14 classes), in a random colour
    over a tinted texture. uint8 (n, 3, size, size), int64 (n,)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.empty((n, 3, size, size), np.uint8)
    labels = rng.integers(2 * len(SOURCE_SHAPES), size=n)
    for i in range(n):
        shape, large = SOURCE_SHAPES[labels[i] // 2], labels[i] % 2
        r = size * (rng.uniform(0.16, 0.22) if large else rng.uniform(0.08, 0.12))
        c = rng.uniform(0.3, 0.7, 2) * size
        bg = _texture(rng, size, size, smooth=6)[None] * rng.uniform(0.2, 0.8, 3)[:, None, None]
        img = np.where(shape_mask(shape, xx - c[0], yy - c[1], r)[None], rng.uniform(0.3, 1.0, 3)[:, None, None], bg)
        out[i] = np.clip((img + rng.normal(0, 0.03, img.shape)) * 255, 0, 255).astype(np.uint8)
    return out, labels.astype(np.int64)


def motion_flows(n: int, flow_stack: int, size: int, seed: int):
    """Pre-training source for the action task's temporal stream: exact flow stacks of a
    random shape moving along one of the ``SOURCE_MOTIONS`` (the label) while the camera
    pans. uint8 (n, 2 * flow_stack, size, size), int64 (n,)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.empty((n, 2 * flow_stack, size, size), np.uint8)
    labels = rng.integers(len(SOURCE_MOTIONS), size=n)
    for i in range(n):
        centre, scale = _path(SOURCE_MOTIONS[labels[i]], _progress(flow_stack + 1, rng), rng)
        centre, radius = centre * size, rng.uniform(0.1, 0.15) * size * scale
        shape, pan = SOURCE_SHAPES[rng.integers(len(SOURCE_SHAPES))], rng.integers(-1, 2, size=2)
        fields = []
        for k in range(flow_stack):
            dx, dy = xx - centre[k, 0], yy - centre[k, 1]
            mask, ratio = shape_mask(shape, dx, dy, radius[k]), radius[k + 1] / radius[k]
            fields.append([np.where(mask, centre[k + 1, 0] + dx * ratio - xx, -pan[0]),
                           np.where(mask, centre[k + 1, 1] + dy * ratio - yy, -pan[1])])
        stack = np.asarray(fields).reshape(2 * flow_stack, size, size)
        out[i] = np.clip(np.round(FLOW_ZERO + FLOW_SCALE * stack), 0, 255).astype(np.uint8)
    return out, labels.astype(np.int64)
