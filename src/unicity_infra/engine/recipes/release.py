"""Tags, OCI labels and registry names of the wrapper images, computed without I/O.

``engine/provenance.py`` reads the inputs (package metadata, the git checkout,
``SOURCE_DATE_EPOCH``), ``engine/images.py`` applies tags and labels when it
builds, and ``engine/registry.py`` pushes under the names computed here.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from unicity_infra.errors import SettingsError
from unicity_infra.settings import UPSTREAM_IMAGES

__all__ = [
    "DEFAULT_REPOSITORY",
    "IMAGE_TITLES",
    "SHORT_SHA_LENGTH",
    "WRAPPER_PINS",
    "Provenance",
    "SourceCheckout",
    "describe_push_failure",
    "image_name",
    "parse_registry",
    "parse_repository",
    "parse_source_date_epoch",
    "push_repository",
    "rfc3339_utc",
    "tags_to_push",
    "wrapper_labels",
    "wrapper_tags",
]

# Local images are named <repository>/<service>; the tool runs unicity-infra/<service>:<version>.
DEFAULT_REPOSITORY = "unicity-infra"
# docker/metadata-action's type=sha tags use 7 hex digits by default, so the
# tags of a local build and of the CI workflow agree.
SHORT_SHA_LENGTH = 7

OCI = "org.opencontainers.image"
_INFRA = "org.unicity.infra"

# org.opencontainers.image.title and .description of each wrapper image.
IMAGE_TITLES: dict[str, tuple[str, str]] = {
    "relay": (
        "unicity-infra relay",
        "nostr-rs-relay behind nginx with TLS from certbot and HAProxy registration",
    ),
    "faucet": (
        "unicity-infra faucet",
        "js-faucet supervised behind nginx, with its discovery document, TLS from certbot and HAProxy registration",
    ),
    "aggregator-proxy": (
        "unicity-infra aggregator-proxy",
        "nginx in front of aggregator-go with TLS from certbot, HAProxy registration and the genesis trust base",
    ),
    "edge": (
        "unicity-infra edge",
        "HAProxy with the /v1/backends registration API and a Pebble ACME test CA",
    ),
}

# Pinned upstream images (keys of settings.UPSTREAM_IMAGES) each wrapper is
# built from or, for the aggregator's proxy, runs beside. They are recorded as
# org.unicity.infra.pinned.<key> labels, so a pulled image names the upstream
# releases it was made for.
WRAPPER_PINS: dict[str, tuple[str, ...]] = {
    "relay": ("ssl-manager", "relay"),
    "faucet": ("ssl-manager", "faucet"),
    "aggregator-proxy": ("ssl-manager", "bft-core", "mongo", "aggregator-go", "curl"),
    "edge": ("ssl-manager",),
}

# One path component of a repository name, as the distribution reference grammar defines it.
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
# A registry host: DNS labels or an IPv4 address, then an optional port.
_HOST = re.compile(r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)"
                   r"(?::(?P<port>[0-9]+))?$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class SourceCheckout:
    """The git commit that the running package was imported from.

    ``changed_paths`` lists the files under the package directory, relative
    to it, whose content differs from the commit (modified, added or
    untracked), so a build can tell whether the files it copies are committed.
    """

    revision: str
    commit_time: int
    changed_paths: frozenset[str] = frozenset()
    # Looks up the last commit (sha, commit time) that changed any of the given
    # paths, or returns None when git cannot tell.
    last_change: Callable[[tuple[str, ...]], tuple[str, int] | None] | None = field(default=None, compare=False)

    @property
    def short_revision(self) -> str:
        return self.revision[:SHORT_SHA_LENGTH]

    def commit_for(self, paths: Iterable[str]) -> tuple[str, int]:
        """Return the sha and commit time of the last commit that changed PATHS, or HEAD's when unknown.

        An image labelled with that commit stays the same across later commits
        that do not touch its files, so it is not rebuilt for them.
        """
        found = self.last_change(tuple(sorted(paths))) if self.last_change is not None else None
        return found or (self.revision, self.commit_time)


@dataclass(frozen=True)
class Provenance:
    """Origin of the code in a wrapper image, as the OCI labels record it.

    Empty strings stand for values the installed package does not declare.
    """

    version: str
    source_url: str = ""
    documentation_url: str = ""
    licenses: str = ""
    checkout: SourceCheckout | None = None
    source_date_epoch: int | None = None

    def uncommitted(self, context_paths: Iterable[str]) -> list[str]:
        """Return the CONTEXT_PATHS (relative to the package directory) that differ from the checkout's commit."""
        if self.checkout is None:
            return []
        return sorted(set(context_paths) & self.checkout.changed_paths)

    def revision_for(self, context_paths: Iterable[str]) -> str | None:
        """Return the full sha of the last commit that changed CONTEXT_PATHS when they are all committed, else None."""
        if self.checkout is None or self.uncommitted(context_paths):
            return None
        return self.checkout.commit_for(context_paths)[0]

    def created_for(self, context_paths: Iterable[str]) -> str:
        """Return the creation time for the labels: SOURCE_DATE_EPOCH, else the time of CONTEXT_PATHS' commit, else ""."""
        if self.source_date_epoch is not None:
            return rfc3339_utc(self.source_date_epoch)
        if self.checkout is not None:
            return rfc3339_utc(self.checkout.commit_for(context_paths)[1])
        return ""


