"""Wire-protocol helpers shared by every frame handler (SPEC §5)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from realtime import domain_errors

ERROR_CODES = frozenset(
    {
        "invalid_json",
        "invalid_message",
        "unknown_type",
        "not_found",
        "forbidden",
        "too_large",
        "rate_limited",
        "server_error",
    }
)


class FrameError(Exception):
    """A client mistake answered with an `error` frame; the socket stays open."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        ref: str | None = None,
        retry_after: float | None = None,
        incident_id: str | None = None,
    ) -> None:
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.retry_after = retry_after
        self.incident_id = incident_id  # with server_error: names the logged traceback

    def as_frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = {
            "type": "error",
            "code": self.code,
            "message": self.message,
        }
        frame["ref"] = self.ref
        if self.retry_after is not None:
            frame["retry_after"] = self.retry_after
        if self.incident_id is not None:
            frame["incident_id"] = self.incident_id
        return frame


# Ids and seqs are PostgreSQL bigints; orjson parses integers up to 2**64 - 1,
# which the database would refuse with an error instead of an answer.
# Most specific class first: ContentTooLarge is a ContentInvalid.
_CODE_OF_ERROR: tuple[tuple[type[domain_errors.DomainError], str], ...] = (
    (domain_errors.ContentTooLarge, "too_large"),
    (domain_errors.ContentInvalid, "invalid_message"),
    (domain_errors.NotFound, "not_found"),
    (domain_errors.Forbidden, "forbidden"),
)


def frame_error(error: domain_errors.DomainError, *, ref: str | None = None) -> FrameError:
    """The `error` frame a socket client gets for a domain error."""
    code = next(code for kind, code in _CODE_OF_ERROR if isinstance(error, kind))
    return FrameError(code, error.message, ref=ref)


BIGINT_MAX = 2**63 - 1


def query_param(scope: dict[str, Any], name: str) -> str | None:
    """The first value of `name` in the socket URL's query string (SPEC §5 connect)."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


def require_int(frame: dict[str, Any], field: str) -> int:
    value = frame.get(field)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not -BIGINT_MAX <= value <= BIGINT_MAX
    ):
        raise FrameError("invalid_message", f"'{field}' must be an integer")
    return value


def require_str(frame: dict[str, Any], field: str) -> str:
    value = frame.get(field)
    if not isinstance(value, str):
        raise FrameError("invalid_message", f"'{field}' must be a string")
    return value
