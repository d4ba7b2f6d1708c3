"""What a service refuses, in the domain's words.

Services raise these; each transport translates them at its edge: the socket
to SPEC §5 `error` frames (`realtime.protocol.frame_error`, applied by the
consumer to whatever a handler lets through), the DRF views to 4xx answers
(`realtime.rest.errors.api_exception_handler`). A service therefore works the
same from a management command or the admin.
"""

from __future__ import annotations


class DomainError(Exception):
    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class ContentInvalid(DomainError):
    """The content of a request breaks a rule (type, emptiness, encoding)."""


class ContentNotText(ContentInvalid):
    """Not Unicode text (a lone surrogate): nothing a database can store."""


class ContentTooLarge(ContentInvalid):
    pass


class NotFound(DomainError):
    """No such object, or one the actor may not know exists."""


class Forbidden(DomainError):
    """The actor sees the object but may not do this to it."""
