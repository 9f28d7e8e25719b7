"""Exception tree of the host-side tool.

InfraError                   base; ``main`` prints its message and exits with ``exit_code``
├── SettingsError            an invalid flag, environment or file value (exit 2)
├── DockerError              the Docker Engine is unreachable or rejected a call
│   ├── ImageNotFoundError   an image is missing locally and cannot be pulled
│   ├── NotOursError         a resource of the same name exists without our label
│   └── ContainerFailedError a container exited or turned unhealthy while awaited
├── ImageBuildError          a base, stand-in or wrapper image failed to build
└── ProbeFailedError         one or more checks failed (the report says which)
"""

from __future__ import annotations

__all__ = [
    "InfraError",
    "SettingsError",
    "DockerError",
    "ImageNotFoundError",
    "NotOursError",
    "ContainerFailedError",
    "ImageBuildError",
    "ProbeFailedError",
]

EXIT_FAILED = 1
EXIT_USAGE = 2


class InfraError(Exception):
    """Base of every error the tool reports to the user."""

    exit_code = EXIT_FAILED


class SettingsError(InfraError):
    """An input value is invalid; nothing has been changed yet."""

    exit_code = EXIT_USAGE

    def __init__(self, option: str, value: object, accepted: str) -> None:
        self.option = option
        self.value = value
        self.accepted = accepted
        if isinstance(value, bool):
            # A flag has no value to show; the problem is how it was combined.
            super().__init__(f"invalid use of {option}: {accepted}")
        else:
            super().__init__(f"invalid value for {option}: {value!r}; {accepted}")


class DockerError(InfraError):
    """The Docker Engine is unreachable or rejected a call."""


class ImageNotFoundError(DockerError):
    """An image is not present locally and cannot be pulled."""

    def __init__(self, image: str, hint: str) -> None:
        self.image = image
        super().__init__(f"image {image!r} not found locally; {hint}")


class NotOursError(DockerError):
    """A container, network or volume of the requested name was not created by this tool."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        super().__init__(
            f"{kind} {name!r} exists but was not created by unicity-infra "
            f"(it has no org.unicity.infra.managed label); remove or rename it, "
            f"or choose another name with --container-name"
        )


class ContainerFailedError(DockerError):
    """A container exited or turned unhealthy while the tool waited for it."""

    def __init__(
        self,
        container: str,
        reason: str,
        *,
        exit_status: int | None = None,
        log_tail: list[str] | None = None,
    ) -> None:
        self.container = container
        self.reason = reason
        self.exit_status = exit_status
        self.log_tail = log_tail or []
        message = f"container {container!r} {reason}"
        if self.log_tail:
            message += f"; its last {len(self.log_tail)} log lines follow.\n"
            message += "\n".join(f"  | {line}" for line in self.log_tail)
            message += f"\nRun 'docker logs {container}' for the rest."
        else:
            message += f"; it has written no log lines yet (see 'docker logs {container}')"
        super().__init__(message)


class ImageBuildError(InfraError):
    """A base, stand-in or wrapper image failed to build."""

    def __init__(self, image: str, step: str, output_tail: list[str] | None = None) -> None:
        self.image = image
        self.step = step
        self.output_tail = output_tail or []
        message = f"building image {image!r} failed at step: {step}"
        if self.output_tail:
            message += "\n" + "\n".join(f"  | {line}" for line in self.output_tail)
        super().__init__(message)


class ProbeFailedError(InfraError):
    """One or more checks failed; the rendered report names them."""
