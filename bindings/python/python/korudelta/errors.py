"""Typed exceptions: one class per error code of the HTTP API, the same in every mode."""

from __future__ import annotations

from typing import Dict, Optional, Type

__all__ = [
    "KoruDeltaError",
    "NotFoundError",
    "VersionMismatchError",
    "InvalidNameError",
    "InvalidValueError",
    "BadRequestError",
    "MalformedJsonError",
    "UnauthorizedError",
    "ForbiddenError",
    "AlreadyExistsError",
    "UniqueViolationError",
    "TooLargeError",
    "QueryLimitError",
    "RateLimitedError",
    "UnavailableError",
    "OutcomeUnknownError",
    "ConnectionFailedError",
    "LockedError",
    "InternalError",
    "error_for",
]


class KoruDeltaError(Exception):
    """Any failed call. `code` is the HTTP API's machine-readable code, `message` the reason."""

    code: str
    message: str
    status: Optional[int]

    def __init__(self, code: str, message: str, status: Optional[int] = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class NotFoundError(KoruDeltaError):
    """`not_found`: the key never existed or its latest version (then) is a delete."""


class VersionMismatchError(KoruDeltaError):
    """`version_mismatch`: an `if_match` write found the key at another version; nothing written."""


class InvalidNameError(KoruDeltaError):
    """`invalid_name`: a namespace or key breaks the naming rules."""


class InvalidValueError(KoruDeltaError):
    """`invalid_value`: a value no JSON reader could read back (say a number beyond f64)."""


class BadRequestError(KoruDeltaError):
    """`bad_request` and the query refusals (`no_plan`, `no_text_index`): a fixable argument."""


class MalformedJsonError(KoruDeltaError):
    """`malformed_json`: a value or body is not JSON or lacks a field."""


class UnauthorizedError(KoruDeltaError):
    """`unauthorized`: the token is missing, malformed, badly signed, expired or revoked."""


class ForbiddenError(KoruDeltaError):
    """`forbidden`: the token is for another cluster or its scope is too small."""


class AlreadyExistsError(KoruDeltaError):
    """`already_exists`: a view or index of that name exists."""


class UniqueViolationError(KoruDeltaError):
    """`unique_violation`: the write would break a unique index; nothing was written."""


class TooLargeError(KoruDeltaError):
    """`value_too_large`, `batch_too_large`, `body_too_large`, `result_too_large`, ..."""


class QueryLimitError(KoruDeltaError):
    """`query_limit_exceeded`: the query read, grouped or held more than the server allows."""


class RateLimitedError(KoruDeltaError):
    """`rate_limited`: over the server's operations per second (retried by the client first)."""


class UnavailableError(KoruDeltaError):
    """`no_leader`, `shutting_down`, `catching_up`, `read_only`, ...: try again later or elsewhere."""


class OutcomeUnknownError(KoruDeltaError):
    """`outcome_unknown`: the write may or may not have been applied; read before retrying."""


class ConnectionFailedError(KoruDeltaError):
    """`connection_failed` (client only): the server could not be reached or answered no HTTP."""


class LockedError(KoruDeltaError):
    """`locked` (embedded only): another handle or process has the data directory open."""


class InternalError(KoruDeltaError):
    """`internal`: a storage error; details are in the server's log."""


_BY_CODE: Dict[str, Type[KoruDeltaError]] = {
    "not_found": NotFoundError,
    "version_mismatch": VersionMismatchError,
    "invalid_name": InvalidNameError,
    "invalid_value": InvalidValueError,
    "bad_request": BadRequestError,
    "no_plan": BadRequestError,
    "no_text_index": BadRequestError,
    "malformed_json": MalformedJsonError,
    "unauthorized": UnauthorizedError,
    "forbidden": ForbiddenError,
    "already_exists": AlreadyExistsError,
    "unique_violation": UniqueViolationError,
    "value_too_large": TooLargeError,
    "batch_too_large": TooLargeError,
    "body_too_large": TooLargeError,
    "result_too_large": TooLargeError,
    "rewind_too_large": TooLargeError,
    "storage_quota_exceeded": TooLargeError,
    "query_limit_exceeded": QueryLimitError,
    "rate_limited": RateLimitedError,
    "no_leader": UnavailableError,
    "shutting_down": UnavailableError,
    "catching_up": UnavailableError,
    "read_only": UnavailableError,
    "rejoining": UnavailableError,
    "outcome_unknown": OutcomeUnknownError,
    "connection_failed": ConnectionFailedError,
    "locked": LockedError,
    "internal": InternalError,
}


def error_for(code: str, message: str, status: Optional[int] = None) -> KoruDeltaError:
    """The exception for `code`: its class when the code is known, else the base class."""
    return _BY_CODE.get(code, KoruDeltaError)(code, message, status)
