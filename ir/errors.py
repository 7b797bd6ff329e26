"""The error hierarchy. It lives in ``ir`` (the bottom layer) so that ``codegen`` and
``tracejit`` raise the same classes; users import them from ``tracejit``."""


class TraceJitError(Exception):
    """Base of every error a user can cause: says what, where, and what to do."""


class VerifyError(TraceJitError):
    """A graph breaks an IR invariant (SSA, types, region scoping)."""


class ParseError(TraceJitError):
    """IR text that does not parse; the message gives the line and column."""


class LoweringError(TraceJitError):
    """A backend cannot lower an op of the graph."""
