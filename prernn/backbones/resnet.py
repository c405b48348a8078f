"""ResNet50 (torchvision) and mini_resnet (same module names, CPU-sized).

ResNet has no fc6/fc7: its transformable layer is ``layer4``, meaning the *last*
bottleneck block of ``layer4`` (conv5_x). Its pre-activation, conv3/bn3 plus the
shortcut, is the input-to-hidden term ``W * x + b`` and its final ReLU is φ, so
the recurrent hidden state is the block's 2048-channel output map (7 x 7 at 224 px),
pooled afterwards as usual. This choice of layer is ours (the paper does not say
which conv it transforms); with zero U it computes exactly the pre-trained block.
Batch norm stays as in the pre-trained network (trainable, batch statistics in
training mode) - also ours.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Backbone
from .registry import DEFAULT_FILES, register
from .weights import build

# torchvision's file names for ResNet50_Weights.IMAGENET1K_V1 and _V2
RESNET50_FILES = DEFAULT_FILES["resnet50"] = ("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth")


class BottleneckPreact(nn.Module):
    """A torchvision Bottleneck without its final ReLU (the same modules, not copies)."""

    def __init__(self, block: nn.Module):  # torchvision.models.resnet.Bottleneck
        super().__init__()
        self.block = block
        self.out_channels = block.conv3.out_channels

    def forward(self, x: Tensor) -> Tensor:
        b = self.block
        out = b.relu(b.bn1(b.conv1(x)))
        out = b.relu(b.bn2(b.conv2(out)))
        out = b.bn3(b.conv3(out))
        return out + (b.downsample(x) if b.downsample is not None else x)


def _cut(name: str, net: nn.Module, num_outputs: int, frame_shape) -> Backbone:
    *first, last = net.layer4
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                         net.layer1, net.layer2, net.layer3, *first)
    return Backbone(
        name,
        stem=stem,
        layers={"layer4": BottleneckPreact(last)},
        after={"layer4": nn.Sequential(net.avgpool, nn.Flatten(1))},
        head=nn.Linear(net.fc.in_features, num_outputs),
        frame_shape=frame_shape,
    )


@register("resnet50")
def resnet50(pretrained=False, num_outputs: int = 101, in_channels: int = 3) -> Backbone:
    """ResNet50; ``in_channels`` != 3 builds a temporal (optical-flow) stream whose
    first conv is replaced (its pre-trained weights averaged over RGB and repeated:
    the usual cross-modality initialisation, ours to choose)."""
    import torchvision  # here: importing its model zoo costs a second

    cut = lambda net: _cut("resnet50", _set_in_channels(net, in_channels), num_outputs, (in_channels, 224, 224))  # noqa: E731
    return build("resnet50", torchvision.models.resnet50(), pretrained, RESNET50_FILES, "fc.", cut)


class MiniResNet(nn.Module):
    """torchvision's Bottleneck blocks, one per stage, widths 8..32 (output 128 channels)."""

    def __init__(self, num_classes: int = 10, widths=(8, 16, 32, 32), stem_width: int = 16):
        from torchvision.models.resnet import Bottleneck

        super().__init__()
        self.conv1 = nn.Conv2d(3, stem_width, 7, stride=2, padding=3, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        c_in = stem_width
        for i, (planes, stride) in enumerate(zip(widths, (1, 2, 2, 2)), start=1):
            down = nn.Sequential(nn.Conv2d(c_in, planes * 4, 1, stride=stride, bias=False),
                                 nn.BatchNorm2d(planes * 4))
            setattr(self, f"layer{i}", nn.Sequential(Bottleneck(c_in, planes, stride, down)))
            c_in = planes * 4
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)


@register("mini_resnet")
def mini_resnet(pretrained=False, num_outputs: int = 101, in_channels: int = 3) -> Backbone:
    cut = lambda net: _cut("mini_resnet", _set_in_channels(net, in_channels), num_outputs, (in_channels, 64, 64))  # noqa: E731
    return build("mini_resnet", MiniResNet(), pretrained, (), "fc.", cut)


def _set_in_channels(net: nn.Module, in_channels: int) -> nn.Module:
    old = net.conv1
    if in_channels == old.in_channels:
        return net
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
    with torch.no_grad():
        new.weight.copy_(old.weight.mean(dim=1, keepdim=True).expand_as(new.weight))
    net.conv1 = new
    return net
