"""Python state around a traced forward: what it reads (guards) and what it changes.

A static graph replays tensor work only. Plain attributes that forward reads (an int
``self.depth``, a bool flag) decide which graph was traced, so they become guards.
Attributes that forward changes (``self.calls += 1``, a list it appends to) and text it
prints cannot be replayed: such a forward runs eagerly, with a warning naming the
attribute or the print and the user's source line.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from .provenance import user_location

_PLAIN = (bool, int, float, str, type(None))
_MISSING = object()


def is_plain(v) -> bool:
    if isinstance(v, _PLAIN):
        return True
    return isinstance(v, tuple) and all(is_plain(x) for x in v)


def _fingerprint(v):
    """What a change looks like: plain values by value, containers by identity and size."""
    if is_plain(v):
        return v
    if isinstance(v, (list, dict, set)):
        return (type(v).__name__, id(v), len(v))
    return _MISSING


@dataclass
class StateRecord:
    """What one traced call did with module state."""

    reads: dict = field(default_factory=dict)      # (id(module), name) -> (module, name, value)
    writes: dict = field(default_factory=dict)     # "scope.attr" -> loc (first write)
    prints: list = field(default_factory=list)     # loc of each print

    def problem(self) -> str | None:
        """Why this call cannot be replayed by a static graph, or None."""
        if self.writes:
            attr, loc = next(iter(self.writes.items()))
            return (f"forward changes Python state ({attr} at {loc or 'unknown line'}); a "
                    "static graph cannot replay that, so the module runs eagerly")
        if self.prints:
            return (f"forward prints (at {self.prints[0] or 'unknown line'}); a static graph "
                    "cannot replay output, so the module runs eagerly")
        return None

    def guard(self) -> tuple:
        """(module.__dict__, name, value) triples that later calls must still match."""
        return tuple((m.__dict__, name, value) for m, name, value in self.reads.values())


def guards_hold(guards: tuple) -> bool:
    for d, name, value in guards:
        if d.get(name, _MISSING) != value:
            return False
    return True


def describe_guard_failure(guards: tuple) -> str:
    for d, name, value in guards:
        now = d.get(name, _MISSING)
        if now != value:
            return f"attribute {name} changed {value!r} -> {now!r}"
    return ""


def _label(scope: str, name: str) -> str:
    return f"{scope}.{name}" if scope else f"self.{name}"


class _Tee:
    """Stands in for sys.stdout while tracing: passes text through and notes where."""

    def __init__(self, real, record: StateRecord):
        self._real, self._record = real, record

    def write(self, text):
        if text:
            self._record.prints.append(user_location())
        return self._real.write(text)

    def __getattr__(self, name):
        return getattr(self._real, name)


@contextmanager
def watch(root: nn.Module | None, record: StateRecord):
    """Record plain-attribute reads and writes on modules, and prints, while tracing."""
    names = {id(m): n for n, m in root.named_modules()} if root is not None else {}
    before = _snapshot(root)
    real_get = nn.Module.__getattribute__
    real_set = nn.Module.__setattr__

    def getattribute(self, name):
        value = real_get(self, name)
        if not name.startswith("_") and is_plain(value):
            d = real_get(self, "__dict__")
            if name in d:
                record.reads.setdefault((id(self), name), (self, name, value))
        return value

    def setattr_(self, name, value):
        if id(self) in names and not name.startswith("_") and not isinstance(
                value, (torch.Tensor, nn.Module)):
            record.writes.setdefault(_label(names[id(self)], name), user_location())
        real_set(self, name, value)

    stdout = sys.stdout
    own_get = "__getattribute__" in nn.Module.__dict__
    nn.Module.__getattribute__ = getattribute
    nn.Module.__setattr__ = setattr_
    sys.stdout = _Tee(stdout, record)
    try:
        yield record
    finally:
        if own_get:
            nn.Module.__getattribute__ = real_get
        else:
            del nn.Module.__getattribute__
        nn.Module.__setattr__ = real_set
        sys.stdout = stdout
    after = _snapshot(root)
    for scope, name in sorted(set(before) | set(after)):   # in-place changes: list.append
        if before.get((scope, name), _MISSING) != after.get((scope, name), _MISSING):
            record.writes.setdefault(_label(scope, name), "")


def _snapshot(root: nn.Module | None) -> dict:
    if root is None:
        return {}
    out = {}
    for scope, m in root.named_modules():
        for name, v in vars(m).items():
            if name.startswith("_") or name == "training":
                continue
            fp = _fingerprint(v)
            if fp is not _MISSING:
                out[(scope, name)] = fp
    return out
