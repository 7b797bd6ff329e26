"""The on-disk home of generated modules (``TRACEJIT_CACHE_DIR``, default ~/.cache/tracejit).

A module's file name is a hash of its own text (made from the graph, and from the BLAS
the process runs products on), the op table, the tracejit and numba versions and this
backend's own source, so a file never changes once written and
Numba's ``cache=True`` (keyed on the file's path, mtime and size) serves later processes.
Files are created atomically (temp file, then link/rename); a file whose text differs
from what would be generated (corrupt, truncated) is rebuilt with a warning; a folder
that cannot be written means the module is compiled in memory, without Numba's cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import warnings
from pathlib import Path
from types import ModuleType

import numba

from ir.opdef import OPS, REQUIRED

_LOADED: dict[str, ModuleType] = {}
_HERE = Path(__file__).resolve().parent


class CacheWarning(UserWarning):
    """A cache file was unusable and has been rebuilt."""


def cache_dir() -> Path:
    return Path(os.environ.get("TRACEJIT_CACHE_DIR") or Path.home() / ".cache" / "tracejit")


def _fingerprint() -> str:
    h = hashlib.sha256()
    for name in sorted(OPS):
        op = OPS[name]
        attrs = sorted((k, "required" if v is REQUIRED else repr(v)) for k, v in op.attrs.items())
        h.update(f"{name}{op.inputs}{attrs}{sorted(op.flags)}".encode())
    for path in sorted(_HERE.glob("*.py")):
        h.update(path.read_bytes())
    try:
        from importlib.metadata import version
        tj = version("tracejit")
    except Exception:
        tj = "dev"
    h.update(f"tracejit={tj} numba={numba.__version__}".encode())
    return h.hexdigest()


_FINGERPRINT = _fingerprint()


def module_key(text: str) -> str:
    return hashlib.sha256((_FINGERPRINT + text).encode()).hexdigest()[:24]


def load(key: str, source: str) -> ModuleType:
    """The generated module for ``key``: from memory, from the cache folder, or freshly
    written there; compiled in memory when the folder cannot be used."""
    mod = _LOADED.get(key)
    if mod is None:
        path = _ensure_file(cache_dir(), f"tracejit_{key}.py", source)
        mod = _import(path, key) if path is not None else None
        if mod is None:
            mod = _in_memory(key, source)
        _LOADED[key] = mod
    return mod


def _ensure_file(folder: Path, name: str, source: str) -> Path | None:
    path = folder / name
    try:
        if path.exists():
            if path.read_text(encoding="utf-8", errors="replace") == source:
                return path
            warnings.warn(f"tracejit cache file {path} is corrupt or truncated; rebuilding it",
                          CacheWarning, stacklevel=4)
        write_file(path, source.encode("utf-8"))
        return path if path.read_text(encoding="utf-8") == source else None
    except OSError:
        return None


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a reader sees the whole file or none.

    A file already there is replaced (it was found bad); where there was none, the file
    is only created if still absent, so a file another process just wrote is left alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.replace(tmp, path)        # replacing a bad file
        else:
            try:
                os.link(tmp, path)       # create only if absent: never touch a good file
            except FileExistsError:
                pass                     # another process won the race
            os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _import(path: Path, key: str) -> ModuleType | None:
    name = f"tracejit_gen_{key}"
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod
    except Exception:          # e.g. Numba finds no writable place for its cache
        sys.modules.pop(name, None)
        return None


def _in_memory(key: str, source: str) -> ModuleType:
    mod = ModuleType(f"tracejit_mem_{key}")
    code = compile(source.replace("cache=True", "cache=False"), f"<tracejit {key}>", "exec")
    exec(code, mod.__dict__)
    return mod
