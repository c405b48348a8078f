"""The shape every backbone is cut into, so PreRNN knows where to operate.

    frame -> stem -> [layer -> φ -> after] for each transformable layer -> head

``stem`` is the per-frame conv part (run batched over B*T); ``layers`` are the
pre-trained layers PreRNN may make recurrent (``fc6``/``fc7`` for VGG16 and C3D,
``layer4`` for ResNet50), in order; ``after`` is what follows each layer's
activation (dropout, or pooling for ResNet); ``head`` maps ``feature_dim`` to the
task's outputs and is always new (the pre-trained classifier is dropped).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..recurrent import ACTIVATIONS


class Backbone(nn.Module):
    def __init__(self, name: str, stem: nn.Module, layers: dict[str, nn.Module],
                 after: dict[str, nn.Module], head: nn.Linear, frame_shape: tuple[int, ...],
                 activation: str = "relu"):
        super().__init__()
        self.name = name
        self.stem = stem
        self.layers = nn.ModuleDict(layers)
        self.after = nn.ModuleDict(after)
        self.head = head
        self.frame_shape = tuple(frame_shape)  # one time step's input, without the batch dim
        self.activation = activation
        self.act = ACTIVATIONS[activation]
        self.feature_dim = head.in_features  # fixed here: a traditional network swaps the head
        self.num_outputs = head.out_features

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(self.layers)

    def apply_layer(self, name: str, x: Tensor) -> Tensor:
        """One transformable layer as the pre-trained network runs it: after(φ(layer(x)))."""
        return self.after[name](self.act(self.layers[name](x)))

    def features(self, x: Tensor) -> Tensor:
        """(N, *frame_shape) -> (N, feature_dim): everything but the head."""
        x = self.stem(x)
        for name in self.layers:
            x = self.apply_layer(name, x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def example_input(self, batch: int = 1, steps: int = 1) -> Tensor:
        """A random (B, T, *frame_shape) input, for smoke tests and benchmarks."""
        p = next(self.parameters())
        return torch.randn(batch, steps, *self.frame_shape, device=p.device, dtype=p.dtype)
