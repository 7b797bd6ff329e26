"""``njit`` for every kernel of this backend: Numba's on-disk cache, loaded without
setting up the compiler.

Before Numba's ``FunctionCache`` loads anything it refreshes the whole target context,
as the compiler does. The first time in a process, that imports and installs every
lowering and typing registry Numba has (``numba.np.arraymath`` and ``numba.np.linalg``
with SciPy's linalg among them): 0.37 s here, most of a zoo model's warm start then, and
none of it used by a cache hit. A hit rebuilds machine code that links against
Numba's runtime (NRT) only, so ``FastLoadCache`` initialises just that. A miss compiles
through Numba's compiler, which refreshes the contexts itself.
"""

from __future__ import annotations

from numba import njit as _numba_njit
from numba.core.caching import FunctionCache
from numba.core.runtime import rtsys


class FastLoadCache(FunctionCache):
    """Numba's per-function disk cache, minus the context refresh before a load."""

    def load_overload(self, sig, target_context):
        rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)


def njit(fn=None, *, cache: bool = False, **options):
    """``numba.njit`` whose ``cache=True`` uses ``FastLoadCache`` (same files, same keys)."""
    def decorate(f):
        dispatcher = _numba_njit(**options)(f)
        if cache:
            dispatcher._cache = FastLoadCache(f)
        return dispatcher
    return decorate if fn is None else decorate(fn)
