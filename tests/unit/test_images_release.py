"""Tags, OCI labels, registry names and push error advice of the wrapper images, and the provenance they come from."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from unicity_infra.engine import images, provenance
from unicity_infra.engine.recipes.release import (
    Provenance,
    SourceCheckout,
    describe_push_failure,
    parse_registry,
    parse_repository,
    parse_source_date_epoch,
    push_repository,
    rfc3339_utc,
    tags_to_push,
    wrapper_labels,
    wrapper_tags,
)
from unicity_infra.errors import SettingsError
from unicity_infra.settings import UPSTREAM_IMAGES

SHA = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
COMMIT_TIME = 1_700_000_000
CONTEXT = ("engine/recipes/images/relay.Dockerfile", "engine/recipes/images/image-setup.sh", "container/tls.py")


def _provenance(**changes: object) -> Provenance:
    fields: dict[str, object] = {
        "version": "0.1.0",
        "source_url": "https://github.com/unicitynetwork/unicity-infra",
        "documentation_url": "https://github.com/unicitynetwork/unicity-infra/tree/main/docs",
        "licenses": "MIT",
        "checkout": SourceCheckout(revision=SHA, commit_time=COMMIT_TIME),
    }
    return Provenance(**(fields | changes))  # type: ignore[arg-type]


def _labels(prov: Provenance, *, offline: bool = False) -> dict[str, str]:
    parents = {"base": "ghcr.io/unicitynetwork/ssl-manager:latest", "relay": UPSTREAM_IMAGES["relay"]}
    return wrapper_labels("relay", provenance=prov, context_paths=CONTEXT, parents=parents, offline=offline)


def test_wrapper_tags_version_and_sha() -> None:
    tags = wrapper_tags("relay", repository="unicity-infra", provenance=_provenance(), context_paths=CONTEXT)

    assert tags == ["unicity-infra/relay:0.1.0", "unicity-infra/relay:sha-1a2b3c4"]


def test_wrapper_tags_custom_repository() -> None:
    tags = wrapper_tags("edge", repository="localhost:5000/team", provenance=_provenance(), context_paths=CONTEXT)

    assert tags == ["localhost:5000/team/edge:0.1.0", "localhost:5000/team/edge:sha-1a2b3c4"]


def test_wrapper_tags_without_checkout_version_only() -> None:
    tags = wrapper_tags(
        "relay", repository="unicity-infra", provenance=_provenance(checkout=None), context_paths=CONTEXT
    )

    assert tags == ["unicity-infra/relay:0.1.0"]


def test_wrapper_tags_uncommitted_context_version_only() -> None:
    checkout = SourceCheckout(revision=SHA, commit_time=COMMIT_TIME, changed_paths=frozenset({"container/tls.py"}))

    tags = wrapper_tags(
        "relay", repository="unicity-infra", provenance=_provenance(checkout=checkout), context_paths=CONTEXT
    )

    assert tags == ["unicity-infra/relay:0.1.0"]


def test_wrapper_tags_change_outside_context_keeps_sha() -> None:
    checkout = SourceCheckout(revision=SHA, commit_time=COMMIT_TIME, changed_paths=frozenset({"cli.py"}))

    tags = wrapper_tags(
        "relay", repository="unicity-infra", provenance=_provenance(checkout=checkout), context_paths=CONTEXT
    )

    assert tags[1] == "unicity-infra/relay:sha-1a2b3c4"


@pytest.mark.parametrize(
    "label, expected",
    [
        ("org.opencontainers.image.title", "unicity-infra relay"),
        ("org.opencontainers.image.version", "0.1.0"),
        ("org.opencontainers.image.revision", SHA),
        ("org.opencontainers.image.created", "2023-11-14T22:13:20Z"),
        ("org.opencontainers.image.source", "https://github.com/unicitynetwork/unicity-infra"),
        ("org.opencontainers.image.licenses", "MIT"),
        ("org.opencontainers.image.base.name", "ghcr.io/unicitynetwork/ssl-manager:latest"),
        ("org.unicity.infra.upstream.base", "ghcr.io/unicitynetwork/ssl-manager:latest"),
        ("org.unicity.infra.upstream.relay", UPSTREAM_IMAGES["relay"]),
        ("org.unicity.infra.pinned.ssl-manager", UPSTREAM_IMAGES["ssl-manager"]),
        ("org.unicity.infra.pinned.relay", UPSTREAM_IMAGES["relay"]),
        ("org.unicity.infra.offline", "false"),
        ("org.unicity.infra.stands-in-for", ""),
    ],
)
def test_wrapper_labels_value(label: str, expected: str) -> None:
    assert _labels(_provenance())[label] == expected


def test_wrapper_labels_source_date_epoch_wins() -> None:
    labels = _labels(_provenance(source_date_epoch=0))

    assert labels["org.opencontainers.image.created"] == "1970-01-01T00:00:00Z"


def test_wrapper_labels_without_checkout_empty_revision() -> None:
    labels = _labels(_provenance(checkout=None))

    assert labels["org.opencontainers.image.revision"] == ""
    assert labels["org.opencontainers.image.created"] == ""


def test_wrapper_labels_uncommitted_empty_revision() -> None:
    checkout = SourceCheckout(revision=SHA, commit_time=COMMIT_TIME, changed_paths=frozenset({CONTEXT[0]}))

    labels = _labels(_provenance(checkout=checkout))

    assert labels["org.opencontainers.image.revision"] == ""
    assert labels["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"


def test_wrapper_labels_offline() -> None:
    assert _labels(_provenance(), offline=True)["org.unicity.infra.offline"] == "true"


def test_wrapper_labels_aggregator_proxy_pins_stack() -> None:
    labels = wrapper_labels(
        "aggregator-proxy", provenance=_provenance(), context_paths=CONTEXT, parents={"base": "b:1"}, offline=False
    )

    for key in ("bft-core", "mongo", "aggregator-go", "curl"):
        assert labels[f"org.unicity.infra.pinned.{key}"] == UPSTREAM_IMAGES[key]


def test_wrapper_labels_are_reproducible() -> None:
    assert _labels(_provenance()) == _labels(_provenance())


def test_rfc3339_utc() -> None:
    assert rfc3339_utc(COMMIT_TIME) == "2023-11-14T22:13:20Z"


@pytest.mark.parametrize("value", ["", "now", "-5", "1.5", "2023-11-14"])
def test_parse_source_date_epoch_rejects(value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_source_date_epoch(value)

    assert "SOURCE_DATE_EPOCH" in str(caught.value)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("ghcr.io/unicitynetwork", "ghcr.io/unicitynetwork"),
        ("ghcr.io/unicitynetwork/", "ghcr.io/unicitynetwork"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("localhost:5000/team/sub", "localhost:5000/team/sub"),
        ("docker.io/someone", "docker.io/someone"),
    ],
)
def test_parse_registry_accepts(value: str, expected: str) -> None:
    assert parse_registry(value) == expected


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("", "expected a registry host"),
        ("   ", "expected a registry host"),
        ("https://ghcr.io/org", "without a scheme"),
        ("unicitynetwork", "Docker Hub namespace"),
        ("ghcr.io/UnicityNetwork", "lower case only"),
        ("ghcr.io/org name", "not a valid namespace"),
        ("ghcr.io:0/org", "out of range"),
        ("ghcr.io:70000/org", "out of range"),
        ("ghcr_io/org", "not a valid registry host name"),
        ("-ghcr.io/org", "not a valid registry host name"),
    ],
)
def test_parse_registry_rejects(value: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_registry(value)

    assert caught.value.exit_code == 2
    assert fragment in str(caught.value)
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize("value", ["unicity-infra", "team/unicity-infra", "localhost:5000/team/x"])
def test_parse_repository_accepts(value: str) -> None:
    assert parse_repository(value) == value


@pytest.mark.parametrize("value", ["", "Unicity", "a//b", "a/-b", "with space", "localhost:5000/Team/x"])
def test_parse_repository_rejects(value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_repository(value)

    assert "--repository" in str(caught.value)


def test_push_repository_default() -> None:
    assert push_repository("ghcr.io/org", "unicity-infra", "relay") == "ghcr.io/org/unicity-infra/relay"


def test_push_repository_rejects_host_in_repository() -> None:
    with pytest.raises(SettingsError) as caught:
        push_repository("ghcr.io/org", "localhost:5000/unicity-infra", "relay")

    assert "already names the registry 'localhost:5000'" in str(caught.value)


def test_tags_to_push_version_first() -> None:
    repo_tags = ["unicity-infra/relay:sha-bbbbbbb", "unicity-infra/relay:0.1.0", "unicity-infra/relay:sha-aaaaaaa",
                 "unicity-infra/relay:test", "other/relay:0.1.0"]

    tags = tags_to_push(repo_tags, repository="unicity-infra", service="relay", version="0.1.0")

    assert tags == ["0.1.0", "sha-aaaaaaa", "sha-bbbbbbb"]


@pytest.mark.parametrize(
    "message, fragment",
    [
        ('Get "https://ghcr.io/v2/": dial tcp: lookup ghcr.io on 127.0.0.53:53: no such host', "does not resolve"),
        ("dial tcp: lookup ghcr.io: Temporary failure in name resolution", "does not resolve"),
        ('Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused', "refused"),
        ("Get https://ghcr.io/v2/: net/http: TLS handshake timeout", "timed out"),
        ("http: server gave HTTP response to HTTPS client", "plain HTTP"),
        ("x509: certificate signed by unknown authority", "TLS certificate"),
        ("unauthorized: authentication required", "docker login ghcr.io"),
        ("denied: permission_denied: write_package", "docker login ghcr.io"),
        ("no basic auth credentials", "docker login ghcr.io"),
        ("something else entirely", "docker login ghcr.io"),
    ],
)
def test_describe_push_failure(message: str, fragment: str) -> None:
    assert fragment in describe_push_failure("ghcr.io/org", message)


# --- provenance read from a real git checkout ------------------------------


def _git(directory: Path, *args: str) -> str:
    environment = {"GIT_AUTHOR_DATE": f"@{COMMIT_TIME} +0000", "GIT_COMMITTER_DATE": f"@{COMMIT_TIME} +0000",
                   "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
                   "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org", "PATH": "/usr/bin:/bin",
                   "HOME": str(directory)}
    result = subprocess.run(["git", *args], cwd=directory, env=environment, capture_output=True, text=True,
                            check=True)
    return result.stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A git repository with a committed package directory ``src/pkg``."""
    package = tmp_path / "src" / "pkg"
    (package / "container").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "container" / "tls.py").write_text("x = 1\n")
    (package / "container" / "old.py").write_text("")
    (tmp_path / "README.md").write_text("")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    return package


