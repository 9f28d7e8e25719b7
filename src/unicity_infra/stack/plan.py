"""StackPlan and the pieces every wrapper service shares: labels, environment, secrets."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from unicity_infra.settings import DEFAULT_HAPROXY_API_PORT, RunSettings
from unicity_infra.stack.spec import (
    DEFAULT_STACK,
    LABEL_MANAGED,
    LABEL_SERVICE,
    LABEL_STACK,
    ContainerSpec,
    NetworkSpec,
    SecretFile,
    VolumeSpec,
)

__all__ = [
    "StackPlan",
    "default_container_name",
    "direct_network_name",
    "common_labels", "wrapper_env", "secret_files", "spec_hash"]

HAPROXY_API_KEY_SECRET = "haproxy_api_key"


@dataclass
class StackPlan:
    """Containers in start order, plus the networks and volumes they need."""

    containers: list[ContainerSpec] = field(default_factory=list)
    networks: list[NetworkSpec] = field(default_factory=list)
    volumes: list[VolumeSpec] = field(default_factory=list)


def default_container_name(stack: str, service: str) -> str:
    """Return ``unicity-SERVICE`` for the default stack, ``unicity-STACK-SERVICE`` otherwise."""
    return f"unicity-{service}" if stack == DEFAULT_STACK else f"unicity-{stack}-{service}"


def direct_network_name(stack: str) -> str:
    """Return the private network of STACK in direct mode."""
    return "unicity-infra" if stack == DEFAULT_STACK else f"unicity-infra-{stack}"


def common_labels(*, stack: str, service: str) -> dict[str, str]:
    """Return the labels that let ``status`` and ``down`` find exactly our resources."""
    return {LABEL_MANAGED: "true", LABEL_STACK: stack, LABEL_SERVICE: service}


def wrapper_env(settings: RunSettings) -> dict[str, str]:
    """Return the ssl-manager-style environment every wrapper image reads.

    Secrets are not in it: they travel as files (see :func:`secret_files`).
    """
    env: dict[str, str] = {
        "SSL_REQUIRED": "true" if settings.ssl_required else "false",
        "SSL_HTTPS_PORT": str(settings.https_port),
    }
    if settings.domain:
        env["SSL_DOMAIN"] = settings.domain
        env["SSL_TEST_MODE"] = "true" if settings.ssl_test_mode else "false"
        env["SSL_STAGING"] = "true" if settings.ssl_staging else "false"
    if settings.domain_aliases:
        env["SSL_DOMAIN_ALIASES"] = ",".join(settings.domain_aliases)
    if settings.ssl_email:
        env["SSL_ADMIN_EMAIL"] = settings.ssl_email
    if settings.acme_server:
        env["ACME_SERVER"] = settings.acme_server
    if settings.acme_ca_bundle:
        env["ACME_CA_BUNDLE"] = "/run/secrets/acme_ca_bundle"
    if settings.uses_haproxy:
        env["HAPROXY_HOST"] = settings.haproxy_host or ""
        env["HAPROXY_API_PORT"] = str(DEFAULT_HAPROXY_API_PORT)
        if settings.extra_ports:
            env["EXTRA_PORTS"] = json.dumps([port.to_json() for port in settings.extra_ports])
        if settings.haproxy_api_key_file:
            env["HAPROXY_API_KEY_FILE"] = f"/run/secrets/{HAPROXY_API_KEY_SECRET}"
    env.update(settings.extra_env)
    return env


def secret_files(settings: RunSettings) -> tuple[SecretFile, ...]:
    """Return the host files mounted read-only under /run/secrets/."""
    files: list[SecretFile] = []
    if settings.uses_haproxy and settings.haproxy_api_key_file:
        files.append(SecretFile(HAPROXY_API_KEY_SECRET, settings.haproxy_api_key_file))
    if settings.acme_ca_bundle:
        files.append(SecretFile("acme_ca_bundle", settings.acme_ca_bundle))
    return tuple(files)


def spec_hash(spec: ContainerSpec) -> str:
    """Return a short digest of SPEC, so a changed setting can be distinguished from an unchanged one."""
    document = json.dumps(asdict(spec), sort_keys=True, default=str)
    return hashlib.sha256(document.encode()).hexdigest()[:16]
