"""Typed errors of the replicate stage.

Subclasses of `claimscope.errors.ClaimscopeError` (a pure-Python module, importable with the repo root on sys.path);
on a machine where not even that is importable, a stand-in base class with the same one-line message is used.
"""

from __future__ import annotations

try:
    from claimscope.errors import ClaimscopeError
except ImportError:  # pragma: no cover - only on a machine without the claimscope spine

    class ClaimscopeError(Exception):  # type: ignore[no-redef]
        def __init__(self, item: str, problem: str) -> None:
            self.item = item
            self.problem = problem
            super().__init__(f"{item}: {problem}")


class ReplicateError(ClaimscopeError):
    pass


class BadRecipe(ReplicateError):
    pass


class DataNotFound(ReplicateError):
    pass


class BadDataFile(ReplicateError):
    pass
