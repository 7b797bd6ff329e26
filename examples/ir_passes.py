"""The IR of a model after every optimisation pass.

    python examples/ir_passes.py [--quick]
    tracejit dump examples/models.py:PreNormMLPBlock --input 1x16x64 --passes each  # same

Each pass (dead code, CSE, folding, simplification, rewrites, fusion) prints the graph
it leaves behind, so you can watch `addmm(permute(w))` become `linear` and the GELU
chain fold into a fused epilogue.
"""

import argparse
import sys
from pathlib import Path

import torch

import ir
from ir.passes import optimize
import tracejit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import PreNormMLPBlock  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true", help="smoke mode: print pass names only")
args = ap.parse_args()

torch.manual_seed(0)
model = PreNormMLPBlock(dim=64).eval()
with torch.no_grad():
    traced = tracejit.trace(model, torch.randn(1, 16, 64))
print("=== traced (no passes) ===")
print(traced)


def show(name, graph):
    """Called by the pass manager after each pass that ran."""
    print(f"=== after {name}: {len(graph.nodes)} nodes ===")
    if not args.quick:
        print(ir.print_graph(graph))


graph, stats = optimize(traced.graph, passes="each", on_pass=show)
print("=== final ===")
print(ir.print_graph(graph))
