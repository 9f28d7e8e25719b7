"""Recipes of the offline images and their cache keys, without any I/O but file reads.

A recipe lists every input that decides an image's content. Its digest names
the cached root file system, the cached relay binary and the image tag, so a
changed input builds a new image and an unchanged one is reused.
``engine/images.py`` runs the recipes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from unicity_infra.settings import UPSTREAM_IMAGES

__all__ = [
    "RECIPE_FORMAT",
    "DEBIAN_DEFAULT_MIRROR",
    "BASE_PACKAGES",
    "AptSource",
    "BaseRecipe",
    "CrateRecipe",
    "StandinRecipe",
    "WrapperRecipe",
    "recipe_digest",
    "cache_dir",
    "parse_deb822_sources",
    "parse_one_line_sources",
    "choose_debian_mirror",
    "detect_debian_mirror",
    "relay_standin_dockerfile",
]

# Bump when the build steps in engine/images.py change what a recipe produces,
# so that every cached root file system, binary and image is rebuilt.
RECIPE_FORMAT = 1

DEBIAN_DEFAULT_MIRROR = "http://deb.debian.org/debian"

# Suite names that identify a Debian archive in an APT source. Ubuntu and
# third-party archives use other names, so their mirrors are never chosen.
DEBIAN_SUITES = frozenset(
    {
        "buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
        "oldoldstable", "oldstable", "stable", "testing", "unstable",
    }
)

# Packages: those ghcr.io/unicitynetwork/ssl-manager:latest adds to debian:trixie-slim,
# plus what the wrapper images run: nginx, tini, sqlite3 and nodejs (faucet),
# and what the local edge runs: haproxy and pebble (the ACME test CA). One base
# for all images keeps a single debootstrap and a single cache entry.
# debootstrap does not resolve virtual packages, so python3-cffi-backend, which
# python3-cryptography reaches only through a virtual package, is named here;
# without it certbot fails to import.
BASE_PACKAGES: tuple[str, ...] = (
    "ca-certificates",
    "certbot",
    "curl",
    "haproxy",
    "jq",
    "netcat-openbsd",
    "nginx-light",
    "nodejs",
    "openssl",
    "passwd",
    "pebble",
    "procps",
    "python3",
    "python3-cffi-backend",
    "sqlite3",
    "tini",
)

# Image configuration that `docker import` applies. debian:trixie-slim sets
# PATH and CMD, and ssl-manager adds the certificate volume and its two ports.
BASE_IMPORT_CHANGES: tuple[str, ...] = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "VOLUME /etc/letsencrypt",
    "EXPOSE 80 8444",
    'CMD ["bash"]',
)

_OFFLINE_LABEL = "org.unicity.infra.offline"
_STANDS_IN_LABEL = "org.unicity.infra.stands-in-for"
_RECIPE_LABEL = "org.unicity.infra.recipe"


def recipe_digest(inputs: Mapping[str, object]) -> str:
    """Return the sha256 hex digest of INPUTS, a JSON-serialisable mapping.

    Keys are sorted, so the digest depends only on the values, never on the
    order in which a caller built the mapping.
    """
    canonical = json.dumps({"recipe_format": RECIPE_FORMAT, **inputs}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class BaseRecipe:
    """The offline base: a debootstrapped Debian root file system imported as an image."""

    suite: str = "trixie"
    variant: str = "minbase"
    packages: tuple[str, ...] = BASE_PACKAGES
    import_changes: tuple[str, ...] = BASE_IMPORT_CHANGES
    stands_in_for: str = UPSTREAM_IMAGES["ssl-manager"]

    @property
    def digest(self) -> str:
        return recipe_digest(
            {
                "kind": "base",
                "suite": self.suite,
                "variant": self.variant,
                # debootstrap installs the same set whatever the order.
                "packages": sorted(set(self.packages)),
                "import_changes": list(self.import_changes),
                "stands_in_for": self.stands_in_for,
            }
        )

    @property
    def tag(self) -> str:
        return f"unicity-infra/offline-base:{self.suite}-{self.digest[:12]}"

    @property
    def labels(self) -> dict[str, str]:
        return {_OFFLINE_LABEL: "true", _STANDS_IN_LABEL: self.stands_in_for, _RECIPE_LABEL: self.digest}

    def debootstrap_args(self, rootfs: Path, mirror: str) -> list[str]:
        """Return the debootstrap command line that creates ROOTFS from MIRROR."""
        return [
            "debootstrap",
            f"--variant={self.variant}",
            f"--include={','.join(sorted(set(self.packages)))}",
            self.suite,
            str(rootfs),
            mirror,
        ]

    def docker_changes(self) -> list[str]:
        """Return the ``docker import --change`` instructions, labels included."""
        labels = " ".join(f"{key}={json.dumps(value)}" for key, value in sorted(self.labels.items()))
        return [*self.import_changes, f"LABEL {labels}"]


@dataclass(frozen=True)
class CrateRecipe:
    """A binary built from crates.io with ``cargo install``."""

    crate: str = "nostr-rs-relay"
    version: str = "0.8.12"
    binary: str = "nostr-rs-relay"
    # The lockfile of nostr-rs-relay 0.8.12 pins time 0.3.25, which fails to
    # compile on Rust 1.80 and later with E0282 "type annotations needed"
    # (seen with rustc 1.95; fixed in time 0.3.35). So --locked fails, and
    # resolving the dependencies afresh within semver builds the relay.
    locked: bool = False

    @property
    def digest(self) -> str:
        return recipe_digest(
            {"kind": "crate", "crate": self.crate, "version": self.version, "binary": self.binary, "locked": self.locked}
        )

    def cargo_args(self, root: Path, target_dir: Path) -> list[str]:
        """Return the cargo command line that installs the binary under ROOT/bin."""
        args = ["cargo", "install", self.crate, "--version", self.version, "--root", str(root)]
        args += ["--target-dir", str(target_dir)]
        if self.locked:
            args.append("--locked")
        return args


def relay_standin_dockerfile() -> str:
    """Return the Dockerfile that places the relay binary where the upstream image has it.

    The two checks make the build fail when a shared library or a glibc
    symbol version the binary needs is missing from the base.
    """
    return "\n".join(
        [
            "ARG BASE_IMAGE",
            "FROM ${BASE_IMAGE}",
            "COPY nostr-rs-relay /usr/src/app/nostr-rs-relay",
            'RUN if ldd /usr/src/app/nostr-rs-relay | grep "not found"; then exit 1; fi \\',
            " && /usr/src/app/nostr-rs-relay --help > /dev/null \\",
            " && mkdir -p /usr/src/app/db",
            "WORKDIR /usr/src/app",
            "ENV RUST_LOG=info,nostr_rs_relay=info",
            "EXPOSE 8080",
            'CMD ["/usr/src/app/nostr-rs-relay", "--db", "/usr/src/app/db"]',
            "",
        ]
    )


@dataclass(frozen=True)
class StandinRecipe:
    """An image FROM the offline base carrying a crate binary in place of an upstream image."""

    crate: CrateRecipe
    base_image: str
    stands_in_for: str = UPSTREAM_IMAGES["relay"]
    dockerfile: str = field(default_factory=relay_standin_dockerfile)

    @property
    def digest(self) -> str:
        return recipe_digest(
            {
                "kind": "standin",
                "crate": self.crate.digest,
                "base_image": self.base_image,
                "stands_in_for": self.stands_in_for,
                "dockerfile": self.dockerfile,
            }
        )

    @property
    def tag(self) -> str:
        return f"unicity-infra/offline-relay-upstream:{self.crate.version}-{self.digest[:12]}"

    @property
    def labels(self) -> dict[str, str]:
        return {_OFFLINE_LABEL: "true", _STANDS_IN_LABEL: self.stands_in_for, _RECIPE_LABEL: self.digest}


@dataclass(frozen=True)
class WrapperRecipe:
    """A service's wrapper image: its Dockerfile, the other build context files, the build arguments and labels.

    ``context_files`` maps a path relative to the build context to the file's
    bytes. ``build_args`` should name each base image by its image ID where it
    is known, because a tag such as ``latest`` can move. ``labels`` are the
    image's labels without the recipe digest, which ``labels`` adds.
    """

    service: str
    dockerfile: str
    context_files: Mapping[str, bytes]
    build_args: Mapping[str, str]
    labels_without_recipe: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        files = {path: hashlib.sha256(content).hexdigest() for path, content in self.context_files.items()}
        return recipe_digest(
            {
                "kind": "wrapper",
                "service": self.service,
                "dockerfile": self.dockerfile,
                "package_files": files,
                "build_args": dict(self.build_args),
                "labels": dict(self.labels_without_recipe),
            }
        )

    @property
    def labels(self) -> dict[str, str]:
        return {**self.labels_without_recipe, _RECIPE_LABEL: self.digest}


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Return the build cache directory without creating it.

    ``$UNICITY_INFRA_CACHE`` wins, then ``$XDG_CACHE_HOME/unicity-infra``,
    then ``~/.cache/unicity-infra``.
    """
    env = os.environ if environ is None else environ
    if env.get("UNICITY_INFRA_CACHE"):
        return Path(env["UNICITY_INFRA_CACHE"]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "unicity-infra"
    return Path.home() / ".cache" / "unicity-infra"


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` archive entry of an APT sources file."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def parse_deb822_sources(text: str) -> list[AptSource]:
    """Parse a ``.sources`` file (deb822 paragraphs) into its enabled ``deb`` entries.

    >>> parse_deb822_sources("Types: deb\\nURIs: http://m/debian\\nSuites: trixie\\nComponents: main\\n")
    [AptSource(uri='http://m/debian', suites=('trixie',), components=('main',))]
    """
    sources: list[AptSource] = []
    for paragraph in re.split(r"\n[ \t]*\n", text):
        fields = _parse_deb822_paragraph(paragraph)
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        suites = tuple(fields.get("suites", "").split())
        components = tuple(fields.get("components", "").split())
        sources += [AptSource(uri, suites, components) for uri in fields.get("uris", "").split()]
    return sources


def _parse_deb822_paragraph(paragraph: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in paragraph.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0] in " \t" and key is not None:
            fields[key] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            fields[key] = value.strip()
    return fields


def parse_one_line_sources(text: str) -> list[AptSource]:
    """Parse a ``sources.list`` file in the one-line format into its ``deb`` entries.

    >>> parse_one_line_sources("deb [signed-by=/k.gpg] http://m/debian trixie main contrib")
    [AptSource(uri='http://m/debian', suites=('trixie',), components=('main', 'contrib'))]
    """
    sources: list[AptSource] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        line = re.sub(r"\[[^\]]*\]", " ", line)
        words = line.split()
        if len(words) < 3 or words[0] != "deb":
            continue
        sources.append(AptSource(words[1], (words[2],), tuple(words[3:])))
    return sources


def choose_debian_mirror(sources: Iterable[AptSource]) -> str | None:
    """Return the URI of the first Debian release archive with ``main``, or None.

    Security and update archives (``bookworm-security``, ``bookworm-updates``)
    carry only part of a release, so only a plain release suite counts.
    """
    for source in sources:
        if not source.uri.startswith(("http://", "https://", "file:")):
            continue
        if "main" in source.components and DEBIAN_SUITES.intersection(source.suites):
            return source.uri.rstrip("/")
    return None


def detect_debian_mirror(apt_dir: Path = Path("/etc/apt"), environ: Mapping[str, str] | None = None) -> str:
    """Return the Debian mirror the host's APT uses, in the order APT reads its files.

    ``$UNICITY_INFRA_DEBIAN_MIRROR`` overrides the detection. When no Debian
    archive is configured (on a non-Debian host, for example), Debian's own
    deb.debian.org is used.
    """
    env = os.environ if environ is None else environ
    if env.get("UNICITY_INFRA_DEBIAN_MIRROR"):
        return env["UNICITY_INFRA_DEBIAN_MIRROR"].rstrip("/")

    sources: list[AptSource] = []
    main_list = apt_dir / "sources.list"
    if main_list.is_file():
        sources += parse_one_line_sources(main_list.read_text(errors="replace"))
    parts = apt_dir / "sources.list.d"
    for path in sorted(parts.glob("*")) if parts.is_dir() else []:
        if path.suffix == ".list":
            sources += parse_one_line_sources(path.read_text(errors="replace"))
        elif path.suffix == ".sources":
            sources += parse_deb822_sources(path.read_text(errors="replace"))
    return choose_debian_mirror(sources) or DEBIAN_DEFAULT_MIRROR
