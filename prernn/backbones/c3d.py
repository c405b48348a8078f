"""C3D (Tran et al. 2015, the standard definition) and mini_c3d (same names, CPU-sized).

Module names follow the weights commonly shipped as a state dict (Sports-1M):
conv1, conv2, conv3a, conv3b, conv4a, conv4b, conv5a, conv5b, fc6, fc7, fc8.
Input: a clip of 3 x 16 x 112 x 112 (C, L, H, W); one clip per PreRNN time step.
"""

from __future__ import annotations

from torch import Tensor, nn

from .base import Backbone
from .registry import DEFAULT_FILES, register
from .weights import build

C3D_FILES = DEFAULT_FILES["c3d"] = ("c3d.pickle", "c3d.pth", "c3d.pt")


class C3D(nn.Module):
    def __init__(self, num_classes: int = 487, widths=(64, 128, 256, 512, 512),
                 fc: int = 4096, fc6_in: int = 8192):
        super().__init__()
        w1, w2, w3, w4, w5 = widths
        conv = lambda i, o: nn.Conv3d(i, o, kernel_size=3, padding=1)  # noqa: E731
        self.conv1, self.pool1 = conv(3, w1), nn.MaxPool3d((1, 2, 2), (1, 2, 2))
        self.conv2, self.pool2 = conv(w1, w2), nn.MaxPool3d(2, 2)
        self.conv3a, self.conv3b, self.pool3 = conv(w2, w3), conv(w3, w3), nn.MaxPool3d(2, 2)
        self.conv4a, self.conv4b, self.pool4 = conv(w3, w4), conv(w4, w4), nn.MaxPool3d(2, 2)
        self.conv5a, self.conv5b = conv(w4, w5), conv(w5, w5)
        self.pool5 = nn.MaxPool3d(2, 2, padding=(0, 1, 1))
        self.fc6, self.fc7, self.fc8 = nn.Linear(fc6_in, fc), nn.Linear(fc, fc), nn.Linear(fc, num_classes)
        self.relu, self.dropout = nn.ReLU(), nn.Dropout(0.5)
        # He init for random weights (ours): with torch's default init the signal of eight plain
        # conv layers and two fc layers fades to nothing and a randomly initialised C3D does not train
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def conv_features(self, x: Tensor) -> Tensor:  # (N, 3, L, H, W) -> (N, fc6_in)
        r = self.relu
        x = self.pool1(r(self.conv1(x)))
        x = self.pool2(r(self.conv2(x)))
        x = self.pool3(r(self.conv3b(r(self.conv3a(x)))))
        x = self.pool4(r(self.conv4b(r(self.conv4a(x)))))
        x = self.pool5(r(self.conv5b(r(self.conv5a(x)))))
        return x.flatten(1)


class _Stem(nn.Module):
    def __init__(self, net: C3D):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net.conv_features(x)


def _cut(name: str, net: C3D, num_outputs: int, frame_shape) -> Backbone:
    fc6, fc7 = net.fc6, net.fc7
    del net.fc6, net.fc7, net.fc8  # the stem keeps only the conv part
    return Backbone(
        name,
        stem=_Stem(net),
        layers={"fc6": fc6, "fc7": fc7},
        after={"fc6": nn.Dropout(0.5), "fc7": nn.Dropout(0.5)},
        head=nn.Linear(fc7.out_features, num_outputs),
        frame_shape=frame_shape,
    )


@register("c3d")
def c3d(pretrained=False, num_outputs: int = 25) -> Backbone:
    """C3D: fc6 8192 -> 4096, fc7 4096 -> 4096 on 3 x 16 x 112 x 112 clips."""
    cut = lambda net: _cut("c3d", net, num_outputs, (3, 16, 112, 112))  # noqa: E731
    return build("c3d", C3D(), pretrained, C3D_FILES, "fc8.", cut)


@register("mini_c3d")
def mini_c3d(pretrained=False, num_outputs: int = 25) -> Backbone:
    """C3D's topology on 3 x 16 x 32 x 32 clips: widths 8..64, fc6 256 -> 128, fc7 128 -> 128."""
    net = C3D(widths=(8, 16, 32, 64, 64), fc=128, fc6_in=64 * 1 * 2 * 2)
    cut = lambda net: _cut("mini_c3d", net, num_outputs, (3, 16, 32, 32))  # noqa: E731
    return build("mini_c3d", net, pretrained, (), "fc8.", cut)
