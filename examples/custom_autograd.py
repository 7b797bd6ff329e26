"""A custom `torch.autograd.Function` inside a model: traced through its forward.

    python examples/custom_autograd.py [--quick]

tracejit records the aten ops that `forward` runs, so a custom Function compiles for
inference like any other code; its `backward` is used by eager training as usual.
"""

import argparse

import torch
from torch import nn

import tracejit

ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true", help="smoke mode")
args = ap.parse_args()
torch.manual_seed(0)


class ClampedSquare(torch.autograd.Function):
    """y = min(x^2, 4); the gradient is 2x where x^2 < 4 and 0 elsewhere."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.clamp(x * x, max=4.0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 2 * x * (x * x < 4.0)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return ClampedSquare.apply(self.fc(x)).sum(-1)


model = Net()
x = torch.randn(16, 8, requires_grad=True)
model(x).sum().backward()                        # the custom backward, in eager
print("custom backward ran, grad norm:", float(x.grad.norm()))
print("gradcheck:", torch.autograd.gradcheck(ClampedSquare.apply,
                                             torch.randn(6, dtype=torch.float64,
                                                         requires_grad=True)))

fast = tracejit.compile(model.eval())
with torch.no_grad():
    inp = torch.randn(16, 8) * 2
    fast(inp)
    print("max |compiled - eager|:", float((fast(inp) - model(inp)).abs().max()))
print(fast.explain())
