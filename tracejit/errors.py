"""User-facing errors. The base class lives in ``ir.errors`` so every layer shares it."""

from ir.errors import LoweringError, ParseError, TraceJitError, VerifyError


class UnsupportedOpError(TraceJitError):
    """With ``fullgraph=True``: an op that would otherwise run in torch as an extern."""


class TraceAbort(TraceJitError):
    """The trace cannot represent what forward did; the call runs eagerly instead."""


class ModelLoadError(TraceJitError):
    """The CLI could not import or build the model it was pointed at."""


class InputSpecError(TraceJitError, ValueError):
    """A malformed ``--input`` shape spec such as ``1x784:int64``."""


__all__ = ["InputSpecError", "LoweringError", "ModelLoadError", "ParseError", "TraceAbort",
           "TraceJitError", "UnsupportedOpError", "VerifyError"]
