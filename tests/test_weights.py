"""Pre-trained weights load from local files; a missing file says where it was looked for."""

import pytest
import torch

from prernn import backbones
from prernn.backbones.c3d import C3D
from prernn.backbones.vgg import MiniVGG


def test_mini_weights_round_trip(tmp_path):
    torch.manual_seed(1)
    src = MiniVGG(num_classes=3)
    torch.save(src.state_dict(), tmp_path / "w.pt")
    b = backbones.create("mini_vgg", pretrained=tmp_path / "w.pt", num_outputs=136)
    assert torch.equal(b.layers["fc6"].weight, src.classifier[0].weight)
    assert torch.equal(b.layers["fc7"].bias, src.classifier[3].bias)
    assert torch.equal(b.stem[0][0].weight, src.features[0].weight)
    assert b.head.out_features == 136  # the pre-trained classifier is dropped


def test_c3d_standard_key_names_and_default_lookup(tmp_path, monkeypatch):
    torch.manual_seed(2)
    src = C3D(widths=(8, 16, 32, 64, 64), fc=128, fc6_in=256)
    keys = {k.split(".")[0] for k in src.state_dict()}
    assert keys == {"conv1", "conv2", "conv3a", "conv3b", "conv4a", "conv4b", "conv5a", "conv5b", "fc6", "fc7", "fc8"}
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "c.pt")
    b = backbones.create("mini_c3d", pretrained=str(tmp_path / "c.pt"))
    assert torch.equal(b.layers["fc6"].weight, src.fc6.weight)
    assert torch.equal(b.stem.net.conv5b.weight, src.conv5b.weight)


def test_resnet50_found_in_weights_dir(tmp_path, monkeypatch):
    import torchvision

    torch.manual_seed(3)
    src = torchvision.models.resnet50()
    torch.save(src.state_dict(), tmp_path / "resnet50-0676ba61.pth")
    monkeypatch.setenv("PRERNN_WEIGHTS", str(tmp_path))
    b = backbones.create("resnet50", pretrained=True)
    assert torch.equal(b.layers["layer4"].block.conv3.weight, src.layer4[2].conv3.weight)
    flow = backbones.create("resnet50", pretrained=True, in_channels=2)
    assert flow.frame_shape == (2, 224, 224)
    torch.testing.assert_close(flow.stem[0].weight[:, 0], src.conv1.weight.mean(1))


@pytest.mark.bad_input
def test_missing_default_file_names_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("PRERNN_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(FileNotFoundError) as e:
        backbones.create("vgg16", pretrained=True)
    msg = str(e.value)
    assert str(tmp_path / "vgg16-397923af.pth") in msg
    assert str(tmp_path / "th" / "hub" / "checkpoints" / "vgg16-397923af.pth") in msg
    with pytest.raises(FileNotFoundError, match=r"'c3d'.*c3d\.pickle"):
        backbones.create("c3d", pretrained=True)


@pytest.mark.bad_input
def test_missing_explicit_file_and_mini_without_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such file .*nope\.pt"):
        backbones.create("mini_vgg", pretrained=tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match="has no published weights file"):
        backbones.create("mini_resnet", pretrained=True)


@pytest.mark.bad_input
def test_wrong_file_is_a_clear_error(tmp_path):
    torch.save(MiniVGG().state_dict(), tmp_path / "vgg.pt")
    with pytest.raises(ValueError, match=r"does not fit C3D: missing keys \['conv1.bias'"):
        backbones.create("mini_c3d", pretrained=tmp_path / "vgg.pt")


def test_weights_load_refuses_pickled_objects(tmp_path):
    torch.save({"model": MiniVGG()}, tmp_path / "pickled.pt")  # a whole module: needs unpickling code
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        backbones.create("mini_vgg", pretrained=tmp_path / "pickled.pt")
