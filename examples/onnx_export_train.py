"""Train a small classifier on synthetic data, then export it with ``tracejit export``.

    python examples/onnx_export_train.py [--quick] [--out DIR]
    python examples/onnx_serve_no_torch.py DIR/classifier.onnx DIR/inputs.npy \\
        --expected DIR/expected.npy

Writes DIR/classifier.pt (the trained state_dict), DIR/classifier.onnx (exported by the
``tracejit export --weights`` command, verified against eager), and DIR/inputs.npy with
DIR/expected.npy: held-out inputs and the trained model's outputs, which the torch-free
server must reproduce.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

FEATURES, CLASSES = 20, 4


class Classifier(nn.Module):
    """An MLP with LayerNorm and dropout (dropout is off once the model is in eval mode)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(FEATURES, 64), nn.LayerNorm(64), nn.GELU(),
                                 nn.Dropout(0.1), nn.Linear(64, CLASSES))

    def forward(self, x):
        return self.net(x)


def synthetic(n: int, gen: torch.Generator):
    """Gaussian blobs around CLASSES fixed centres, with noise: learnable, not trivial."""
    centres = torch.randn(CLASSES, FEATURES, generator=torch.Generator().manual_seed(42)) * 0.6
    labels = torch.randint(0, CLASSES, (n,), generator=gen)
    return centres[labels] + torch.randn(n, FEATURES, generator=gen), labels


def train(steps: int) -> Classifier:
    torch.set_num_threads(1)    # a model this small trains faster on one thread
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = Classifier()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        x, y = synthetic(128, gen)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="train briefly")
    p.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "tracejit-onnx-example"))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    model = train(60 if args.quick else 400)
    x_test, y_test = synthetic(256, torch.Generator().manual_seed(7))
    with torch.no_grad():
        logits = model(x_test)
    accuracy = (logits.argmax(1) == y_test).float().mean().item()
    print(f"trained in {time.perf_counter() - start:.1f} s; held-out accuracy {accuracy:.1%}")

    torch.save(model.state_dict(), out / "classifier.pt")
    np.save(out / "inputs.npy", x_test.numpy())
    np.save(out / "expected.npy", logits.numpy())

    cmd = [sys.executable, "-m", "tracejit", "export", f"{Path(__file__).resolve()}:Classifier",
           "--input", f"1x{FEATURES}", "-o", str(out / "classifier.onnx"),
           "--weights", str(out / "classifier.pt"), "--verify"]
    print("$ tracejit export", " ".join(cmd[4:]))
    rc = subprocess.run(cmd).returncode
    if rc != 0:
        return rc
    print(f"\nnow serve it without torch:\n  python examples/onnx_serve_no_torch.py "
          f"{out / 'classifier.onnx'} {out / 'inputs.npy'} --expected {out / 'expected.npy'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
