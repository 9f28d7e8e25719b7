"""Exception tree of the in-container supervisor, with the exit code of each failure.

SupervisorError              base; the entrypoint logs the message and exits with ``exit_code``
├── ConfigError              an invalid environment value or service name (exit 2)
├── ToolMissingError         a program the plan needs is not installed (exit 1)
├── ProxyNotListeningError   nginx did not open its port in time (exit 1)
├── CertificateError         no usable certificate could be read or obtained (exit 11)
└── ReloadError              nginx rejected a configuration or did not apply it (exit 14)

The codes follow ssl-manager's: 0 ok, 1 missing tool or proxy not listening,
10 domain unreachable, 11 certificate, 12 TLS self-test, 13 registration, 14 reload.
Code 12 is kept for that numbering but never used: a certificate that does not
match its key fails nginx's configuration test, which exits 14.
"""

from __future__ import annotations

__all__ = [
    "EXIT_OK",
    "EXIT_MISSING_TOOL",
    "EXIT_CONFIG",
    "EXIT_DOMAIN_UNREACHABLE",
    "EXIT_CERTIFICATE",
    "EXIT_TLS_SELF_TEST",
    "EXIT_REGISTRATION",
    "EXIT_RELOAD",
    "SupervisorError",
    "ConfigError",
    "ToolMissingError",
    "ProxyNotListeningError",
    "CertificateError",
    "ReloadError",
]

EXIT_OK = 0
EXIT_MISSING_TOOL = 1
EXIT_CONFIG = 2
EXIT_DOMAIN_UNREACHABLE = 10
EXIT_CERTIFICATE = 11
EXIT_TLS_SELF_TEST = 12
EXIT_REGISTRATION = 13
EXIT_RELOAD = 14


class SupervisorError(Exception):
    """Base of every failure that stops the supervisor before or during supervision."""

    exit_code = EXIT_MISSING_TOOL


class ConfigError(SupervisorError):
    """An environment variable or the service name is invalid; nothing was started."""

    exit_code = EXIT_CONFIG

    def __init__(self, name: str, value: object, accepted: str) -> None:
        self.name = name
        self.value = value
        self.accepted = accepted
        super().__init__(f"invalid value for {name}: {value!r}; {accepted}")


class ToolMissingError(SupervisorError):
    """A program the supervisor runs is not installed at the configured path."""

    exit_code = EXIT_MISSING_TOOL

    def __init__(self, tool: str, path: str, hint: str) -> None:
        self.tool = tool
        self.path = path
        super().__init__(f"{tool} not found at {path}; {hint}")


class ProxyNotListeningError(SupervisorError):
    """nginx was started but its port did not accept connections in time."""

    exit_code = EXIT_MISSING_TOOL

    def __init__(self, port: int, timeout_s: float) -> None:
        self.port = port
        self.timeout_s = timeout_s
        super().__init__(
            f"nginx did not listen on port {port} within {timeout_s:g} s; "
            f"its error lines above say why (often the port is already in use)"
        )


class CertificateError(SupervisorError):
    """No usable certificate could be read or obtained for a domain."""

    exit_code = EXIT_CERTIFICATE

    def __init__(self, domain: str, reason: str) -> None:
        self.domain = domain
        self.reason = reason
        super().__init__(f"certificate for {domain} could not be obtained: {reason}")


class ReloadError(SupervisorError):
    """nginx rejected a candidate configuration, or did not apply it after a reload."""

    exit_code = EXIT_RELOAD

    def __init__(self, config_file: str, reason: str) -> None:
        self.config_file = config_file
        self.reason = reason
        super().__init__(f"nginx configuration {config_file} was not applied: {reason}")
