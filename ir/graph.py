"""SSA values, nodes, regions and graphs.

A value is defined exactly once, by a graph input, a region parameter or a node output.
Nodes are immutable (change them with ``replace``); a graph owns a list of them in
topological order. A fused group is a node whose ``region`` holds its body.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator

from .types import TensorType

_ids = itertools.count()

ROLES = ("input", "param", "buffer", "const")
"""Graph input roles: user inputs, parameters and buffers (named by their state_dict
keys, read afresh on every call), and captured constant tensors."""


class Value:
    """An SSA value. Identity is the object; ``name`` is a printing hint only."""

    __slots__ = ("type", "name", "uid")

    def __init__(self, type: TensorType, name: str | None = None):
        self.type = type
        self.name = name
        self.uid = next(_ids)

    def __repr__(self) -> str:
        return f"Value({self.name or self.uid}: {self.type})"


def freeze_attr(v: Any) -> Any:
    """Attributes are ints, floats, bools, strings, None, and tuples of those."""
    if isinstance(v, (list, tuple)):
        return tuple(freeze_attr(x) for x in v)
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"attribute value {v!r} of type {type(v).__name__} is not allowed")


@dataclass(frozen=True, eq=False)
class Region:
    """A nested SSA scope: parameters bound to the owning node's inputs, a body, results."""

    params: tuple[Value, ...]
    nodes: tuple["Node", ...]
    results: tuple[Value, ...]


_NORMAL = {"inputs": tuple, "outputs": tuple,
           "attrs": lambda attrs: {k: freeze_attr(v) for k, v in attrs.items()}}
"""A node's fields stored in a normal form: value tuples, frozen attributes."""


@dataclass(frozen=True, eq=False)
class Node:
    op: str
    inputs: tuple[Value, ...]
    outputs: tuple[Value, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    scope: str = ""
    loc: str = ""
    region: Region | None = None

    def __post_init__(self):
        for name, normal in _NORMAL.items():
            object.__setattr__(self, name, normal(getattr(self, name)))

    def replace(self, **changes) -> "Node":
        """A copy with ``changes`` (as ``dataclasses.replace``). Only changed inputs,
        outputs or attributes are normalised again: passes copy nodes by the thousand (an
        unrolled LSTM's 800), and a dataclass copy re-froze every attribute each time."""
        unknown = changes.keys() - _NODE_FIELDS
        if unknown:
            raise TypeError(f"Node has no field(s) {sorted(unknown)}")
        new = object.__new__(Node)
        state = vars(new)
        state.update(vars(self), **changes)
        for name in changes.keys() & _NORMAL.keys():
            state[name] = _NORMAL[name](changes[name])
        return new

    @property
    def output(self) -> Value:
        (out,) = self.outputs
        return out

    def attr_key(self) -> tuple:
        """Hashable form of the attributes, for CSE and pattern matching.

        Floats are keyed by their text so that -0.0 differs from 0.0 and nan equals nan.
        """
        return tuple(sorted((k, _key(v)) for k, v in self.attrs.items()))

    def __repr__(self) -> str:
        return f"Node({self.op}, {len(self.inputs)} in, {len(self.outputs)} out)"


_NODE_FIELDS = frozenset(f.name for f in dataclasses.fields(Node))


@dataclass(frozen=True)
class GraphInput:
    value: Value
    role: str = "input"

    @property
    def name(self) -> str:
        return self.value.name


@dataclass(eq=False)
class Graph:
    """A traced program: named inputs with roles, nodes in topological order, outputs.

    ``writes`` maps a buffer input's name to the value written back to it after a call
    (BatchNorm running statistics in training, for instance).
    """

    name: str
    inputs: list[GraphInput] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)
    writes: dict[str, Value] = field(default_factory=dict)

    def add_input(self, name: str, type: TensorType, role: str = "input") -> Value:
        if role not in ROLES:
            raise ValueError(f"unknown input role {role!r}; expected one of {ROLES}")
        v = Value(type, name)
        self.inputs.append(GraphInput(v, role))
        return v

    def input_values(self, role: str | None = None) -> list[Value]:
        return [i.value for i in self.inputs if role is None or i.role == role]

    def walk(self) -> Iterator[Node]:
        """Every node, including those nested in regions (pre-order)."""
        yield from walk_nodes(self.nodes)

    def users(self) -> dict[Value, list[Node]]:
        """Top-level nodes using each value (one helper, so passes never hand-build it)."""
        uses: dict[Value, list[Node]] = {}
        for node in self.nodes:
            for v in node.inputs:
                uses.setdefault(v, []).append(node)
        return uses

    def result_values(self) -> list[Value]:
        return list(self.outputs) + list(self.writes.values())

    def copy(self) -> "Graph":
        """A shallow copy sharing values and (immutable) nodes."""
        return Graph(self.name, list(self.inputs), list(self.nodes), list(self.outputs),
                     dict(self.writes))

    def __str__(self) -> str:
        from .printer import print_graph
        return print_graph(self)


def free_values(nodes) -> list[Value]:
    """Values the nodes use but do not define, in first-use order (a region's params)."""
    defined, free = set(), []
    for n in nodes:
        for v in n.inputs:
            if v not in defined and v not in free:
                free.append(v)
        defined.update(n.outputs)
    return free


def _key(v):
    if isinstance(v, float):
        return ("float", repr(v))
    if isinstance(v, tuple):
        return tuple(_key(x) for x in v)
    return v


def walk_nodes(nodes) -> Iterator[Node]:
    for node in nodes:
        yield node
        if node.region is not None:
            yield from walk_nodes(node.region.nodes)