def test_read_checkout_committed(checkout: Path) -> None:
    result = provenance.read_checkout(checkout)

    assert result is not None
    assert result.revision == _git(checkout, "rev-parse", "HEAD")
    assert result.commit_time == COMMIT_TIME
    assert result.changed_paths == frozenset()


def test_read_checkout_changed_paths(checkout: Path) -> None:
    (checkout / "container" / "tls.py").write_text("x = 2\n")
    (checkout / "container" / "new.py").write_text("")
    _git(checkout, "mv", "container/old.py", "container/renamed.py")
    (checkout.parent.parent / "README.md").write_text("changed outside the package\n")

    result = provenance.read_checkout(checkout)

    assert result is not None
    assert result.changed_paths == {"container/tls.py", "container/new.py", "container/old.py", "container/renamed.py"}


def test_read_checkout_image_commit_skips_later_commits(checkout: Path) -> None:
    image_commit = _git(checkout, "rev-parse", "HEAD")
    (checkout.parent.parent / "README.md").write_text("docs only\n")
    _git(checkout, "commit", "-q", "-am", "docs")
    (checkout / "__init__.py").write_text("# other package file\n")
    _git(checkout, "commit", "-q", "-am", "package, not the image's files")

    result = provenance.read_checkout(checkout)
    prov = _provenance(checkout=result)

    assert result is not None
    assert result.revision != image_commit
    assert prov.revision_for(["container/tls.py"]) == image_commit
    assert prov.revision_for(["container/tls.py", "__init__.py"]) == result.revision


