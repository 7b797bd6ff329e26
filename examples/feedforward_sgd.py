"""Train a small feed-forward net with SGD and MSELoss, then compile it for inference.

    python examples/feedforward_sgd.py [--quick]

Training stays in eager PyTorch (autograd); the compiled module reads the trained
parameters at every call, so no retrace is needed after the optimiser's steps.
"""

import argparse

import torch
from torch import nn

import tracejit

ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true", help="smoke mode: fewer training steps")
args = ap.parse_args()
torch.manual_seed(0)

# Synthetic regression: y = sin(x0) + 0.5 * x1^2 - x2, plus a little noise.
X = torch.randn(512, 3)
Y = (torch.sin(X[:, :1]) + 0.5 * X[:, 1:2] ** 2 - X[:, 2:3]) + 0.05 * torch.randn(512, 1)

model = nn.Sequential(nn.Linear(3, 32), nn.Tanh(), nn.Linear(32, 1))
compiled = tracejit.compile(model)           # compile once, before or after training
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
loss_fn = nn.MSELoss()

for step in range(100 if args.quick else 1000):
    opt.zero_grad()
    loss = loss_fn(model(X), Y)
    loss.backward()
    opt.step()
    if step % (25 if args.quick else 200) == 0:
        print(f"step {step:4d}  loss {loss.item():.4f}")

model.eval()
with torch.no_grad():
    test = torch.randn(64, 3)
    compiled(test)                           # first call traces and compiles
    pred = compiled(test)
    print("final train loss", float(loss_fn(compiled(X), Y)))
    print("max |compiled - eager| on new data:", float((pred - model(test)).abs().max()))
print(compiled.explain())
