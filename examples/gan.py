"""A GAN generator/discriminator pair: one training step in eager, sampling compiled.

    python examples/gan.py [--quick]

Training needs autograd, so it stays eager; generating and scoring samples for
inspection is inference, which is what tracejit compiles.
"""

import argparse

import torch
from torch import nn

import tracejit

ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true", help="smoke mode: fewer steps")
args = ap.parse_args()
torch.manual_seed(0)
Z = 16

generator = nn.Sequential(nn.Linear(Z, 64), nn.LeakyReLU(0.2), nn.Linear(64, 128),
                          nn.BatchNorm1d(128), nn.LeakyReLU(0.2), nn.Linear(128, 2), nn.Tanh())
discriminator = nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1),
                              nn.Sigmoid())
g_opt = torch.optim.Adam(generator.parameters(), lr=2e-3)
d_opt = torch.optim.Adam(discriminator.parameters(), lr=2e-3)
bce = nn.BCELoss()

# Real data: points on a circle of radius 0.8.
for step in range(20 if args.quick else 500):
    angle = torch.rand(64, 1) * 6.2832
    real = 0.8 * torch.cat([angle.cos(), angle.sin()], dim=1)
    fake = generator(torch.randn(64, Z))
    d_loss = bce(discriminator(real), torch.ones(64, 1)) + \
        bce(discriminator(fake.detach()), torch.zeros(64, 1))
    d_opt.zero_grad()
    d_loss.backward()
    d_opt.step()
    g_loss = bce(discriminator(fake), torch.ones(64, 1))
    g_opt.zero_grad()
    g_loss.backward()
    g_opt.step()
print(f"after training: d_loss {d_loss.item():.3f}  g_loss {g_loss.item():.3f}")

generator.eval()
discriminator.eval()
sample = tracejit.compile(generator)          # BatchNorm uses its running stats in eval
score = tracejit.compile(discriminator)
with torch.no_grad():
    z = torch.randn(256, Z)
    sample(z)
    points = sample(z)
    print("generator max |compiled - eager|:", float((points - generator(z)).abs().max()))
    score(points)
    print("discriminator max |compiled - eager|:",
          float((score(points) - discriminator(points)).abs().max()))
    print(f"mean radius of samples {points.norm(dim=1).mean():.3f} (real data: 0.8)")
