"""A request the service refuses: the HTTP status, the reason counted in the metrics, one line for the client."""

from __future__ import annotations

from ..errors import AigdetectError


class Refused(AigdetectError):
    """Answered with ``status`` and ``{"detail": message}``; ``reason`` labels ``aigdetect_request_errors``."""

    def __init__(self, status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.headers = headers or {}
