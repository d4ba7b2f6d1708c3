"""Log filters: no access token in any line, no traceback for refused client input."""

import logging
import re

_TOKEN_RE = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)


def redact(text: str) -> str:
    return _TOKEN_RE.sub(r"\1[redacted]", text)


class RedactTokensFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class OneLineSecurityLog(logging.Filter):
    """django.security records are refused client input: the message, not a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("django.security"):
            record.exc_info = None
            record.exc_text = None
        return True
