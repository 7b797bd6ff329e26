"""Side-by-side benchmarks of tracejit against eager PyTorch and the alternatives."""
