"""Certificate lifecycle inside the container: read, reuse or issue the certificate.

Certificates live where certbot keeps them, ``<cert root>/live/<domain>/``
``{fullchain.pem,privkey.pem}``, so a later certbot run finds the same layout.
Certificates come from an ACME server through certbot's webroot method, or are
self-signed when ``SSL_TEST_MODE`` is on. The same lineage is renewed later with
``certbot renew --cert-name <domain>``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from unicity_infra.container.config import SupervisorConfig
from unicity_infra.container.errors import CertificateError, ToolMissingError

__all__ = [
    "SELF_SIGNED_VALID_DAYS",
    "LETS_ENCRYPT_DIRECTORY",
    "LETS_ENCRYPT_STAGING_DIRECTORY",
    "AcmeSource",
    "acme_source",
    "CertificateState",
    "certificate_paths",
    "read_certificate_state",
    "parse_x509_text",
    "renewal_reason",
    "render_openssl_request_config",
    "issue_self_signed",
    "certbot_command",
    "set_aside_unmanaged_certificate",
    "issue_acme_certificate",
    "ensure_certificate",
    "certbot_renew_command",
    "renew_acme_certificate",
    "certificate_fingerprint",
]

logger = logging.getLogger(__name__)

SELF_SIGNED_VALID_DAYS = 90
_OPENSSL_TIMEOUT_S = 30.0
# Let's Encrypt usually validates within seconds; the cap only stops a hung certbot.
_CERTBOT_TIMEOUT_S = 300.0
LETS_ENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING_DIRECTORY = "https://acme-staging-v02.api.letsencrypt.org/directory"


@dataclass(frozen=True)
class AcmeSource:
    """The ACME directory certbot uses, the CA file that verifies its HTTPS, and where the choice came from.

    ``directory`` None means certbot's own default, Let's Encrypt (or its staging CA
    when ``staging`` is set). ``origin`` names the source for the log: "ACME_SERVER",
    "edge" or "default".
    """

    directory: str | None
    ca_bundle: Path | None = None
    staging: bool = False
    origin: str = "default"

    def describe(self) -> str:
        """Return the directory URL with its origin, e.g. ``Let's Encrypt staging (https://…)``."""
        if self.directory is None:
            if self.staging:
                return f"Let's Encrypt staging ({LETS_ENCRYPT_STAGING_DIRECTORY}; SSL_STAGING=true)"
            return f"Let's Encrypt ({LETS_ENCRYPT_DIRECTORY})"
        source = "set by ACME_SERVER" if self.origin == "ACME_SERVER" else f"advertised by the {self.origin}"
        return f"{self.directory} ({source})"


def acme_source(
    config: SupervisorConfig,
    *,
    advertised_directory: str | None = None,
    advertised_ca_bundle: Path | None = None,
) -> AcmeSource:
    """Pick the ACME CA: ``ACME_SERVER``, else the edge's advertised directory, else Let's Encrypt.

    ``ACME_CA_BUNDLE``, when set, verifies the chosen directory's HTTPS in place of
    the edge's advertised CA file.

    >>> acme_source(SupervisorConfig(), advertised_directory="https://haproxy:14000/dir").origin
    'edge'
    """
    if config.acme_server:
        return AcmeSource(config.acme_server, config.acme_ca_bundle, origin="ACME_SERVER")
    if advertised_directory:
        return AcmeSource(advertised_directory, config.acme_ca_bundle or advertised_ca_bundle, origin="edge")
    return AcmeSource(None, config.acme_ca_bundle, staging=config.ssl_staging)


@dataclass(frozen=True)
class CertificateState:
    """A certificate on disk and what the supervisor needs to know about it."""

    domain: str
    cert_file: Path
    key_file: Path
    not_after: datetime
    days_remaining: int
    names: tuple[str, ...] = ()
    self_signed: bool = False

    def days_remaining_at(self, now: datetime) -> int:
        """Return the whole days left at NOW (negative once expired)."""
        return math.floor((self.not_after - now).total_seconds() / 86400)


def certificate_paths(cert_root: Path, domain: str) -> tuple[Path, Path]:
    """Return the (fullchain.pem, privkey.pem) paths certbot uses for DOMAIN under CERT_ROOT.

    >>> certificate_paths(Path("/etc/letsencrypt"), "relay.example.org")[0]
    PosixPath('/etc/letsencrypt/live/relay.example.org/fullchain.pem')
    """
    live = cert_root / "live" / domain
    return live / "fullchain.pem", live / "privkey.pem"


