"""IR graph -> ONNX ModelProto (checked), and atomic writing of models to files.

Graph inputs of role ``input`` become ONNX inputs. Parameters, buffers and captured
constants become initializers named by their state_dict keys when ``weights`` gives their
arrays (export), or stay ONNX inputs (the in-process backend passes them at every call, so
weight updates are seen). Buffer writes become extra outputs named ``<buffer>.updated``.

Guards: ONNX cannot raise, so an exported model cannot check a guard. ``guards="drop"``
(export) drops them and lists a warning per guard in ``Lowered.warnings``, in the model's
``metadata_props`` ("tracejit.warnings") and as a Python warning: the exported model
assumes the traced value. ``guards="check"`` (the backend) makes each guarded value an
extra output that the runtime compares after the call.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ir.errors import LoweringError
from ir.graph import Graph, Node, Value
from ir.opdef import OPS
from ir.types import TensorType

from . import lower as _lower  # noqa: F401  (registers the rules)
from . import lower_nn as _lower_nn  # noqa: F401
from . import lower_views as _lower_views  # noqa: F401
from .recurrent import Layer, find_layers, lower_layer
from .builder import LOWERINGS, ONNX_DTYPE, Builder, where_of

OPSETS = range(17, 22)
DEFAULT_OPSET = 20
IR_VERSION = {17: 8, 18: 8, 19: 9, 20: 9, 21: 10}   # the oldest IR each opset needs
PROTOBUF_LIMIT = 2 ** 31 - 1
EXTERNAL_THRESHOLD = 2 ** 31 - 2 ** 24   # leave room for the graph itself under 2 GB


class UnsupportedOpsetError(LoweringError, ValueError):
    pass


class ExportWarning(UserWarning):
    """Something the exported model cannot do that the traced graph did (guards)."""


@dataclass
class Lowered:
    model: onnx.ModelProto
    input_names: list[str]              # ONNX input names of the graph inputs fed per call
    output_names: list[str]
    write_names: dict[str, str]         # buffer name -> ONNX output name
    guards: list[tuple[str, object]] = field(default_factory=list)  # (output, expected)
    warnings: list[str] = field(default_factory=list)


def check_opset(opset: int) -> int:
    if not isinstance(opset, int) or opset not in OPSETS:
        raise UnsupportedOpsetError(
            f"ONNX opset {opset!r} is not supported; use one of "
            f"{OPSETS.start}..{OPSETS.stop - 1} (default {DEFAULT_OPSET})")
    return opset


def _extern_error(node: Node) -> LoweringError:
    target = node.attrs.get("target", "?")
    return LoweringError(
        f"op extern ({target}) at {where_of(node)} runs torch at call time and has no ONNX "
        f"form, so it cannot be exported or run by onnxruntime. Add a lowering or "
        f"decomposition for {target} in tracejit, or use backend='numba-cpu', which calls "
        "torch for it.")


def _value_info(name: str, t: TensorType, rename: dict[str, str]):
    dims = [rename.get(d, d) if isinstance(d, str) else d for d in t.shape]
    return helper.make_tensor_value_info(name, ONNX_DTYPE[t.dtype], dims)


def _initializer(name: str, t: TensorType, array) -> onnx.TensorProto:
    arr = np.asarray(array, dtype=t.dtype.np)
    if t.is_static and arr.shape != t.shape:
        raise LoweringError(f"weight {name!r} has shape {arr.shape}, the graph expects {t}")
    return numpy_helper.from_array(arr, name)


class _Lowering:
    def __init__(self, graph: Graph, opset: int, guards: str):
        self.graph, self.guards = graph, guards
        self.env: dict[Value, str] = {}
        self.guard_values: list[tuple[Value, object]] = []
        self.warnings: list[str] = []
        self.b: Builder | None = None
        self.opset = opset
        self.skip: dict[int, Layer] = {}     # id(node) -> the recurrent layer replacing it
        self.weight_names = {i.value: i.name for i in graph.inputs if i.role != "input"}

    def nodes(self, nodes) -> None:
        for node in nodes:
            self.b.node = node
            if id(node) in self.skip:
                layer = self.skip[id(node)]
                if node is layer.last:
                    self.env.update(lower_layer(self.b, layer, self.env, self.weight_names))
            elif node.op == "fused":
                self.env.update(zip(node.region.params, (self.env[v] for v in node.inputs)))
                self.nodes(node.region.nodes)
                self.env.update(zip(node.outputs, (self.env[v] for v in node.region.results)))
            elif node.op == "guard":
                self.guard(node)
            else:
                self.plain(node)

    def guard(self, node: Node) -> None:
        expected = node.attrs["expected"]
        if self.guards == "check":
            self.guard_values.append((node.inputs[0], expected))
            return
        self.warnings.append(f"guard at {where_of(node)} (traced value {expected!r}) dropped: "
                             "ONNX cannot check it, so the model assumes that value")

    def plain(self, node: Node) -> None:
        rule = LOWERINGS.get(node.op)
        if rule is None:
            raise LoweringError(f"op {node.op} at {where_of(node)} has no ONNX lowering; add "
                                "one in codegen/onnx/lower.py")
        args = [self.env[v] for v in node.inputs]
        try:
            outs = rule(self.b, node, *args, **OPS[node.op].full_attrs(node.attrs))
        except LoweringError:
            raise
        except Exception as e:
            raise LoweringError(f"cannot lower {node.op} at {where_of(node)} to ONNX: "
                                f"{type(e).__name__}: {e}") from e
        outs = [outs] if isinstance(outs, str) else list(outs)
        if len(outs) != len(node.outputs):
            raise LoweringError(f"ONNX rule for {node.op} gave {len(outs)} outputs, "
                                f"expected {len(node.outputs)}")
        self.env.update(zip(node.outputs, outs))


def lower_graph(graph: Graph, *, opset: int = DEFAULT_OPSET, weights=None, input_names=None,
                output_names=None, dynamic_dims: dict | None = None, guards: str = "drop",
                check: bool = True) -> Lowered:
    """Lower ``graph`` to a checked ONNX model; ``dynamic_dims`` renames IR symbols to the
    ONNX dim_params users see (``{"B": "batch"}``)."""
    check_opset(opset)
    for node in graph.walk():
        if node.op == "extern":
            raise _extern_error(node)
    rename = dict(dynamic_dims or {})
    user = [i for i in graph.inputs if i.role == "input"]
    names = list(input_names) if input_names is not None else [i.name for i in user]
    if len(names) != len(user):
        raise LoweringError(f"{len(names)} input names for {len(user)} graph inputs")
    user_names = dict(zip((i.value for i in user), names))
    fed = [i for i in graph.inputs if i.role == "input" or weights is None]
    onnx_name = {i.value: user_names.get(i.value, i.name) for i in graph.inputs}

    symbols: dict[str, tuple[str, int]] = {}
    for inp in fed:
        for axis, d in enumerate(inp.value.type.shape):
            if isinstance(d, str):
                symbols.setdefault(d, (onnx_name[inp.value], axis))
    low = _Lowering(graph, opset, guards)
    b = low.b = Builder(opset, symbols)
    for inp in graph.inputs:
        low.env[inp.value] = b.reserve(onnx_name[inp.value])
    initializers = []
    if weights is not None:
        missing = [i.name for i in graph.inputs if i.role != "input" and i.name not in weights]
        if missing:
            raise LoweringError(f"no weights given for {', '.join(missing)}")
        initializers = [_initializer(i.name, i.value.type, weights[i.name])
                        for i in graph.inputs if i.role != "input"]
        b.weights = {onnx_name[i.value]: np.asarray(weights[i.name])
                     for i in graph.inputs if i.role != "input"}

    out_names = (list(output_names) if output_names is not None else
                 ["output"] if len(graph.outputs) == 1 else
                 [f"output_{k}" for k in range(len(graph.outputs))])
    if len(out_names) != len(graph.outputs):
        raise LoweringError(f"{len(out_names)} output names for {len(graph.outputs)} outputs")
    write_names = {buf: f"{buf}.updated" for buf in graph.writes}
    for name in out_names + list(write_names.values()):
        b.reserve(name)

    for layer in find_layers(graph, b.weights, low.weight_names):
        low.skip.update(dict.fromkeys(layer.nodes, layer))
    low.nodes(graph.nodes)
    b.node = None
    results = list(zip(out_names, graph.outputs))
    results += [(write_names[k], v) for k, v in graph.writes.items()]
    guard_outs = []
    for k, (v, expected) in enumerate(low.guard_values):
        guard_outs.append((b.reserve(f"guard_{k}"), expected))
        results.append((guard_outs[-1][0], v))
    _name_results(b, [(name, low.env[v]) for name, v in results])

    onnx_graph = helper.make_graph(
        b.nodes, graph.name or "graph",
        [_value_info(onnx_name[i.value], i.value.type, rename) for i in fed],
        [_value_info(name, v.type, rename) for name, v in results],
        initializer=_referenced(b.nodes, initializers, results, low.env) + b.initializers)
    model = helper.make_model(onnx_graph, producer_name="tracejit", ir_version=IR_VERSION[opset],
                              opset_imports=[helper.make_opsetid("", opset)])
    if low.warnings:
        helper.set_model_props(model, {"tracejit.warnings": "\n".join(low.warnings)})
    if check and tensor_bytes(model) < EXTERNAL_THRESHOLD:
        check_model(model)
    return Lowered(model, [onnx_name[i.value] for i in fed], out_names, write_names,
                   guard_outs, low.warnings)


def _referenced(nodes, initializers, results, env) -> list:
    """The weight initializers some node or output reads (a weight whose only use was
    replaced by a transposed copy is left out)."""
    read = {name for node in nodes for name in node.input}
    read.update(env[v] for _, v in results)
    return [t for t in initializers if t.name in read]


def _name_results(b: Builder, results: list[tuple[str, str]]) -> None:
    """Give each graph output its name: the producing node's output is renamed (and its
    uses), so no Identity is needed, except for an output that is a graph input, an
    initializer, or a value already named by an earlier output."""
    produced = {out for node in b.nodes for out in node.output}
    rename: dict[str, str] = {}
    for name, src in results:
        if src in produced and src not in rename:
            rename[src] = name
        else:
            b.nodes.append(helper.make_node("Identity", [rename.get(src, src)], [name],
                                            name=name))
    if not rename:
        return
    for node in b.nodes:
        for k, v in enumerate(node.input):
            if v in rename:
                node.input[k] = rename[v]
        for k, v in enumerate(node.output):
            if v in rename:
                node.output[k] = rename[v]


def to_model(graph: Graph, *, opset: int = DEFAULT_OPSET, weights=None, input_names=None,
             output_names=None, dynamic_dims: dict | None = None) -> onnx.ModelProto:
    """The export entry point: a checked ModelProto; dropped guards warn (ExportWarning)."""
    lowered = lower_graph(graph, opset=opset, weights=weights, input_names=input_names,
                          output_names=output_names, dynamic_dims=dynamic_dims)
    for w in lowered.warnings:
        warnings.warn(w, ExportWarning, stacklevel=2)
    return lowered.model


def check_model(model) -> None:
    """check_model(full_check=True) (strict shape inference included), as a LoweringError."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise LoweringError(f"the ONNX model failed onnx.checker: {e}") from e


