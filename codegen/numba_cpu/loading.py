"""``njit`` for every kernel of this backend: Numba's on-disk cache, loaded without
setting up the compiler.

Before Numba's ``FunctionCache`` loads anything it refreshes the whole target context,
as the compiler does. The first time in a process, that imports and installs every
lowering and typing registry Numba has (``numba.np.arraymath`` and ``numba.np.linalg``
with SciPy's linalg among them): 0.37 s here, most of a zoo model's warm start then, and
none of it used by a cache hit. A hit rebuilds machine code that links against
Numba's runtime (NRT) only, so ``FastLoadCache`` initialises just that. A miss compiles
through Numba's compiler, which refreshes the contexts itself.

A cached function also carries an ``Environment`` for every Numba implementation it
inlined (``np.empty``'s lives in ``numba.np.arrayobj``), and unpickling one imports its
module for the globals: ``numba.np.arrayobj`` pulls in ``numba.cpython.unicode`` and
eight more, 40 ms of the first load. Compiled nopython code reads only an
environment's constants (globals serve object mode), so such a module that is not
loaded yet is left unloaded.

Typing an array argument (a kernel's first call, loaded or compiled) checks that it is
not a ``numpy.ma.MaskedArray``, which imports ``numpy.ma``: 8-12 ms. Until something
imports that module no masked array can exist, so arrays are typed without the check.

NRT itself has a few functions (reference counts, atomics) that Numba compiles from
LLVM IR in every process: 40 ms. Their machine code is kept in the cache folder like a
cached function's, under a name that holds Numba's and llvmlite's versions and the
target (triple, CPU, features), with a SHA-256 of its contents checked before use.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import sys

import llvmlite
import llvmlite.binding as llvm
import numba
import numpy as np
from numba import njit as _numba_njit
from numba.core import environment, errors, types
from numba.core.caching import FunctionCache, IndexDataCacheFile, NullCache
from numba.core.codegen import JITCodeLibrary
from numba.core.compiler_lock import global_compiler_lock
from numba.core.runtime import nrtdynmod, rtsys
from numba.core.typing.typeof import typeof_impl
from numba.np import numpy_support

from .cache import cache_dir, write_file


def _rebuild_env(modname, consts, env_name):
    """``numba.core.environment._rebuild_env`` that leaves an unloaded Numba module so."""
    if modname in sys.modules or not modname.startswith("numba."):
        return environment._rebuild_env(modname, consts, env_name)
    env = environment.lookup_environment(env_name)
    if env is None:
        env = environment.Environment({"__name__": modname})
        env.consts[:] = consts
        env.env_name = env_name
        environment.Environment._memo[env_name] = env
    return env


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "numba.core.environment" and name == "_rebuild_env":
            return _rebuild_env
        return super().find_class(module, name)


class _CacheFile(IndexDataCacheFile):
    """Numba's cache file; its data unpickled with ``_rebuild_env`` above."""

    def _load_data(self, name):
        with open(self._data_path(name), "rb") as f:
            return _Unpickler(io.BytesIO(f.read())).load()


_typeof_any_ndarray = typeof_impl.dispatch(np.ndarray)


@typeof_impl.register(np.ndarray)
def _typeof_ndarray(val, c):
    """Numba's ``_typeof_ndarray``, minus its masked-array check while ``numpy.ma`` is
    not loaded."""
    if "numpy.ma" in sys.modules:
        return _typeof_any_ndarray(val, c)
    try:
        dtype = numpy_support.from_dtype(val.dtype)
    except errors.NumbaNotImplementedError:
        raise errors.NumbaValueError(f"Unsupported array dtype: {val.dtype}") from None
    return types.Array(dtype, val.ndim, numpy_support.map_layout(val),
                       readonly=not val.flags.writeable)


def _nrt_path(target_context):
    magic = target_context.codegen().magic_tuple()
    key = f"{numba.__version__} {llvmlite.__version__} {magic}"
    return cache_dir() / f"nrt_{hashlib.sha256(key.encode()).hexdigest()[:24]}.bin"


