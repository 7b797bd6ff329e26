"""Compile an `nn.Sequential` and look at what tracejit made of it.

    python examples/sequential.py [--quick]
"""

import argparse

import torch
from torch import nn

import tracejit

ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true", help="smoke mode")
args = ap.parse_args()
torch.manual_seed(0)

model = nn.Sequential(
    nn.Linear(64, 128), nn.LayerNorm(128), nn.GELU(),
    nn.Dropout(0.1),                           # a no-op in eval mode: traced away
    nn.Linear(128, 128), nn.SiLU(),
    nn.Linear(128, 10), nn.Softmax(dim=-1),
).eval()

fast = tracejit.compile(model)
x = torch.randn(8, 64)
with torch.no_grad():
    for _ in range(2 if args.quick else 10):
        y = fast(x)
    print("rows sum to 1:", torch.allclose(y.sum(-1), torch.ones(8)))
    print("max |compiled - eager|:", float((y - model(x)).abs().max()))
    # A new batch size is a new specialisation (shapes are guarded).
    fast(torch.randn(3, 64))
    print("batch 3 matches:", torch.allclose(fast(x[:3]), model(x[:3]), atol=1e-6))
print(fast.explain())
