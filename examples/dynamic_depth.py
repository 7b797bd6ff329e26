"""A network whose depth depends on its input: what a static trace must do about it.

    python examples/dynamic_depth.py [--quick]

`torch.jit.trace` records the branch it saw and silently replays it for every input.
tracejit records a guard on the value Python looked at (`bool(x.mean() > 0)`); a call
that would take the other branch runs eagerly (so the answer is right), is traced
again and becomes a second specialisation.
"""

import argparse
import warnings

import torch
from torch import nn

import tracejit

ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true", help="smoke mode (same checks)")
args = ap.parse_args()
torch.manual_seed(0)


class DynamicDepth(nn.Module):
    """Positive-mean inputs get one layer; the others get three."""

    def __init__(self, dim=16):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(3))

    def forward(self, x):
        depth = 1 if x.mean() > 0 else 3       # Python reads tensor data here
        for layer in self.layers[:depth]:
            x = torch.tanh(layer(x))
        return x


model = DynamicDepth().eval()
pos = torch.randn(4, 16).abs()                 # mean > 0: depth 1
neg = -torch.randn(4, 16).abs()                # mean < 0: depth 3

with torch.no_grad(), warnings.catch_warnings():
    warnings.simplefilter("ignore")            # jit.trace's TracerWarning says it, quietly
    jit = torch.jit.trace(model, pos)
    fast = tracejit.compile(model)
    fast(pos)                                  # traced on the depth-1 branch
    fast(pos)
    for name, f in (("torch.jit.trace", jit), ("tracejit", fast)):
        err = float((f(neg) - model(neg)).abs().max())
        verdict = "WRONG (replayed the other branch)" if err > 1e-4 else "correct"
        print(f"{name:16s} on the other branch: max |result - eager| = {err:.3e}  {verdict}")
    again = float((fast(neg) - model(neg)).abs().max())
    print(f"tracejit, next call on that branch (now compiled): max |diff| = {again:.1e}")

explanation = fast.explain()
print(explanation)
print("specialisations:", explanation.lines[0].split(", ")[-1].split()[0])
