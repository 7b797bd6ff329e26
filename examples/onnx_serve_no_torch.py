"""Serve predictions from an exported ONNX model with onnxruntime alone: no torch.

    python examples/onnx_serve_no_torch.py MODEL.onnx INPUTS.npy [--expected OUT.npy]
        [--batch N] [--quick]

Reads the rows of INPUTS.npy, runs them through the model in batches of N (the exported
batch dimension is symbolic, so any N works) and prints the predicted class of each row.
With --expected (the trained model's outputs, written by onnx_export_train.py) it checks
that the served outputs match and exits 1 if they do not.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import onnxruntime as ort


def serve(session: ort.InferenceSession, rows: np.ndarray, batch: int) -> np.ndarray:
    name = session.get_inputs()[0].name
    chunks = [session.run(None, {name: rows[i:i + batch]})[0]
              for i in range(0, len(rows), batch)]
    return np.concatenate(chunks)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("inputs")
    p.add_argument("--expected", help="outputs of the trained torch model, to compare with")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--quick", action="store_true", help="serve the first 16 rows only")
    args = p.parse_args(argv)

    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    rows = np.load(args.inputs).astype(np.float32)
    if args.quick:
        rows = rows[:16]
    logits = serve(session, rows, args.batch)
    shown = ", ".join(str(c) for c in logits.argmax(1)[:12])
    print(f"served {len(rows)} rows in batches of {args.batch}; classes: {shown}"
          f"{', ...' if len(rows) > 12 else ''}")
    assert sys.modules.get("torch") is None, "the server must not import torch"
    if args.expected is None:
        return 0
    want = np.load(args.expected)[:len(rows)]
    diff = float(np.abs(logits - want).max())
    same = bool((logits.argmax(1) == want.argmax(1)).all())
    print(f"max |onnx - torch| = {diff:.2e}; same predicted classes: {same}")
    return 0 if same and np.allclose(logits, want, rtol=1e-4, atol=1e-5) else 1


if __name__ == "__main__":
    sys.exit(main())
