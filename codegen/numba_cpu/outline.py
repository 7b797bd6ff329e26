"""Outline the loop nests of a generated function into shared ``@njit`` loop kernels.

Generated segments run as plain Python: their whole-array lines (views, allocations,
calls of the generic kernels in ``kernels.py``) cost a fraction of a microsecond each in
NumPy and nothing to compile. Only loop nests need Numba. Each top-level ``for`` nest
becomes a call of a loop kernel whose parameters are the arrays it reads and writes and
the trip counts of its ``range`` calls; names are made canonical, so nests that differ
only in variable names or sizes (every step of an unrolled LSTM, a ReLU after each conv)
share one kernel and one compile. Compile time then grows with the number of distinct
loop bodies, not with the size of the graph (shared/notes/numba-compile-time.md).
"""

from __future__ import annotations

import ast
import re

from ir.errors import LoweringError


LITERAL = re.compile(r"np\.(?:float32|float64|int8|uint8|int16|int32|int64|bool_)\("
                     r"(?:-?[0-9][0-9.e+-]*|-?np\.nan|-?np\.inf|True|False)\)")
"""A typed scalar literal as ``lit`` writes it (emit.py)."""


class LoopKernels:
    """Distinct loop kernels of one module: canonical source -> kernel name."""

    def __init__(self, decorator: str):
        self.decorator = decorator
        self.names: dict[str, str] = {}
        self.constants: dict[str, str] = {}   # typed literal -> module-level name

    def constant(self, match: re.Match) -> str:
        """A module-level name for a typed literal such as ``np.float32(0.0)``: building
        a NumPy scalar costs ~0.8 us, reading a global ~20 ns."""
        return self.constants.setdefault(match.group(0), f"C{len(self.constants)}")

    def name_for(self, params: list[str], body: list[ast.stmt]) -> str:
        text = "\n".join(ast.unparse(s) for s in body)
        key = f"({', '.join(params)}):\n{text}"
        if key not in self.names:
            self.names[key] = f"loop{len(self.names)}"
        return self.names[key]

    def sources(self) -> list[str]:
        out = ["\n".join(f"{name} = {text}" for text, name in self.constants.items())] \
            if self.constants else []
        for key, name in self.names.items():
            head, text = key.split("\n", 1)
            body = "\n".join("    " + line for line in text.splitlines())
            deco = self.decorator
            if "prange(" in text:            # emit_loop asked for threads
                deco = deco[:-1] + ", parallel=True)"
            out.append(f"{deco}\ndef {name}{head}\n{body}")
        return out


def _int_const(node: ast.expr) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _int_const(node.operand)
        return None if inner is None else -inner
    return None


class _Canon(ast.NodeTransformer):
    """Renames free names to p<k>, local names to l<k> and literal ``range`` bounds to
    n<k>, recording what each parameter is bound to at the call."""

    def __init__(self, free: set[str]):
        self.free = free
        self.rename: dict[str, str] = {}
        self.args: list[ast.expr] = []
        self.params: list[str] = []
        self.counts: list[int] = []

    def visit_Name(self, node: ast.Name):
        if node.id not in self.rename:
            if node.id in self.free:
                self.rename[node.id] = f"p{len(self.args)}"
                self.params.append(self.rename[node.id])
                self.args.append(ast.Name(node.id, ast.Load()))
            elif isinstance(node.ctx, ast.Store):
                self.rename[node.id] = f"l{sum(1 for v in self.rename.values() if v[0] == 'l')}"
            else:
                return node                    # a global: np, math, K, V, range, ...
        return ast.Name(self.rename[node.id], node.ctx)

    def visit_Call(self, node: ast.Call):
        if isinstance(node.func, ast.Name) and node.func.id in ("range", "prange"):
            new_args = []
            for a in node.args:
                value = _int_const(a)
                if value is None:
                    new_args.append(self.visit(a))
                else:
                    self.counts.append(value)
                    new_args.append(ast.Name(f"n{len(self.counts) - 1}", ast.Load()))
            return ast.Call(node.func, new_args, [])
        return self.generic_visit(node)


