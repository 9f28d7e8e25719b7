"""The faucet's tenant variables and operator secrets, both turned into its environment at start.

js-faucet expects a manager (the agentic-hosting control plane) to hand it six
``UNICITY_*`` tenant variables. A standalone deployment has no manager, so
they are generated once, with a real secp256k1 manager key, and kept in a
0600 file on the data volume. Operator secrets are files under /run/secrets.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import subprocess
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from unicity_infra.container.errors import ConfigError, ToolMissingError
from unicity_infra.container.services.faucet_log import is_compressed_pubkey

__all__ = [
    "TENANT_VARIABLES",
    "SECP256K1_ORDER",
    "KeyDeriver",
    "Tenant",
    "generate_tenant",
    "load_tenant",
    "save_tenant",
    "ensure_tenant",
    "node_key_deriver",
    "parse_secret_names",
    "read_secret_files",
    "tenant_environment",
]

logger = logging.getLogger(__name__)

TENANT_VARIABLES = (
    "UNICITY_MANAGER_PUBKEY",
    "UNICITY_MANAGER_DIRECT_ADDRESS",
    "UNICITY_BOOT_TOKEN",
    "UNICITY_INSTANCE_ID",
    "UNICITY_INSTANCE_NAME",
    "UNICITY_TEMPLATE_ID",
)
TEMPLATE_ID = "unicity-infra-faucet"
TENANT_FORMAT = 1
# The order n of the secp256k1 group (SEC 2, section 2.4.1); a private key is an integer in [1, n-1].
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

# Takes a private key as 64 hex digits and returns its compressed public key as 66 hex digits.
KeyDeriver = Callable[[str], str]

_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DERIVE_TIMEOUT_S = 20.0
# Reads the private key from stdin, so it never appears in a process list.
_NODE_DERIVE_SCRIPT = (
    "let hex='';process.stdin.on('data',c=>hex+=c).on('end',()=>{"
    "const e=require('crypto').createECDH('secp256k1');"
    "e.setPrivateKey(hex.trim(),'hex');"
    "process.stdout.write(e.getPublicKey('hex','compressed'));});"
)


@dataclass(frozen=True)
class Tenant:
    """The generated tenant: the manager's private key and the variables the faucet reads."""

    variables: dict[str, str]
    created_at: str
    manager_private_key: str = field(repr=False)

    def to_json(self) -> dict[str, object]:
        return {
            "format": TENANT_FORMAT,
            "created_at": self.created_at,
            "manager_private_key": self.manager_private_key,
            "variables": dict(self.variables),
        }


def generate_tenant(*, derive_public_key: KeyDeriver, instance_name: str) -> Tenant:
    """Generate a tenant with a fresh manager key pair, boot token and instance id.

    Raises ConfigError when DERIVE_PUBLIC_KEY returns something that is not a
    compressed public key.
    """
    private_key = f"{secrets.randbelow(SECP256K1_ORDER - 1) + 1:064x}"
    public_key = derive_public_key(private_key).strip().lower()
    if not is_compressed_pubkey(public_key):
        raise ConfigError("UNICITY_MANAGER_PUBKEY", public_key[:80], "the key derivation returned no compressed public key")

    variables = {
        "UNICITY_MANAGER_PUBKEY": public_key,
        "UNICITY_MANAGER_DIRECT_ADDRESS": f"DIRECT://{public_key}",
        "UNICITY_BOOT_TOKEN": secrets.token_hex(32),
        # NOTE: js-faucet's format checks for the instance id were not read; a UUID is what a manager would issue (guess).
        "UNICITY_INSTANCE_ID": str(uuid.uuid4()),
        "UNICITY_INSTANCE_NAME": instance_name,
        "UNICITY_TEMPLATE_ID": TEMPLATE_ID,
    }
    created_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Tenant(variables=variables, created_at=created_at, manager_private_key=private_key)


def load_tenant(path: Path) -> Tenant | None:
    """Read the tenant file at PATH; None when it does not exist.

    Raises ConfigError naming PATH when the file is unreadable or not a tenant
    written by :func:`save_tenant`.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError("FAUCET_TENANT_FILE", str(path), f"the file cannot be read ({exc.strerror})") from None

    fix = "restore it from a backup ('unicity-infra faucet identity import'), or delete it to generate a new tenant"
    try:
        document = json.loads(text)
        variables = document["variables"]
        tenant = Tenant(
            variables={name: str(variables[name]) for name in TENANT_VARIABLES},
            created_at=str(document["created_at"]),
            manager_private_key=str(document["manager_private_key"]),
        )
    except (ValueError, KeyError, TypeError):
        raise ConfigError("FAUCET_TENANT_FILE", str(path), f"the file is not a valid tenant file; {fix}") from None
    if not is_compressed_pubkey(tenant.variables["UNICITY_MANAGER_PUBKEY"]):
        raise ConfigError("FAUCET_TENANT_FILE", str(path), f"UNICITY_MANAGER_PUBKEY in it is not a compressed key; {fix}")
    return tenant


def save_tenant(path: Path, tenant: Tenant) -> None:
    """Write TENANT to PATH with mode 0600, atomically: a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(tenant.to_json(), handle, indent=2)
        handle.write("\n")
    os.chmod(partial, 0o600)
    os.replace(partial, path)


