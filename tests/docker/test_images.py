"""The offline base, the relay stand-in and the relay wrapper image, built on the real Docker Engine."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from tests.docker.conftest import TEST_LABEL, OfflineImages, RecordingProgress, run_to_completion
from unicity_infra.engine import images
from unicity_infra.engine.recipes import BaseRecipe
from unicity_infra.errors import ImageBuildError, ImageNotFoundError

pytestmark = pytest.mark.docker


def _label(client: docker.DockerClient, image: str, name: str) -> str:
    return client.images.get(image).labels.get(name, "")


@pytest.fixture(scope="module")
def base_image(docker_client: docker.DockerClient, relay_image: str) -> str:
    return _label(docker_client, relay_image, "org.unicity.infra.upstream.base")


@pytest.fixture(scope="module")
def standin_image(docker_client: docker.DockerClient, relay_image: str) -> str:
    return _label(docker_client, relay_image, "org.unicity.infra.upstream.relay")


@pytest.mark.parametrize(
    "command, expected",
    [
        (["python3", "--version"], "Python 3.13."),
        (["nginx", "-v"], "nginx/1.26"),
        (["certbot", "--version"], "certbot "),
        (["tini", "--version"], "tini version 0.19"),
        (["openssl", "version"], "OpenSSL 3."),
        (["node", "--version"], "v"),
        (["sqlite3", "--version"], "3."),
        (["jq", "--version"], "jq-"),
    ],
    ids=["python3", "nginx", "certbot", "tini", "openssl", "node", "sqlite3", "jq"],
)
def test_offline_base_has_tool(
    docker_client: docker.DockerClient, containers: list[Container], base_image: str,
    command: list[str], expected: str,
) -> None:
    status, output = run_to_completion(docker_client, containers, base_image, command, entrypoint=[])

    assert status == 0, output
    assert expected in output


def test_offline_base_has_no_apt_lists(
    docker_client: docker.DockerClient, containers: list[Container], base_image: str
) -> None:
    status, output = run_to_completion(docker_client, containers, base_image, ["ls", "-A", "/var/lib/apt/lists"])

    assert status == 0, output
    assert output.split() in ([], ["partial"])


def test_offline_base_labels_stand_in(docker_client: docker.DockerClient, base_image: str) -> None:
    labels = docker_client.images.get(base_image).labels

    assert labels["org.unicity.infra.offline"] == "true"
    assert labels["org.unicity.infra.stands-in-for"] == "ghcr.io/unicitynetwork/ssl-manager:latest"


def test_relay_standin_libraries_resolve(
    docker_client: docker.DockerClient, containers: list[Container], standin_image: str
) -> None:
    status, output = run_to_completion(
        docker_client, containers, standin_image, ["ldd", "/usr/src/app/nostr-rs-relay"], entrypoint=[]
    )

    assert status == 0, output
    assert "libssl.so.3" in output
    assert "not found" not in output


def test_relay_standin_serves_nip11(
    docker_client: docker.DockerClient, containers: list[Container], standin_image: str
) -> None:
    container = docker_client.containers.create(standin_image, labels={TEST_LABEL: "1"}, detach=True)
    containers.append(container)
    container.start()

    command = ["curl", "-sf", "-H", "Accept: application/nostr+json", "http://127.0.0.1:8080/"]
    deadline = time.monotonic() + 30
    result = container.exec_run(command)
    while result.exit_code != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        result = container.exec_run(command)

    assert result.exit_code == 0, container.logs().decode(errors="replace")
    assert json.loads(result.output)["version"] == "0.8.12"


def test_relay_standin_labels_stand_in(docker_client: docker.DockerClient, standin_image: str) -> None:
    labels = docker_client.images.get(standin_image).labels

    assert labels["org.unicity.infra.stands-in-for"] == "ghcr.io/unicitynetwork/unicity-tokens-relay:sha-1e1b544"


@pytest.mark.parametrize(
    "label, expected",
    [
        ("org.opencontainers.image.title", "unicity-infra relay"),
        ("org.opencontainers.image.version", "0.1.0"),
        ("org.opencontainers.image.licenses", "MIT"),
        ("org.unicity.infra.offline", "true"),
        ("org.unicity.infra.stands-in-for", ""),
    ],
)
def test_wrapper_image_label(docker_client: docker.DockerClient, relay_image: str, label: str, expected: str) -> None:
    assert _label(docker_client, relay_image, label) == expected


def test_wrapper_image_names_upstreams(
    docker_client: docker.DockerClient, relay_image: str, base_image: str, standin_image: str
) -> None:
    assert base_image.startswith("unicity-infra/offline-base:trixie-")
    assert standin_image.startswith("unicity-infra/offline-relay-upstream:0.8.12-")


def test_wrapper_image_config(docker_client: docker.DockerClient, relay_image: str) -> None:
    config = docker_client.api.inspect_image(relay_image)["Config"]

    assert config["Entrypoint"] == ["/usr/bin/tini", "--", "python3", "-m", "unicity_infra.container.entrypoint"]
    assert config["Cmd"] == ["relay"]
    assert config["Healthcheck"]["Test"] == ["CMD", "python3", "-m", "unicity_infra.container.healthcheck"]
    assert config["StopSignal"] == "SIGTERM"
    assert set(config["Volumes"]) == {"/etc/letsencrypt", "/var/lib/relay"}
    assert {"80/tcp", "443/tcp"} <= set(config["ExposedPorts"])
    assert "PYTHONPATH=/opt/unicity-infra" in config["Env"]


@pytest.mark.parametrize(
    "command, expected",
    [
        (["id", "relay"], "uid=1001(relay) gid=1001(relay)"),
        (["stat", "-c", "%u:%g", "/var/lib/relay"], "1001:1001"),
        (["ls", "/opt/unicity-infra/unicity_infra/container/__init__.py"], "__init__.py"),
        (["nostr-rs-relay", "--help"], "nostr"),
        (["test", "-d", "/var/www/acme-challenge"], ""),
    ],
    ids=["user", "data-dir-owner", "package", "relay-binary", "webroot"],
)
def test_wrapper_image_content(
    docker_client: docker.DockerClient, containers: list[Container], relay_image: str,
    command: list[str], expected: str,
) -> None:
    status, output = run_to_completion(docker_client, containers, relay_image, command, entrypoint=[])

    assert status == 0, output
    assert expected in output


def test_is_offline_image_wrapper(relay_image: str) -> None:
    assert images.is_offline_image(relay_image) is True


def test_is_offline_image_missing_tag() -> None:
    with pytest.raises(ImageNotFoundError):
        images.is_offline_image(f"unicity-infra/missing:{uuid.uuid4().hex[:8]}")


def test_build_images_second_call_is_cache_hit(offline_images: OfflineImages) -> None:
    progress = RecordingProgress()
    started = time.monotonic()

    tags = images.build_images(["relay"], offline=True, progress=progress)

    # The wrapper is rebuilt, from Docker's layer cache, only if a file of the
    # container package changed since the fixture built it.
    assert tags == offline_images.tags
    assert [action for action in progress.actions if not action.startswith("docker build")] == []
    assert time.monotonic() - started < 60


def test_build_wrapper_image_same_recipe_is_skipped(base_image: str, standin_image: str) -> None:
    upstreams = {"relay": standin_image}
    images.build_wrapper_image("relay", base_image=base_image, upstream_images=upstreams)
    progress = RecordingProgress()

    images.build_wrapper_image("relay", base_image=base_image, upstream_images=upstreams, progress=progress)

    assert progress.actions == []


class _RenamedBaseRecipe(BaseRecipe):
    """The real base recipe under a throwaway tag, so the cached tarball is imported again."""

    @property
    def tag(self) -> str:
        return f"unicity-infra/offline-base:test-{_RENAMED_SUFFIX}"


_RENAMED_SUFFIX = uuid.uuid4().hex[:8]


@pytest.fixture
def renamed_base(
    docker_client: docker.DockerClient, offline_images: OfflineImages, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    monkeypatch.setattr(images, "BaseRecipe", _RenamedBaseRecipe)
    yield _RenamedBaseRecipe().tag
    try:
        docker_client.images.remove(_RenamedBaseRecipe().tag)
    except docker.errors.ImageNotFound:
        pass


def test_build_offline_base_imports_cached_tarball(
    renamed_base: str, docker_client: docker.DockerClient, containers: list[Container]
) -> None:
    # renamed_base comes first, so its teardown runs after the containers are removed.
    progress = RecordingProgress()

    tag = images.build_offline_base(progress=progress)
    status, output = run_to_completion(docker_client, containers, tag, ["python3", "--version"], entrypoint=[])

    assert tag == renamed_base
    assert [action.split()[:2] for action in progress.actions] == [["docker", "import"]]
    assert status == 0, output


def test_build_wrapper_image_unreachable_upstream_names_offline(offline_images: OfflineImages) -> None:
    # A registry on a closed loopback port fails the pull at once, as an
    # unreachable registry does.
    missing = f"127.0.0.1:1/unicity-infra-test/missing:{uuid.uuid4().hex[:8]}"

    with pytest.raises(ImageBuildError) as caught:
        images.build_wrapper_image(
            "relay", base_image=missing, upstream_images={"relay": missing}, tag="unicity-infra/relay:test-unbuilt"
        )

    assert "--offline" in str(caught.value)
