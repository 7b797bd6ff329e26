"""Models for the tracejit tests: examples/models.py plus the ones issue 3 names beyond it.

Each ``Case`` builds a model (seeded, in eval mode) and its inputs, and says which aten ops
it is expected to leave to torch as ``extern`` nodes (ideally none).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


def _load_examples():
    spec = importlib.util.spec_from_file_location("examples_models", ROOT / "examples/models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EX = _load_examples()


class Generator(nn.Module):
    """A DCGAN-style MLP generator: noise -> image-sized vector in (-1, 1)."""

    def __init__(self, z=8, hidden=16, out=12):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z, hidden), nn.BatchNorm1d(hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, out), nn.Tanh())

    def forward(self, z):
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self, d_in=12, hidden=16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, 1), nn.Sigmoid())

    def forward(self, x):
        return self.net(x)


class ShiftedSquare(torch.autograd.Function):
    """x*x + 1 with a hand-written backward: forward must trace like any other code."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x + 1

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad


class CustomFunctionNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        return ShiftedSquare.apply(self.fc(x))


def mlp():
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 16), nn.GELU(),
                         nn.Linear(16, 3))


@dataclass
class Case:
    name: str
    build: Callable[[], nn.Module]
    inputs: Callable[[], tuple]
    externs: set = field(default_factory=set)   # aten targets expected as extern nodes


def randn(*shape):
    return lambda: (torch.randn(*shape),)


CASES = [
    Case("SimpleNN", EX.SimpleNN, randn(2, 784)),
    Case("Sequential-MLP", mlp, randn(4, 10)),
    Case("LeNet", EX.LeNet, randn(2, 1, 28, 28)),
    Case("ResBlock", EX.ResBlock, randn(2, 3, 8, 8)),
    Case("RNN", lambda: nn.RNN(4, 8, batch_first=True), randn(2, 3, 4)),
    Case("LSTM-2layers", lambda: nn.LSTM(4, 8, num_layers=2, batch_first=True),
         randn(2, 3, 4)),
    Case("GRU", lambda: nn.GRU(4, 8, batch_first=True), randn(2, 3, 4)),
    Case("LSTMModel", EX.LSTMModel, randn(2, 3, 32)),
    Case("GRUClassifier", EX.GRUClassifier, lambda: (torch.randint(0, 100, (2, 7)),)),
    Case("GAN-Generator", Generator, randn(4, 8)),
    Case("GAN-Discriminator", Discriminator, randn(4, 12)),
    Case("TransformerEncoderLayer",
         lambda: nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), randn(2, 5, 16)),
    Case("TransformerLayer", EX.TransformerLayer, randn(2, 4, 64)),
    Case("CustomFunction", CustomFunctionNet, randn(3, 6)),
    Case("PreNormMLPBlock", EX.PreNormMLPBlock, randn(2, 5, 64)),
]

# ---- Hugging Face transformers, built from tiny configs with random weights (no downloads) --

TOKENS = (2, 8)
VOCAB = 100


def gpt2(transformers):
    cfg = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=VOCAB,
                                  n_positions=32, use_cache=False, bos_token_id=0,
                                  eos_token_id=0)
    return transformers.GPT2LMHeadModel(cfg)


def bert(transformers):
    cfg = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=64,
                                  max_position_embeddings=32)
    return transformers.BertModel(cfg)


def llama(transformers):
    cfg = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=2,
                                   intermediate_size=64, max_position_embeddings=32,
                                   use_cache=False, bos_token_id=0, eos_token_id=0)
    return transformers.LlamaModel(cfg)


HF_MODELS = {"GPT2LMHeadModel": gpt2, "BertModel": bert, "LlamaModel": llama}
HF_EXTERNS: dict[str, set] = {name: set() for name in HF_MODELS}
HF_EXTERNS["GPT2LMHeadModel-masked"] = {"aten::index.Tensor"}   # masking_utils: mask[b, q]