def parse_x509_text(text: str) -> tuple[datetime, tuple[str, ...], bool]:
    """Parse ``openssl x509 -noout -enddate -subject -issuer -ext subjectAltName`` output.

    Returns (not_after in UTC, SAN DNS names, whether subject equals issuer).
    Raises ValueError when the expiry line is missing or malformed.
    """
    not_after: datetime | None = None
    subject = issuer = None
    names: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("notAfter="):
            # openssl prints e.g. "notAfter=Jun  2 10:11:12 2026 GMT"; collapse the day padding.
            raw = " ".join(stripped.removeprefix("notAfter=").split())
            not_after = datetime.strptime(raw, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc)
        elif stripped.startswith("subject="):
            subject = stripped.removeprefix("subject=").strip()
        elif stripped.startswith("issuer="):
            issuer = stripped.removeprefix("issuer=").strip()
        elif stripped.startswith("DNS:"):
            names.extend(item.strip().removeprefix("DNS:") for item in stripped.split(",") if "DNS:" in item)

    if not_after is None:
        raise ValueError(f"no notAfter line in openssl output: {text.strip()[:200]!r}")
    return not_after, tuple(names), subject is not None and subject == issuer


def read_certificate_state(
    domain: str,
    cert_root: Path,
    *,
    openssl: Path = Path("/usr/bin/openssl"),
    now: datetime | None = None,
) -> CertificateState | None:
    """Read the certificate of DOMAIN under CERT_ROOT; None when either file is missing.

    Raises CertificateError when the certificate exists but openssl cannot read it.
    """
    cert_file, key_file = certificate_paths(cert_root, domain)
    if not cert_file.is_file() or not key_file.is_file():
        return None

    command = [
        str(openssl), "x509", "-noout", "-in", str(cert_file),
        "-enddate", "-subject", "-issuer", "-ext", "subjectAltName", "-nameopt", "RFC2253",
    ]
    result = _run_openssl(command, domain=domain)
    if result.returncode != 0:
        raise CertificateError(domain, f"openssl could not read {cert_file}: {result.stderr.strip()}")
    try:
        not_after, names, self_signed = parse_x509_text(result.stdout)
    except ValueError as exc:
        raise CertificateError(domain, f"unexpected openssl output for {cert_file}: {exc}") from None

    current = now or datetime.now(timezone.utc)
    state = CertificateState(
        domain=domain,
        cert_file=cert_file,
        key_file=key_file,
        not_after=not_after,
        days_remaining=0,
        names=names,
        self_signed=self_signed,
    )
    return _with_days(state, current)


def renewal_reason(
    state: CertificateState | None,
    *,
    names: tuple[str, ...],
    renew_days: int,
    test_mode: bool,
) -> str | None:
    """Return why a new certificate is needed, or None when STATE can be reused.

    >>> renewal_reason(None, names=("a.example.org",), renew_days=30, test_mode=True)
    'no certificate yet'
    """
    if state is None:
        return "no certificate yet"
    if state.days_remaining <= renew_days:
        return f"{state.days_remaining} days left, renewal threshold is {renew_days} days"
    missing = [name for name in names if name not in state.names]
    if missing:
        return f"certificate does not name {', '.join(missing)}"
    if state.self_signed and not test_mode:
        return "certificate is self-signed but SSL_TEST_MODE is off"
    return None


def render_openssl_request_config(names: tuple[str, ...]) -> str:
    """Render an openssl ``req`` configuration for a self-signed TLS server certificate.

    The first name becomes the subject CN; all of them go into the subjectAltName,
    because clients match host names against the SAN only (RFC 6125, section 6.4.4).
    """
    alt_names = ", ".join(f"DNS:{name}" for name in names)
    return (
        "[req]\n"
        "prompt = no\n"
        "distinguished_name = subject\n"
        "x509_extensions = server_cert\n"
        "\n"
        "[subject]\n"
        f"CN = {names[0]}\n"
        "\n"
        "[server_cert]\n"
        f"subjectAltName = {alt_names}\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectKeyIdentifier = hash\n"
    )


def issue_self_signed(
    names: tuple[str, ...],
    cert_root: Path,
    *,
    openssl: Path = Path("/usr/bin/openssl"),
    valid_days: int = SELF_SIGNED_VALID_DAYS,
) -> CertificateState:
    """Create a self-signed EC P-256 certificate for NAMES and install it for NAMES[0].

    The key and certificate are written beside their final paths and then renamed
    into place, so a reader never sees half a file. The key file gets mode 0600.
    Raises CertificateError when openssl fails.
    """
    domain = names[0]
    cert_file, key_file = certificate_paths(cert_root, domain)
    cert_file.parent.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix=".issue-", dir=cert_file.parent) as scratch:
        request_config = Path(scratch) / "request.cnf"
        request_config.write_text(render_openssl_request_config(names))
        new_key = Path(scratch) / "privkey.pem"
        new_cert = Path(scratch) / "fullchain.pem"
        command = [
            str(openssl), "req", "-x509", "-new", "-nodes",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-days", str(valid_days), "-config", str(request_config),
            "-keyout", str(new_key), "-out", str(new_cert),
        ]
        logger.info("issuing self-signed certificate domain=%s names=%s days=%d", domain, ",".join(names), valid_days)
        result = _run_openssl(command, domain=domain)
        if result.returncode != 0:
            raise CertificateError(domain, f"openssl req exited with status {result.returncode}: {result.stderr.strip()}")

        os.chmod(new_key, 0o600)
        os.replace(new_key, key_file)
        os.replace(new_cert, cert_file)

    state = read_certificate_state(domain, cert_root, openssl=openssl)
    if state is None:  # pragma: no cover - the files were renamed into place just above
        raise CertificateError(domain, f"{cert_file} is missing right after issuance")
    return state


