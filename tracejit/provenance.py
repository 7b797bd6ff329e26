"""Where a traced op came from: the module scope and the user's source line.

Scope comes from global module pre/post forward hooks (a stack of qualified names);
the line from walking Python frames outward past torch's and tracejit's own files.
Measured cost: 4-6 us per module call and ~1 us per op (../shared/notes/aten-inventory.md §6).
"""

from __future__ import annotations

import functools
import os
import sys
from contextlib import contextmanager

import torch
from torch import nn

_SKIP_DIRS = (os.path.dirname(torch.__file__), os.path.dirname(os.path.abspath(__file__)))


def user_location() -> str:
    """``path:line`` of the innermost frame outside torch and tracejit, or ''."""
    f = sys._getframe(1)
    while f is not None:
        name = f.f_code.co_filename
        if not name.startswith(_SKIP_DIRS) and not name.startswith("<frozen"):
            return f"{_short(name)}:{f.f_lineno}"
        f = f.f_back
    return ""


@functools.lru_cache(maxsize=1024)
def _short(path: str) -> str:
    """Paths under the working directory print relative; others stay absolute."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


class ScopeStack:
    """Module scopes (``encoder.layers.0``) of the forward calls currently running."""

    def __init__(self, root: nn.Module | None):
        self.names = {}
        if root is not None:
            self.names = {id(m): n for n, m in root.named_modules(remove_duplicate=False)}
        self.stack: list[str] = []

    @property
    def current(self) -> str:
        return self.stack[-1] if self.stack else ""

    @contextmanager
    def active(self):
        def pre(module, args):
            self.stack.append(self.names.get(id(module), self.current))

        def post(module, args, output):
            if self.stack:
                self.stack.pop()

        h1 = nn.modules.module.register_module_forward_pre_hook(pre)
        h2 = nn.modules.module.register_module_forward_hook(post, always_call=True)
        try:
            yield self
        finally:
            h1.remove()
            h2.remove()
