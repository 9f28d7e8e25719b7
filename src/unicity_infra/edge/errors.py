"""Exception tree of the local edge; each class carries the HTTP status the API replies with.

EdgeError                  base; ``status`` is the HTTP status, ``to_json()`` the reply body
├── InvalidFieldError      400: one registration field is invalid (``field`` names it)
├── InvalidRequestError    400: the body is not a JSON object, or the path is malformed
├── UnauthorizedError      401: bearer token missing or wrong
├── NotFoundError          404: no registration for the domain, or no such route
├── MethodNotAllowedError  405: the endpoint exists but not for this method
├── ConflictError          409: the domain is registered to another container
├── BodyTooLargeError      413: the request body exceeds the limit
├── ConfigRejectedError    422: ``haproxy -c`` or the reload rejected the new configuration
├── HAProxyError           503: haproxy is not running, could not be started, or timed out
└── StateFileError         the state file cannot be read at start (not an HTTP reply)
"""

from __future__ import annotations

__all__ = [
    "EdgeError",
    "InvalidFieldError",
    "InvalidRequestError",
    "UnauthorizedError",
    "NotFoundError",
    "MethodNotAllowedError",
    "ConflictError",
    "BodyTooLargeError",
    "ConfigRejectedError",
    "HAProxyError",
    "StateFileError",
]


class EdgeError(Exception):
    """Base of every error the edge reports; the API turns it into a JSON reply."""

    status = 500

    def to_json(self) -> dict[str, object]:
        return {"error": str(self)}


class InvalidFieldError(EdgeError):
    """A registration field has an invalid value."""

    status = 400

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")

    def to_json(self) -> dict[str, object]:
        return {"error": str(self), "field": self.field}


class InvalidRequestError(EdgeError):
    """The request cannot be understood as a whole (bad JSON, bad path)."""

    status = 400


class UnauthorizedError(EdgeError):
    """The request lacks the bearer token the edge is configured with, or it is wrong."""

    status = 401


class NotFoundError(EdgeError):
    """No registration exists for a domain, or the path names no endpoint."""

    status = 404


class MethodNotAllowedError(EdgeError):
    """The endpoint exists but does not accept this HTTP method."""

    status = 405

    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        self.allowed = allowed
        super().__init__(f"method {method} is not allowed here; use {' or '.join(allowed)}")


class ConflictError(EdgeError):
    """The domain is already registered to a different container."""

    status = 409

    def __init__(self, domain: str, owner: str, requested: str) -> None:
        self.domain = domain
        self.owner = owner
        self.requested = requested
        super().__init__(
            f"domain {domain!r} is registered to container {owner!r}, not {requested!r}; "
            f"DELETE /v1/backends/{domain} first if the new container replaces it"
        )

    def to_json(self) -> dict[str, object]:
        return {"error": str(self), "domain": self.domain, "container": self.owner}


class BodyTooLargeError(EdgeError):
    """The request body is larger than the API accepts."""

    status = 413


class ConfigRejectedError(EdgeError):
    """HAProxy rejected the configuration rendered for a change; the old one keeps running."""

    status = 422

    def __init__(self, stage: str, output_lines: list[str]) -> None:
        self.stage = stage
        self.output_lines = output_lines
        detail = "; ".join(output_lines[:5]) or "no output"
        super().__init__(
            f"haproxy rejected the new configuration at {stage} ({detail}); "
            f"the previous routes stay active and the registration was not saved"
        )

    def to_json(self) -> dict[str, object]:
        return {"error": str(self), "stage": self.stage, "haproxy_output": self.output_lines}


class HAProxyError(EdgeError):
    """HAProxy is not running, could not be started, or did not report a new worker in time."""

    status = 503


class StateFileError(EdgeError):
    """The saved registrations cannot be read; the edge does not start with a guess."""