def certbot_command(
    config: SupervisorConfig, *, work_dir: Path, logs_dir: Path, acme: AcmeSource | None = None
) -> list[str]:
    """Return the ``certbot certonly`` argv that obtains the configured names through the webroot.

    The supervisor has already decided a new certificate is due, so the command
    forces issuance instead of applying certbot's own renewal threshold. ACME
    defaults to ``acme_source(config)``.
    """
    assert config.domain is not None
    command = [
        str(config.certbot_binary), "certonly", "--non-interactive", "--agree-tos",
        "--webroot", "--webroot-path", str(config.webroot),
        "--cert-name", config.domain,
        "--config-dir", str(config.cert_root), "--work-dir", str(work_dir), "--logs-dir", str(logs_dir),
        "--key-type", "ecdsa", "--elliptic-curve", "secp256r1",
        "--force-renewal",
    ]
    for name in config.server_names:
        command += ["-d", name]
    if config.admin_email:
        command += ["--email", config.admin_email, "--no-eff-email"]
    else:
        command.append("--register-unsafely-without-email")
    return command + _server_arguments(acme or acme_source(config))


def certbot_renew_command(config: SupervisorConfig, acme: AcmeSource, *, work_dir: Path, logs_dir: Path) -> list[str]:
    """Return the ``certbot renew`` argv for this domain's lineage only, through the webroot.

    The supervisor applies ``SSL_CERT_RENEW_DAYS`` itself before calling it, so the
    command forces renewal. Without ``--no-random-sleep-on-renew`` a certbot run
    without a terminal waits up to eight minutes first.
    """
    assert config.domain is not None
    command = [
        str(config.certbot_binary), "renew", "--non-interactive", "--no-random-sleep-on-renew",
        "--cert-name", config.domain,
        "--webroot", "--webroot-path", str(config.webroot),
        "--config-dir", str(config.cert_root), "--work-dir", str(work_dir), "--logs-dir", str(logs_dir),
        "--force-renewal",
    ]
    return command + _server_arguments(acme)


def _server_arguments(acme: AcmeSource) -> list[str]:
    if acme.directory is not None:
        return ["--server", acme.directory]
    if acme.staging:
        return ["--staging"]
    return []


def set_aside_unmanaged_certificate(cert_root: Path, domain: str, *, now: datetime | None = None) -> Path | None:
    """Move DOMAIN's live and archive directories aside when certbot does not manage them.

    certbot refuses to create a lineage over an existing ``live/<domain>`` that has
    no ``renewal/<domain>.conf``, which is what a test-mode certificate leaves.
    Returns the directory they were moved to, or None when nothing was moved.
    """
    if (cert_root / "renewal" / f"{domain}.conf").exists():
        return None
    leftovers = [path for path in (cert_root / "live" / domain, cert_root / "archive" / domain) if path.exists()]
    if not leftovers:
        return None

    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    destination = cert_root / "replaced" / f"{domain}-{stamp}"
    destination.mkdir(parents=True, exist_ok=True)
    for path in leftovers:
        os.replace(path, destination / path.parent.name)
    logger.info("moved certificate files not managed by certbot domain=%s to=%s", domain, destination)
    return destination


