"""A CNN on image-shaped data (CIFAR-sized 3x32x32), eager vs compiled.

    python examples/cnn.py [--quick]
"""

import argparse
import time

import torch
from torch import nn

import tracejit

ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true", help="smoke mode")
args = ap.parse_args()
torch.manual_seed(0)


class SmallCNN(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 8 * 8, 64), nn.ReLU(),
                                  nn.Linear(64, classes))

    def forward(self, x):
        return self.head(self.features(x))


model = SmallCNN().eval()
fast = tracejit.compile(model)
batch = 1 if args.quick else 4
images = torch.randn(batch, 3, 32, 32)
with torch.no_grad():
    fast(images)                                 # trace + compile
    print("max |compiled - eager|:", float((fast(images) - model(images)).abs().max()))
    print("predicted classes:", fast(images).argmax(1).tolist())
    for name, fn in (("eager", model), ("compiled", fast)):
        start = time.perf_counter()
        calls = 1 if args.quick else 50
        for _ in range(calls):
            fn(images)
        print(f"{name:8s} {(time.perf_counter() - start) / calls * 1e3:.2f} ms per batch of "
              f"{batch}")
