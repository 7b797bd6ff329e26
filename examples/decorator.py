"""`@tracejit.compile` on a model and on a plain function.

    python examples/decorator.py [--quick]

The first call with new shapes runs eagerly while tracing (so it already returns the
right answer), then the graph is optimised and compiled; later calls run compiled code.
"""

import argparse

import torch
from torch import nn

import tracejit

ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true", help="smoke mode (same output, fewer calls)")
args = ap.parse_args()
torch.manual_seed(0)


# 1. On a function: the decorator, with or without arguments.
@tracejit.compile                        # backend="numba-cpu" is the default
def swish_mix(x, y):
    return x * torch.sigmoid(x) + 0.5 * torch.tanh(y)


x, y = torch.randn(4, 8), torch.randn(4, 8)
with torch.no_grad():
    for _ in range(2 if args.quick else 5):
        out = swish_mix(x, y)
    expected = x * torch.sigmoid(x) + 0.5 * torch.tanh(y)
print("function: max |compiled - eager| =", float((out - expected).abs().max()))


# 2. On a module instance: the usual way, like torch.compile(model).
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)).eval()
fast = tracejit.compile(model)
with torch.no_grad():
    fast(x)                              # traces and compiles
    diff = float((fast(x) - model(x)).abs().max())
print("module: max |compiled - eager| =", diff)
print("the compiled module is still the module:", list(fast.state_dict())[:2], fast.training)
print(fast.explain())                    # what was traced, fused and guarded