def ensure_tenant(path: Path, *, derive_public_key: KeyDeriver, instance_name: str) -> Tenant:
    """Return the tenant kept at PATH, generating and saving one on the first start.

    A second call returns the saved tenant unchanged. Raises ConfigError when
    the file exists but is invalid.
    """
    tenant = load_tenant(path)
    if tenant is not None:
        logger.info("reusing tenant variables from %s created_at=%s", path, tenant.created_at)
        return tenant

    tenant = generate_tenant(derive_public_key=derive_public_key, instance_name=instance_name)
    save_tenant(path, tenant)
    logger.info(
        "generated tenant variables in %s manager_pubkey=%s instance_id=%s",
        path, tenant.variables["UNICITY_MANAGER_PUBKEY"], tenant.variables["UNICITY_INSTANCE_ID"],
    )
    return tenant


def node_key_deriver(node_binary: Path) -> KeyDeriver:
    """Return a KeyDeriver that runs NODE_BINARY with Node's built-in secp256k1 ECDH.

    Python's standard library has no elliptic-curve code, and the image has
    Node.js for the faucet anyway. The deriver raises ToolMissingError when
    node cannot run and ConfigError when it fails.
    """

    def derive(private_key: str) -> str:
        try:
            result = subprocess.run(
                [str(node_binary), "-e", _NODE_DERIVE_SCRIPT],
                input=private_key, capture_output=True, text=True, timeout=_DERIVE_TIMEOUT_S, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ToolMissingError("node", str(node_binary), f"it could not derive the manager key ({exc})") from None
        if result.returncode != 0:
            last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise ConfigError("UNICITY_MANAGER_PUBKEY", "(generated)", f"node failed to derive the public key: {last_line}")
        return result.stdout

    return derive


def parse_secret_names(value: str | None) -> tuple[str, ...]:
    """Parse ``FAUCET_SECRET_FILES``, the comma-separated names of files under /run/secrets.

    Each name is also the environment variable its content is exported as.

    >>> parse_secret_names("SPHERE_API_KEY, FAUCET_MNEMONIC")
    ('SPHERE_API_KEY', 'FAUCET_MNEMONIC')
    """
    names: list[str] = []
    for item in (value or "").split(","):
        name = item.strip()
        if not name:
            continue
        if not _SECRET_NAME.match(name):
            raise ConfigError(
                "FAUCET_SECRET_FILES", value, f"{name!r} is not a valid environment variable name (letters, digits, '_')"
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def read_secret_files(names: Iterable[str], directory: Path) -> dict[str, str]:
    """Return NAME → content of DIRECTORY/NAME for each name, one trailing newline removed.

    Raises ConfigError naming the file, never its content, when a file is
    missing, unreadable, empty, not UTF-8 or contains a NUL byte.
    """
    values: dict[str, str] = {}
    for name in names:
        path = directory / name
        mount_hint = f"pass it with --secret-file {name}=PATH"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"secret {name}", str(path), f"the file does not exist; {mount_hint}") from None
        except IsADirectoryError:
            raise ConfigError(f"secret {name}", str(path), f"it is a directory, not a file; {mount_hint}") from None
        except OSError as exc:
            raise ConfigError(f"secret {name}", str(path), f"the file cannot be read ({exc.strerror}); fix its permissions") from None

        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"secret {name}", str(path), "the file is not UTF-8 text") from None
        text = text.removesuffix("\n").removesuffix("\r")
        if not text.strip():
            raise ConfigError(f"secret {name}", str(path), "the file is empty; put the secret in it")
        if "\0" in text:
            raise ConfigError(f"secret {name}", str(path), "the file contains a NUL byte, which an environment variable cannot contain")
        values[name] = text
    return values


def tenant_environment(tenant: Tenant, environ: Mapping[str, str]) -> dict[str, str]:
    """Return the tenant variables that ENVIRON does not already set to a non-empty value."""
    return {name: value for name, value in tenant.variables.items() if not environ.get(name, "").strip()}