def outline(function_source: str, kernels: LoopKernels, sharing: bool = False) -> str:
    """``function_source`` (one ``def``) with each top-level loop nest replaced by a call of
    a loop kernel registered in ``kernels``; other statements keep their text.

    With ``sharing`` (a conv in it shares its work among threads) the body runs in one
    ``K.sharing()`` region (``threads.sharing``), instead of each such conv switching
    BLAS's threads off and on again: LeNet at batch 32 took 2.3-2.5 ms so, against
    3.0-3.1 ms (same-process A/B). GEMMs in the region run on one thread (the issue's
    CNNs have small linears), and its loops are serial: the pool's threads watch for
    shares meanwhile, and would take a core from a parallel loop's threads."""
    lines = function_source.splitlines()
    fn = ast.parse(function_source).body[0]
    known = {a.arg for a in fn.args.args}
    nodes = [list(ast.walk(stmt)) for stmt in fn.body]
    names = [[n for n in ns if isinstance(n, ast.Name)] for ns in nodes]
    last_use = {n.id: k for k, ns in enumerate(names) for n in ns}
    body, quiet = [], False
    for k, stmt in enumerate(fn.body):
        if isinstance(stmt, ast.For):
            stored = {n.id for n in names[k] if isinstance(n.ctx, ast.Store)}
            clash = sorted(v for v in stored if v in known or last_use[v] > k)
            if clash:
                raise LoweringError(f"a generated loop assigns {clash}, which the code around "
                                    f"it uses; loops may only write into arrays "
                                    f"(codegen/numba_cpu/outline.py)")
            if sharing:
                _serial(names[k])
            canon = _Canon({n.id for n in names[k] if n.id in known})
            new = canon.visit(stmt)
            params = canon.params + [f"n{i}" for i in range(len(canon.counts))]
            name = kernels.name_for(params, [new])
            args = [a.id for a in canon.args] + [str(c) for c in canon.counts]
            call = f"{name}({', '.join(args)})"
            if any(n.id == "prange" for n in names[k]):
                body += ["with K.PARALLEL:", "    " + call]   # see kernels.PARALLEL
            else:
                body.append(call)
            continue
        if any(isinstance(n, (ast.For, ast.While)) for n in nodes[k]):
            raise LoweringError("a generated loop is nested in another statement; "
                                "emit loops at the top level of the function")
        known.update(n.id for n in names[k] if isinstance(n.ctx, ast.Store))
        quiet = quiet or _may_warn(nodes[k])
        body.extend(LITERAL.sub(kernels.constant, line[4:])
                    for line in lines[stmt.lineno - 1:stmt.end_lineno])
    scopes = (['np.errstate(all="ignore")'] if quiet else []) \
        + (["K.sharing()"] if sharing else [])
    head = [lines[0]] + ([f"    with {', '.join(scopes)}:"] if scopes else [])
    indent = "        " if scopes else "    "
    return "\n".join(head + [indent + line for line in body])


def _serial(names: list[ast.Name]) -> None:
    """Make a loop nest's ``prange`` loops ``range`` loops, given the nest's names; in
    place, as ``_Canon`` changes the nest (a deep copy of the tree took most of ResNet's
    code generation)."""
    for n in names:
        if n.id == "prange":
            n.id = "range"


def _is_int_expr(node: ast.expr) -> bool:
    """Shape arithmetic: int literals, symbol sizes ``S_*`` and ``x.shape[k]``."""
    if isinstance(node, ast.BinOp):
        return _is_int_expr(node.left) and _is_int_expr(node.right)
    if isinstance(node, ast.UnaryOp):
        return _is_int_expr(node.operand)
    if isinstance(node, ast.Subscript):
        return isinstance(node.value, ast.Attribute) and node.value.attr == "shape"
    return _int_const(node) is not None or (isinstance(node, ast.Name)
                                            and node.id.startswith("S_"))


def _may_warn(nodes: list[ast.AST]) -> bool:
    """Whether whole-array NumPy code (a statement's ``nodes``) may hit a floating-point
    exception (division by zero, overflow in a cast): NumPy warns where torch and the loop
    kernels follow IEEE silently, so such a segment runs under ``np.errstate``."""
    for n in nodes:
        if isinstance(n, ast.BinOp) and not _is_int_expr(n):
            return True
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) \
                and n.func.attr == "astype":
            return True
    return False