def test_checkout_without_lookup_uses_head() -> None:
    checkout = SourceCheckout(revision=SHA, commit_time=COMMIT_TIME, last_change=lambda paths: None)

    assert checkout.commit_for(CONTEXT) == (SHA, COMMIT_TIME)


def test_labels_use_commit_of_image_files() -> None:
    older = "0" * 39 + "1"
    checkout = SourceCheckout(revision=SHA, commit_time=COMMIT_TIME, last_change=lambda paths: (older, 86_400))

    labels = _labels(_provenance(checkout=checkout))

    assert labels["org.opencontainers.image.revision"] == older
    assert labels["org.opencontainers.image.created"] == "1970-01-02T00:00:00Z"


def test_read_checkout_untracked_package_is_none(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    package = tmp_path / "venv" / "site-packages" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")

    assert provenance.read_checkout(package) is None


def test_read_checkout_outside_git_is_none(tmp_path: Path) -> None:
    assert provenance.read_checkout(tmp_path) is None


def test_read_provenance_metadata() -> None:
    result = provenance.read_provenance({})

    assert result.source_url == "https://github.com/unicitynetwork/unicity-infra"
    assert result.licenses == "MIT"
    assert result.source_date_epoch is None


def test_read_provenance_source_date_epoch() -> None:
    assert provenance.read_provenance({"SOURCE_DATE_EPOCH": "1700000000"}).source_date_epoch == 1_700_000_000


def test_read_provenance_bad_source_date_epoch() -> None:
    with pytest.raises(SettingsError) as caught:
        provenance.read_provenance({"SOURCE_DATE_EPOCH": "yesterday"})

    assert "'yesterday'" in str(caught.value)


# --- build contexts -----------------------------------------------------------


@pytest.mark.parametrize("service", ["relay", "faucet", "aggregator-proxy", "edge"])
def test_wrapper_context_has_recipe_files(service: str) -> None:
    context = images.wrapper_context(service)

    assert "image-setup.sh" in context.files
    assert "COPY image-setup.sh" in context.dockerfile
    assert f"engine/recipes/images/{service}.Dockerfile" in context.source_paths
    assert "__init__.py" in context.source_paths


@pytest.mark.parametrize("service", ["relay", "faucet", "aggregator-proxy", "edge"])
def test_wrapper_dockerfile_pins_no_upstream(service: str) -> None:
    # The pins live in settings.UPSTREAM_IMAGES only; the build passes them as build arguments.
    dockerfile = images.wrapper_context(service).dockerfile

    assert not [ref for ref in UPSTREAM_IMAGES.values() if ref in dockerfile]


def test_export_wrapper_context_writes_files(tmp_path: Path) -> None:
    exported = images.export_wrapper_context("aggregator", tmp_path / "ctx", provenance=_provenance())

    assert (tmp_path / "ctx" / "Dockerfile").is_file()
    assert (tmp_path / "ctx" / "image-setup.sh").is_file()
    assert (tmp_path / "ctx" / "unicity_infra" / "container" / "trust_base_server.py").is_file()
    assert exported["image"] == "aggregator-proxy"
    assert exported["build_args"] == {"BASE_IMAGE": UPSTREAM_IMAGES["ssl-manager"]}


def test_export_wrapper_context_faucet_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(images.FAUCET_IMAGE_ENV, "ghcr.io/org/faucet:1.0")

    exported = images.export_wrapper_context("faucet", tmp_path / "ctx", provenance=_provenance())

    assert exported["build_args"]["FAUCET_IMAGE"] == "ghcr.io/org/faucet:1.0"  # type: ignore[index]
    assert exported["labels"]["org.unicity.infra.upstream.faucet"] == "ghcr.io/org/faucet:1.0"  # type: ignore[index]


def test_export_wrapper_context_rejects_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")

    with pytest.raises(SettingsError) as caught:
        images.export_wrapper_context("relay", tmp_path, provenance=_provenance())

    assert "empty or missing directory" in str(caught.value)
    assert [path.name for path in tmp_path.iterdir()] == ["keep.txt"]