def tensor_bytes(model: onnx.ModelProto) -> int:
    return sum(len(t.raw_data) or t.ByteSize() for t in model.graph.initializer)


def save(model: onnx.ModelProto, path, *, external_threshold: int = EXTERNAL_THRESHOLD
         ) -> list[str]:
    """Write ``model`` to ``path`` atomically; returns the files written.

    Models whose weights exceed ``external_threshold`` bytes (protobuf cannot hold 2 GB)
    keep them in ``<name>.data`` beside the model. Everything is first written to a
    temporary folder next to ``path`` and moved into place with ``os.replace``, so a
    failure leaves no file behind (and an older file at ``path`` intact).
    """
    path = os.path.abspath(os.fspath(path))
    folder, base = os.path.split(path)
    tmp = tempfile.mkdtemp(prefix=f".{base}.", suffix=".tmp", dir=folder)
    moved: list[str] = []
    try:
        tmp_model = os.path.join(tmp, base)
        if tensor_bytes(model) > external_threshold:
            data = base + ".data"
            copy = onnx.ModelProto()
            copy.CopyFrom(model)   # save_model moves tensors out of the proto it is given
            onnx.save_model(copy, tmp_model, save_as_external_data=True,
                            all_tensors_to_one_file=True, location=data, size_threshold=1024)
            check_model(tmp_model)   # by path: the only way for models over 2 GB
            os.replace(os.path.join(tmp, data), os.path.join(folder, data))
            moved.append(os.path.join(folder, data))
        else:
            onnx.save_model(model, tmp_model)
        os.replace(tmp_model, path)
        moved.append(path)
        return list(reversed(moved))
    except BaseException:
        for f in moved:
            if f != path:
                os.unlink(f)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
