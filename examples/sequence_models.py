"""RNN, LSTM and GRU sequence models, compiled.

    python examples/sequence_models.py [--quick]

torch's fused oneDNN recurrent kernel is switched off while tracing, so the recurrence
is recorded step by step and each cell is compiled (and fused) like any other code.
"""

import argparse

import torch
from torch import nn

import tracejit

ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true", help="smoke mode: one layer, short sequences")
args = ap.parse_args()
torch.manual_seed(0)


class SequenceModel(nn.Module):
    """A recurrent layer over the sequence, a linear head on the last step."""

    def __init__(self, cell: type, layers: int, d_in=16, hidden=32, out=4):
        super().__init__()
        self.rnn = cell(d_in, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, out)

    def forward(self, x):
        seq, _ = self.rnn(x)
        return self.head(seq[:, -1])


x = torch.randn(2, 4 if args.quick else 32, 16)
layers = 1 if args.quick else 2
for cell in (nn.RNN, nn.LSTM, nn.GRU):
    model = SequenceModel(cell, layers).eval()
    fast = tracejit.compile(model)
    with torch.no_grad():
        fast(x)
        err = float((fast(x) - model(x)).abs().max())
    print(f"{cell.__name__:5s} max |compiled - eager| = {err:.1e}")
    print("   ", fast.explain().lines[2].strip())   # the traced -> optimised node counts
