"""An Embedding + GRU text classifier (integer token input), compiled.

    python examples/text_classifier.py [--quick]
"""

import argparse

import torch
from torch import nn

import tracejit

ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true", help="smoke mode: short sentences")
args = ap.parse_args()
torch.manual_seed(0)


class TextClassifier(nn.Module):
    def __init__(self, vocab=1000, dim=64, hidden=128, classes=4):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.gru = nn.GRU(dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, tokens):                 # tokens: int64 [batch, seq]
        _, h = self.gru(self.embed(tokens))
        return torch.log_softmax(self.head(h[-1]), dim=-1)


model = TextClassifier().eval()
fast = tracejit.compile(model)
tokens = torch.randint(1, 1000, (3, 8 if args.quick else 32))
with torch.no_grad():
    fast(tokens)                               # trace + compile (int64 input is guarded)
    logp = fast(tokens)
    print("max |compiled - eager|:", float((logp - model(tokens)).abs().max()))
    print("predicted labels:", logp.argmax(-1).tolist())
print(fast.explain())