def image_name(repository: str, service: str) -> str:
    """Return the local image name of SERVICE.

    >>> image_name("unicity-infra", "relay")
    'unicity-infra/relay'
    """
    return f"{repository}/{service}"


def wrapper_tags(
    service: str, *, repository: str, provenance: Provenance, context_paths: Iterable[str]
) -> list[str]:
    """Return the tags of SERVICE's image: ``<version>``, then ``sha-<short sha>`` when its files are committed.

    The sha is that of the last commit that changed a file the image copies.
    The sha tag is left out when the package is not imported from a git
    checkout (an installed wheel) and when a file the image copies has
    uncommitted changes, so that a sha tag always names exactly that commit.
    """
    name = image_name(repository, service)
    tags = [f"{name}:{provenance.version}"]
    revision = provenance.revision_for(context_paths)
    if revision is not None:
        tags.append(f"{name}:sha-{revision[:SHORT_SHA_LENGTH]}")
    return tags


def wrapper_labels(
    service: str,
    *,
    provenance: Provenance,
    context_paths: Iterable[str],
    parents: Mapping[str, str],
    offline: bool,
) -> dict[str, str]:
    """Return the labels of SERVICE's image.

    PARENTS maps ``base`` and each upstream key the image copies from (such as
    ``relay``) to the image reference it was built FROM; they become the
    ``org.unicity.infra.upstream.<key>`` labels, while the settings' pins become
    ``org.unicity.infra.pinned.<key>``. Every OCI key is set, empty when
    unknown, because an image inherits its base image's labels and a stale
    ``revision`` or ``source`` of the base must not show through.
    """
    title, description = IMAGE_TITLES[service]
    labels = {
        f"{OCI}.title": title,
        f"{OCI}.description": description,
        f"{OCI}.version": provenance.version,
        f"{OCI}.revision": provenance.revision_for(context_paths) or "",
        f"{OCI}.created": provenance.created_for(context_paths),
        f"{OCI}.source": provenance.source_url,
        f"{OCI}.url": provenance.source_url,
        f"{OCI}.documentation": provenance.documentation_url,
        f"{OCI}.licenses": provenance.licenses,
        f"{OCI}.vendor": "",
        f"{OCI}.base.name": parents.get("base", ""),
        f"{_INFRA}.offline": "true" if offline else "false",
        # A wrapper replaces no upstream image, but Docker cannot drop a label
        # inherited from the offline base, so it is overwritten with "".
        f"{_INFRA}.stands-in-for": "",
    }
    labels |= {f"{_INFRA}.upstream.{key}": ref for key, ref in parents.items()}
    labels |= {f"{_INFRA}.pinned.{key}": UPSTREAM_IMAGES[key] for key in WRAPPER_PINS[service]}
    return labels


