"""VGG16 (torchvision) and mini_vgg (same module names, CPU-sized)."""

from __future__ import annotations

from torch import nn

from .base import Backbone
from .registry import DEFAULT_FILES, register
from .weights import build

# torchvision's file name for VGG16_Weights.IMAGENET1K_V1
VGG16_FILES = DEFAULT_FILES["vgg16"] = ("vgg16-397923af.pth",)


def _cut(name: str, net: nn.Module, num_outputs: int, frame_shape) -> Backbone:
    """torchvision's layout: classifier = [fc6, ReLU, Dropout, fc7, ReLU, Dropout, fc8]."""
    c = net.classifier
    return Backbone(
        name,
        stem=nn.Sequential(net.features, net.avgpool, nn.Flatten(1)),
        layers={"fc6": c[0], "fc7": c[3]},
        after={"fc6": c[2], "fc7": c[5]},
        head=nn.Linear(c[3].out_features, num_outputs),
        frame_shape=frame_shape,
    )


@register("vgg16")
def vgg16(pretrained=False, num_outputs: int = 136) -> Backbone:
    """VGG16: fc6 = classifier.0 (25088 -> 4096), fc7 = classifier.3 (4096 -> 4096)."""
    import torchvision  # here: importing its model zoo costs a second and mini backbones need none of it

    cut = lambda net: _cut("vgg16", net, num_outputs, (3, 224, 224))  # noqa: E731
    return build("vgg16", torchvision.models.vgg16(), pretrained, VGG16_FILES, "classifier.6.", cut)


class MiniVGG(nn.Module):
    """VGG16's topology at CPU scale: three conv blocks (16, 32, 64 channels, each conv 3 x 3
    and a 2 x 2 max pool), then, as in VGG16, fc6 reads the whole flattened conv map -
    6 x 6 x 64 = 2304 -> 128 at the nominal 48 x 48 (the adaptive pool only adapts other
    frame sizes to 6 x 6, as VGG16's does to 7 x 7) - and fc7 128 -> 128."""

    def __init__(self, num_classes: int = 10, width: int = 16, fc: int = 128, grid: int = 6):
        super().__init__()
        layers, c_in = [], 3
        for c_out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((grid, grid))
        self.classifier = nn.Sequential(
            nn.Linear(c_in * grid * grid, fc), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Linear(fc, fc), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Linear(fc, num_classes),
        )


@register("mini_vgg")
def mini_vgg(pretrained=False, num_outputs: int = 136) -> Backbone:
    cut = lambda net: _cut("mini_vgg", net, num_outputs, (3, 48, 48))  # noqa: E731
    return build("mini_vgg", MiniVGG(), pretrained, (), "classifier.6.", cut)
