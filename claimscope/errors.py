"""Typed errors. Each carries the file or id it is about and prints as one line."""

from __future__ import annotations


class ClaimscopeError(Exception):
    """Base class: `str(err)` is one line naming the item and the problem."""

    def __init__(self, item: str, problem: str) -> None:
        self.item = item
        self.problem = problem
        super().__init__(f"{item}: {problem}")


class BadClaimsFile(ClaimscopeError):
    pass


class PaperNotFound(ClaimscopeError):
    pass


class PdfUnreadable(ClaimscopeError):
    pass


class EncryptedPdf(PdfUnreadable):
    pass


class EmptyPdf(PdfUnreadable):
    pass


class ImageOnlyPdf(PdfUnreadable):
    pass


class LimitExceeded(ClaimscopeError):
    pass


class BadRunDir(ClaimscopeError):
    pass


class BadSettings(ClaimscopeError, ValueError):
    """An unknown preset or a setting that does not validate (still a ValueError for older callers)."""


class NetworkError(ClaimscopeError):
    retryable = False
    retry_after: float | None = None  # seconds the server's Retry-After header asked for, when it gave one


class RateLimited(NetworkError):
    retryable = True


class ServerError(NetworkError):
    retryable = True


class DownloadError(NetworkError):
    pass


class OfflineError(NetworkError):
    pass


class RequestTimeout(NetworkError):
    retryable = True