def rfc3339_utc(epoch_s: int) -> str:
    """Return EPOCH_S as an RFC 3339 time in UTC.

    >>> rfc3339_utc(0)
    '1970-01-01T00:00:00Z'
    """
    moment = datetime.datetime.fromtimestamp(epoch_s, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_source_date_epoch(value: str) -> int:
    """Return SOURCE_DATE_EPOCH as seconds since the epoch (reproducible-builds.org defines the variable).

    >>> parse_source_date_epoch("1700000000")
    1700000000
    """
    text = value.strip()
    if not text.isdigit():
        raise SettingsError(
            "SOURCE_DATE_EPOCH", value, "expected a whole number of seconds since 1970-01-01 UTC, e.g. 1700000000"
        )
    return int(text)


def parse_repository(value: str, *, option: str = "--repository") -> str:
    """Return VALUE if it is a valid image repository prefix, without a trailing slash.

    >>> parse_repository("localhost:5000/unicity-infra/")
    'localhost:5000/unicity-infra'
    """
    text = value.strip().rstrip("/")
    if not text:
        raise SettingsError(option, value, f"expected an image name prefix such as {DEFAULT_REPOSITORY!r}")
    first, _, rest = text.partition("/")
    components = text.split("/")
    if rest and _is_registry_host(first):
        components = rest.split("/")
    bad = [component for component in components if not _PATH_COMPONENT.match(component)]
    if bad:
        raise SettingsError(
            option, value,
            f"{bad[0]!r} is not a valid repository path component: use lower-case letters, digits and "
            f"'.', '_' or '-' between them, e.g. {DEFAULT_REPOSITORY!r}",
        )
    return text


def parse_registry(value: str) -> str:
    """Return VALUE if it names a registry host with an optional namespace, e.g. ``ghcr.io/ORG``.

    >>> parse_registry("ghcr.io/unicitynetwork/")
    'ghcr.io/unicitynetwork'
    """
    text = value.strip().rstrip("/")
    if not text:
        raise SettingsError("--registry", value, "expected a registry host and namespace such as ghcr.io/ORG")
    if _SCHEME.match(text):
        raise SettingsError("--registry", value, "write the registry without a scheme, such as ghcr.io/ORG")
    host, _, path = text.partition("/")
    match = _HOST.match(host)
    if match is None:
        raise SettingsError("--registry", value, f"{host!r} is not a valid registry host name; use e.g. ghcr.io/ORG")
    if match["port"] is not None and not 0 < int(match["port"]) < 65536:
        raise SettingsError("--registry", value, f"port {match['port']} is out of range 1-65535")
    if not _is_registry_host(host):
        raise SettingsError(
            "--registry", value,
            f"{host!r} is not a registry host (it has no '.' or port), so Docker would read it as a Docker Hub "
            f"namespace; name the host, e.g. ghcr.io/{host.lower()} or docker.io/{host.lower()}",
        )
    for component in path.split("/") if path else []:
        if not _PATH_COMPONENT.match(component):
            hint = " (registries accept lower case only)" if component.lower() != component else ""
            raise SettingsError(
                "--registry", value,
                f"{component!r} is not a valid namespace{hint}; use lower-case letters, digits and '.', '_' or '-'",
            )
    return text


def push_repository(registry: str, repository: str, service: str) -> str:
    """Return the registry repository that SERVICE's image is pushed to.

    >>> push_repository("ghcr.io/unicitynetwork", "unicity-infra", "relay")
    'ghcr.io/unicitynetwork/unicity-infra/relay'
    """
    first, _, rest = repository.partition("/")
    if rest and _is_registry_host(first):
        raise SettingsError(
            "--repository", repository,
            f"it already names the registry {first!r}; give --repository without a host and the registry "
            "in --registry",
        )
    return f"{registry}/{image_name(repository, service)}"


def tags_to_push(repo_tags: Iterable[str], *, repository: str, service: str, version: str) -> list[str]:
    """Return the tags (without the name) of SERVICE's image that ``images build`` gave it.

    REPO_TAGS are the image's ``RepoTags``; only ``<version>`` and ``sha-*``
    under the local name are pushed, the version first.

    >>> tags_to_push(["unicity-infra/relay:0.1.0", "unicity-infra/relay:sha-1a2b3c4", "x:1"],
    ...              repository="unicity-infra", service="relay", version="0.1.0")
    ['0.1.0', 'sha-1a2b3c4']
    """
    prefix = image_name(repository, service) + ":"
    tags = [ref.removeprefix(prefix) for ref in repo_tags if ref.startswith(prefix)]
    sha_tags = sorted(tag for tag in tags if tag.startswith("sha-"))
    return ([version] if version in tags else []) + sha_tags


# Substrings of the Docker Engine's push errors and what they mean, most specific first.
_PUSH_FAILURES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("no such host", "server misbehaving", "name resolution", "Temporary failure in name resolution"),
        "the registry host name does not resolve",
        "check the spelling of --registry and that the Docker Engine's DNS reaches it",
    ),
    (
        ("connection refused",),
        "the connection was refused: nothing listens at that address and port",
        "check the host and port in --registry and that the registry is running",
    ),
    (
        ("i/o timeout", "deadline exceeded", "TLS handshake timeout", "net/http: request canceled"),
        "the connection timed out",
        "check that the registry is reachable from the Docker Engine's host (firewall, proxy)",
    ),
    (
        ("server gave HTTP response to HTTPS client",),
        "the registry speaks plain HTTP, but the Docker Engine expects HTTPS",
        "serve it over HTTPS or list it in the Docker Engine's insecure-registries",
    ),
    (
        ("x509:", "certificate signed by unknown authority", "tls: "),
        "the registry's TLS certificate was not accepted",
        "install the registry's CA certificate under /etc/docker/certs.d/HOST/ca.crt",
    ),
    (
        ("unauthorized", "authentication required", "no basic auth credentials", "denied", "403 Forbidden"),
        "the registry rejected the credentials or the permission to push",
        (
            "log in with 'docker login {host}' (credentials are read from the Docker configuration, "
            "~/.docker/config.json and its credential helpers) and check the account may write to {registry}"
        ),
    ),
)


def describe_push_failure(registry: str, message: str) -> str:
    """Return what a push error MESSAGE from the Docker Engine means for REGISTRY and what to do about it."""
    host = registry.partition("/")[0]
    lowered = message.lower()
    for needles, cause, action in _PUSH_FAILURES:
        if any(needle.lower() in lowered for needle in needles):
            return f"{cause}; {action.format(host=host, registry=registry)}"
    return f"the Docker Engine reported an error; if the registry needs a login, run 'docker login {host}'"


def _is_registry_host(component: str) -> bool:
    """Tell whether the first component of an image name is a registry host, as Docker decides it."""
    return "." in component or ":" in component or component == "localhost"