def _nrt_functions(target_context):
    """``nrtdynmod.compile_nrt_functions``, through the cache folder."""
    path = _nrt_path(target_context)
    try:
        blob = path.read_bytes()
        if hashlib.sha256(blob[32:]).digest() == blob[:32]:
            return target_context.codegen().unserialize_library(pickle.loads(blob[32:]))
    except OSError:
        pass                                # absent, or the folder cannot be read
    ir_module, library = nrtdynmod.create_nrt_module(target_context)
    library.enable_object_caching()
    library.add_ir_module(ir_module)
    library.finalize()
    payload = pickle.dumps(library.serialize_using_object_code())
    try:
        write_file(path, hashlib.sha256(payload).digest() + payload)
    except OSError:
        pass                                # a read-only folder: compiled again next time
    return library


def initialize_runtime(target_context) -> None:
    """``rtsys.initialize`` with NRT's own functions loaded from the cache folder."""
    if rtsys._init:
        return
    with global_compiler_lock:
        compile_nrt_functions = nrtdynmod.compile_nrt_functions
        nrtdynmod.compile_nrt_functions = _nrt_functions
        try:
            rtsys.initialize(target_context)
        finally:
            nrtdynmod.compile_nrt_functions = compile_nrt_functions


class _LinkLaterLibrary(JITCodeLibrary):
    """A code library rebuilt from Numba's cache, its LLVM module for linking left unparsed.

    A cached function holds its machine code and, for compiles that call it later, its
    LLVM module as bitcode. Numba parses that module at every load, and walks it to list
    its symbols: 1.5-5 ms per function, 10 functions for the zoo's ResNet. Here the
    bitcode is parsed when a compile first links the library; the engine is told of the
    one symbol a load looks up, the function's Python wrapper."""

    _bitcode = None

    @classmethod
    def _unserialize(cls, codegen, state):
        name, kind, data = state
        if kind != "object":
            return super()._unserialize(codegen, state)
        object_code, bitcode = data
        self = cls(codegen, name)
        self.enable_object_caching()
        self._set_compiled_object(object_code)
        self._bitcode = bitcode
        self._finalize_final_module()
        return self

    def _parse(self):
        if self._bitcode is not None:
            self._shared_module = llvm.parse_bitcode(self._bitcode)
            self._codegen._engine._load_defined_symbols(self._shared_module)
            self._bitcode = None

    def _get_module_for_linking(self):
        self._parse()
        return super()._get_module_for_linking()

    def get_pointer_to_function(self, name):
        if not self._codegen._engine.is_symbol_defined(name):
            self._parse()                   # any symbol other than the wrapper
        return super().get_pointer_to_function(name)


class FastLoadCache(FunctionCache):
    """Numba's per-function disk cache, minus the context refresh before a load, and
    with the machine code rebuilt as a ``_LinkLaterLibrary``."""

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file.__class__ = _CacheFile

    def load_overload(self, sig, target_context):
        initialize_runtime(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)

    def _load_overload(self, sig, target_context):
        if not self._enabled:
            return None
        codegen = target_context.codegen()
        data = self._cache_file.load(self._index_key(sig, codegen))
        if data is None:
            return None
        wrapper = data[1].llvm_cpython_wrapper_name     # data: CompileResult._reduce()
        defined = codegen._engine._defined_symbols
        codegen._library_class = _LinkLaterLibrary      # for this codegen, this call
        try:
            defined.add(wrapper)
            return self._impl.rebuild(target_context, data)
        except BaseException:
            defined.discard(wrapper)
            raise
        finally:
            del codegen._library_class


class _FirstUseCache:
    """A dispatcher's ``FastLoadCache``, made when the dispatcher first compiles or loads.

    Making one finds the function's source and probes the cache folder (0.3 ms); the
    kernel library has 60-odd cached kernels, of which a model calls a few. Where Numba
    finds no folder to cache in, the kernel compiles in memory."""

    def __init__(self, dispatcher):
        self._dispatcher = dispatcher

    def __getattr__(self, name):
        dispatcher = self._dispatcher
        try:
            dispatcher._cache = FastLoadCache(dispatcher.py_func)
        except RuntimeError:                # "cannot cache function ...: no locator"
            dispatcher._cache = NullCache()
        return getattr(dispatcher._cache, name)


def njit(fn=None, *, cache: bool = False, **options):
    """``numba.njit`` whose ``cache=True`` uses ``FastLoadCache`` (same files, same keys)."""
    def decorate(f):
        dispatcher = _numba_njit(**options)(f)
        if cache:
            dispatcher._cache = _FirstUseCache(dispatcher)
        return dispatcher
    return decorate if fn is None else decorate(fn)
