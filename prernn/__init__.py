"""PreRNN: pre-trained CNNs made recurrent by turning their fc (or conv) layers into
recurrent layers (Yang, Molchanov, Kautz, CVPR 2018). Knows nothing about sweeps.

    backbone = prernn.backbones.create("vgg16", pretrained=True, num_outputs=136)
    net = prernn.make_recurrent(backbone, layers=("fc6", "fc7"), cell="lstm")
    y = net(frames)  # (B, T, 3, 224, 224) -> (B, T, 136)
"""

from . import backbones
from .recurrent import CELLS, INPUT_INITS, RECURRENT_INITS, VARIANTS, PreRNNConv, PreRNNLinear
from .convert import PreRNNNetwork, TraditionalNetwork, make_recurrent, make_traditional
from .params import count_parameters, count_prernn, count_traditional, match_hidden_dim

__all__ = [
    "backbones", "CELLS", "RECURRENT_INITS", "VARIANTS", "INPUT_INITS", "PreRNNLinear", "PreRNNConv",
    "PreRNNNetwork", "TraditionalNetwork", "make_recurrent", "make_traditional",
    "count_parameters", "count_prernn", "count_traditional", "match_hidden_dim",
]
