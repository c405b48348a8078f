"""The recurrence: how a pre-trained layer becomes a recurrent one.

    tables.py    the vocabulary, one table per concept: CELLS, ACTIVATIONS, VARIANTS,
                 INPUT_INITS, RECURRENT_INITS (a cell carries its gates, variants, step,
                 fast loops and kernel id; an activation its function, derivative, kernel id)
    steps.py     one step of each cell through autograd (the reference)
    loops.py     each cell's fast forward/backward in Python (GPUs, no compiler)
    csrc/        the same loops in C++ for the CPU; kernels.py builds it and checks its ids
    bptt.py      a linear PreRNN layer as one autograd node over those loops
    layers.py    PreRecurrent, PreRNNLinear;  conv.py  PreRNNConv
"""

from .conv import PreRNNConv, out_channels
from .layers import PreRecurrent, PreRNNLinear, reset_
from .tables import (ACTIVATIONS, CELLS, INPUT_INITS, RECURRENT_INITS, VARIANTS, Activation, Cell, cell_variants,
                     init_recurrent_)

__all__ = ["ACTIVATIONS", "CELLS", "INPUT_INITS", "RECURRENT_INITS", "VARIANTS", "Activation", "Cell", "cell_variants",
           "PreRNNConv", "PreRNNLinear", "PreRecurrent", "init_recurrent_", "out_channels", "reset_"]