def issue_acme_certificate(config: SupervisorConfig, acme: AcmeSource | None = None) -> CertificateState:
    """Obtain a certificate from the ACME CA with certbot's HTTP-01 webroot method.

    nginx must already serve the webroot on port 80. ACME defaults to
    ``acme_source(config)``. Raises CertificateError when certbot fails or leaves
    no certificate, and ToolMissingError without certbot.
    """
    assert config.domain is not None
    source = acme or acme_source(config)
    work_dir, logs_dir = _certbot_dirs(config)
    command = certbot_command(config, work_dir=work_dir, logs_dir=logs_dir, acme=source)

    set_aside_unmanaged_certificate(config.cert_root, config.domain)
    logger.info(
        "requesting certificate domain=%s names=%s server=%s",
        config.domain, ",".join(config.server_names), _source_label(source),
    )
    _run_certbot(command, config.domain, source, logs_dir=logs_dir)

    state = read_certificate_state(config.domain, config.cert_root, openssl=config.openssl_binary)
    if state is None:
        raise CertificateError(config.domain, f"certbot succeeded but {certificate_paths(config.cert_root, config.domain)[0]} is missing")
    logger.info("certificate obtained domain=%s expires=%s", config.domain, state.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return state


def renew_acme_certificate(config: SupervisorConfig, acme: AcmeSource) -> CertificateState:
    """Renew this domain's certbot lineage now and return the certificate that is live afterwards.

    Raises CertificateError when certbot fails, ToolMissingError without certbot.
    """
    assert config.domain is not None
    work_dir, logs_dir = _certbot_dirs(config)
    command = certbot_renew_command(config, acme, work_dir=work_dir, logs_dir=logs_dir)
    logger.info("renewing certificate domain=%s server=%s", config.domain, _source_label(acme))
    _run_certbot(command, config.domain, acme, logs_dir=logs_dir)

    state = read_certificate_state(config.domain, config.cert_root, openssl=config.openssl_binary)
    if state is None:
        raise CertificateError(config.domain, f"{certificate_paths(config.cert_root, config.domain)[0]} is missing after certbot renew")
    return state


def certificate_fingerprint(cert_file: Path) -> str | None:
    """Return the SHA-256 of CERT_FILE's content (the live symlink is followed), or None when it is missing."""
    try:
        return hashlib.sha256(cert_file.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _source_label(acme: AcmeSource) -> str:
    return acme.directory or ("staging" if acme.staging else "default")


def _certbot_dirs(config: SupervisorConfig) -> tuple[Path, Path]:
    return config.run_dir / "certbot" / "work", config.run_dir / "certbot" / "logs"


def _run_certbot(command: list[str], domain: str, acme: AcmeSource, *, logs_dir: Path) -> None:
    env = dict(os.environ)
    if acme.ca_bundle is not None:
        # certbot talks to the ACME server through requests, which reads its trust store from here.
        env["REQUESTS_CA_BUNDLE"] = str(acme.ca_bundle)
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=_CERTBOT_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise ToolMissingError("certbot", command[0], "install certbot or set UNICITY_CERTBOT_BIN") from None
    except subprocess.TimeoutExpired:
        raise CertificateError(domain, f"certbot did not finish within {_CERTBOT_TIMEOUT_S:g} s") from None

    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise CertificateError(
            domain,
            f"certbot exited with status {result.returncode}; its last lines follow, and the full log is in "
            f"{logs_dir}/letsencrypt.log:\n{tail}",
        )


def ensure_certificate(
    config: SupervisorConfig,
    *,
    acme: AcmeSource | None = None,
    before_request: Callable[[], None] | None = None,
) -> CertificateState:
    """Return a usable certificate for the configured domain, reusing one that is still valid.

    BEFORE_REQUEST runs just before the ACME CA is asked (never in test mode), so a
    check it raises from stops the request. Raises CertificateError when SSL_DOMAIN
    is empty or no certificate can be read or obtained.
    """
    if config.domain is None:
        raise CertificateError("(none)", "SSL_DOMAIN is empty, so there is no domain to certify")

    current = read_certificate_state(config.domain, config.cert_root, openssl=config.openssl_binary)
    reason = renewal_reason(
        current,
        names=config.server_names,
        renew_days=config.cert_renew_days,
        test_mode=config.ssl_test_mode,
    )
    if reason is None and current is not None:
        logger.info(
            "reusing certificate domain=%s expires=%s days_remaining=%d",
            config.domain, current.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"), current.days_remaining,
        )
        return current

    logger.info("new certificate needed domain=%s reason=%s", config.domain, reason)
    if config.ssl_test_mode:
        return issue_self_signed(config.server_names, config.cert_root, openssl=config.openssl_binary)
    if before_request is not None:
        before_request()
    return issue_acme_certificate(config, acme)


def _with_days(state: CertificateState, now: datetime) -> CertificateState:
    return CertificateState(
        domain=state.domain,
        cert_file=state.cert_file,
        key_file=state.key_file,
        not_after=state.not_after,
        days_remaining=state.days_remaining_at(now),
        names=state.names,
        self_signed=state.self_signed,
    )


def _run_openssl(command: list[str], *, domain: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=_OPENSSL_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise ToolMissingError("openssl", command[0], "install the openssl package or set UNICITY_OPENSSL_BIN") from None
    except subprocess.TimeoutExpired:
        raise CertificateError(domain, f"openssl did not finish within {_OPENSSL_TIMEOUT_S:g} s") from None
