"""Correlation ids for real server faults: the client's error and the logged traceback share one."""

from __future__ import annotations

import logging
import secrets


def new_incident_id() -> str:
    """12 hex characters: enough to find one traceback in a day of logs."""
    return secrets.token_hex(6)


def log_incident(logger: logging.Logger, incident_id: str, message: str) -> None:
    """Log the exception being handled, with its traceback, tagged with the incident id."""
    logger.error("incident=%s %s", incident_id, message, exc_info=True)
