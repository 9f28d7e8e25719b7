"""The offline base, the stand-ins and the wrapper images on the real Docker Engine, and pushing them.

Pushes go only to a registry this module starts on 127.0.0.1 (Debian's
docker-registry), whose manifests are then read back over its HTTP API.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest
from docker.models.containers import Container

from tests.docker.conftest import (
    TEST_LABEL,
    OfflineImages,
    RecordingProgress,
    run_to_completion,
)
from tests.fixtures.faucet_standin import build_faucet_standin
from unicity_infra.engine import images
from unicity_infra.engine.recipes import BaseRecipe
from unicity_infra.errors import ImageBuildError, ImageNotFoundError
from unicity_infra.settings import UPSTREAM_IMAGES

pytestmark = pytest.mark.docker

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


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
            "relay", base_image=missing, upstream_images={"relay": missing}, repository="unicity-infra-test/unbuilt"
        )

    assert "--offline" in str(caught.value)


# --- 'images build' from a clean checkout ----------------------------------------

REPO = Path(__file__).resolve().parents[2]
# Distinct per run, so these builds never move the unicity-infra/* tags other tests run.
CLEAN_REPOSITORY = f"unicity-infra-test/clean-{uuid.uuid4().hex[:8]}"
CLEAN_SERVICES = {"relay": "relay", "aggregator": "aggregator-proxy", "faucet": "faucet"}
REGISTRY_USER = "pusher"
REGISTRY_PASSWORD = uuid.uuid4().hex


@dataclass(frozen=True)
class CleanBuild:
    """Images built by the CLI run from a fresh clone of the repository's HEAD.

    Before the build the clone gets two commits: one that changes the setup
    script every image copies (REVISION, at COMMIT_TIME), then one that changes
    only the README, so the images' commit is not HEAD.
    """

    clone: Path
    revision: str
    commit_time: int
    document: dict[str, Any]


def _run_cli(args: list[str], *, source: Path, cwd: Path, env: dict[str, str] | None = None,
             timeout_s: float = 1800) -> subprocess.CompletedProcess[str]:
    """Run unicity-infra ARGS with the package imported from SOURCE (a checkout's src directory)."""
    environment = {key: value for key, value in os.environ.items() if key != "SOURCE_DATE_EPOCH"}
    environment |= {"PYTHONPATH": str(source), "NO_COLOR": "1"} | (env or {})
    return subprocess.run(
        [sys.executable, "-c", "from unicity_infra.cli import main; main()", *args],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout_s, check=False,
    )


def _git_output(directory: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, check=True).stdout.strip()


def _commit(clone: Path, path: str, appended: str, *, date: str) -> None:
    """Append APPENDED to PATH in CLONE and commit it at DATE."""
    with (clone / path).open("a", encoding="utf-8") as handle:
        handle.write(appended)
    identity = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.org", "GIT_AUTHOR_DATE": date,
                "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.org", "GIT_COMMITTER_DATE": date}
    subprocess.run(["git", "commit", "--quiet", "-m", f"Change {path}", "--", path], cwd=clone,
                   env={**os.environ, **identity}, check=True, timeout=60)


def _remove_repository_images(client: docker.DockerClient, prefix: str) -> None:
    for image in client.images.list():
        for ref in image.tags:
            if ref.startswith(prefix):
                try:
                    client.api.remove_image(ref, force=True)
                except docker.errors.APIError:
                    pass


@pytest.fixture(scope="module")
def clean_build(
    docker_client: docker.DockerClient, offline_images: OfflineImages, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CleanBuild]:
    clone = tmp_path_factory.mktemp("clean-checkout") / "unicity-infra"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    _commit(clone, "src/unicity_infra/engine/recipes/images/image-setup.sh", "# changed by test_images.py\n",
            date="2024-01-02T03:04:05Z")
    revision = _git_output(clone, "rev-parse", "HEAD")
    commit_time = int(_git_output(clone, "show", "-s", "--format=%ct", "HEAD"))
    _commit(clone, "README.md", "\nA line only the test clone has.\n", date="2024-02-03T04:05:06Z")
    faucet_upstream = build_faucet_standin()

    result = _run_cli(
        ["images", "build", *CLEAN_SERVICES, "--offline", "--repository", CLEAN_REPOSITORY, "--json"],
        source=clone / "src", cwd=clone.parent, env={"UNICITY_INFRA_FAUCET_IMAGE": faucet_upstream},
    )
    try:
        assert result.returncode == 0, result.stderr
        yield CleanBuild(clone=clone, revision=revision, commit_time=commit_time, document=json.loads(result.stdout))
    finally:
        _remove_repository_images(docker_client, CLEAN_REPOSITORY + "/")


@pytest.mark.parametrize("service", CLEAN_SERVICES)
def test_clean_build_reports_both_tags(clean_build: CleanBuild, service: str) -> None:
    name = f"{CLEAN_REPOSITORY}/{CLEAN_SERVICES[service]}"

    assert clean_build.document["tags"][service] == [f"{name}:0.1.0", f"{name}:sha-{clean_build.revision[:7]}"]


@pytest.mark.parametrize("service", CLEAN_SERVICES)
def test_clean_build_tags_one_image(docker_client: docker.DockerClient, clean_build: CleanBuild, service: str) -> None:
    name = f"{CLEAN_REPOSITORY}/{CLEAN_SERVICES[service]}"

    version_image = docker_client.images.get(f"{name}:0.1.0")
    sha_image = docker_client.images.get(f"{name}:sha-{clean_build.revision[:7]}")

    assert version_image.id == sha_image.id


@pytest.mark.parametrize("service", CLEAN_SERVICES)
def test_clean_build_oci_labels(docker_client: docker.DockerClient, clean_build: CleanBuild, service: str) -> None:
    labels = docker_client.images.get(f"{CLEAN_REPOSITORY}/{CLEAN_SERVICES[service]}:0.1.0").labels
    created = datetime.datetime.fromtimestamp(clean_build.commit_time, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    assert labels["org.opencontainers.image.revision"] == clean_build.revision
    assert labels["org.opencontainers.image.created"] == created
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.licenses"] == "MIT"
    assert labels["org.opencontainers.image.source"] == "https://github.com/unicitynetwork/unicity-infra"
    assert labels["org.opencontainers.image.title"] == f"unicity-infra {CLEAN_SERVICES[service]}"


def test_clean_build_labels_last_commit_of_image_files(clean_build: CleanBuild) -> None:
    head = _git_output(clean_build.clone, "rev-parse", "HEAD")

    assert clean_build.revision != head
    assert clean_build.commit_time == 1704164645  # 2024-01-02T03:04:05Z, not the README commit's time


def test_docs_only_commit_keeps_images(docker_client: docker.DockerClient, clean_build: CleanBuild) -> None:
    names = [f"{CLEAN_REPOSITORY}/{image}:0.1.0" for image in CLEAN_SERVICES.values()]
    before = [docker_client.images.get(name).id for name in names]
    _commit(clean_build.clone, "README.md", "\nAnother line.\n", date="2024-03-04T05:06:07Z")

    result = _run_cli(
        ["images", "build", *CLEAN_SERVICES, "--offline", "--repository", CLEAN_REPOSITORY],
        source=clean_build.clone / "src", cwd=clean_build.clone.parent,
        env={"UNICITY_INFRA_FAUCET_IMAGE": build_faucet_standin()},
    )

    assert result.returncode == 0, result.stderr
    assert [docker_client.images.get(name).id for name in names] == before
    assert result.stderr.count("is up to date") == len(names)


@pytest.mark.parametrize(
    "service, key",
    [("relay", "ssl-manager"), ("relay", "relay"), ("faucet", "faucet"), ("aggregator", "aggregator-go"),
     ("aggregator", "bft-core")],
)
def test_clean_build_pinned_upstream_label(
    docker_client: docker.DockerClient, clean_build: CleanBuild, service: str, key: str
) -> None:
    labels = docker_client.images.get(f"{CLEAN_REPOSITORY}/{CLEAN_SERVICES[service]}:0.1.0").labels

    assert labels[f"org.unicity.infra.pinned.{key}"] == UPSTREAM_IMAGES[key]


# --- 'images push' to a registry on loopback ----------------------------------------


@dataclass(frozen=True)
class LoopbackRegistry:
    """A distribution registry (Debian's docker-registry) on 127.0.0.1 with one htpasswd user."""

    address: str
    docker_config: Path

    def get(self, path: str, **headers: str) -> httpx.Response:
        return httpx.get(f"http://{self.address}{path}", auth=(REGISTRY_USER, REGISTRY_PASSWORD), headers=headers,
                         timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _bcrypt(password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # the registry's htpasswd file accepts bcrypt only

    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackRegistry]:
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry not found on PATH; run scripts/install-deps.sh (apt-get install docker-registry)")
    root = tmp_path_factory.mktemp("registry")
    address = f"127.0.0.1:{_free_port()}"
    (root / "htpasswd").write_text(f"{REGISTRY_USER}:{_bcrypt(REGISTRY_PASSWORD)}\n")
    config = {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
        "http": {"addr": address},
        "auth": {"htpasswd": {"realm": "unicity-infra-test", "path": str(root / "htpasswd")}},
    }
    (root / "config.yml").write_text(json.dumps(config))
    # The logged-in Docker configuration: the credentials docker login would store.
    docker_config = root / "docker-config"
    docker_config.mkdir()
    token = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
    (docker_config / "config.json").write_text(json.dumps({"auths": {address: {"auth": token}}}))

    with (root / "registry.log").open("w") as log:
        process = subprocess.Popen([binary, "serve", str(root / "config.yml")], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://{address}/v2/", timeout=2).status_code == 401:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (root / "registry.log").read_text()
            assert time.monotonic() < deadline, (root / "registry.log").read_text()
            time.sleep(0.2)
        yield LoopbackRegistry(address=address, docker_config=docker_config)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _push(registry_value: str, *args: str, docker_config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return _run_cli(
        ["images", "push", "--registry", registry_value, "--repository", CLEAN_REPOSITORY, *args],
        source=REPO / "src", cwd=cwd, env={"DOCKER_CONFIG": str(docker_config)}, timeout_s=600,
    )


@pytest.fixture(scope="module")
def pushed(
    clean_build: CleanBuild, registry: LoopbackRegistry, docker_client: docker.DockerClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    result = _push(f"{registry.address}/team", "relay", "aggregator", "--allow-offline", "--json",
                   docker_config=registry.docker_config, cwd=tmp_path_factory.mktemp("push"))
    try:
        assert result.returncode == 0, result.stderr
        yield json.loads(result.stdout)
    finally:
        _remove_repository_images(docker_client, f"{registry.address}/")


def test_push_reports_refs_and_digests(pushed: dict[str, Any], registry: LoopbackRegistry,
                                       clean_build: CleanBuild) -> None:
    refs = [item["ref"] for item in pushed["pushed"]["relay"]]
    name = f"{registry.address}/team/{CLEAN_REPOSITORY}/relay"

    assert refs == [f"{name}:0.1.0", f"{name}:sha-{clean_build.revision[:7]}"]
    assert all(item["digest"].startswith("sha256:") for item in pushed["pushed"]["relay"])


@pytest.mark.parametrize("image", ["relay", "aggregator-proxy"])
def test_push_registry_lists_both_tags(pushed: dict[str, Any], registry: LoopbackRegistry, clean_build: CleanBuild,
                                       image: str) -> None:
    response = registry.get(f"/v2/team/{CLEAN_REPOSITORY}/{image}/tags/list")

    assert response.status_code == 200
    assert sorted(response.json()["tags"]) == ["0.1.0", f"sha-{clean_build.revision[:7]}"]


def test_push_manifest_digest_matches(pushed: dict[str, Any], registry: LoopbackRegistry) -> None:
    response = registry.get(f"/v2/team/{CLEAN_REPOSITORY}/relay/manifests/0.1.0", Accept=MANIFEST_V2)

    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == pushed["pushed"]["relay"][0]["digest"]


def test_push_manifest_config_keeps_labels(pushed: dict[str, Any], registry: LoopbackRegistry,
                                           clean_build: CleanBuild) -> None:
    manifest = registry.get(f"/v2/team/{CLEAN_REPOSITORY}/relay/manifests/0.1.0", Accept=MANIFEST_V2).json()

    config = registry.get(f"/v2/team/{CLEAN_REPOSITORY}/relay/blobs/{manifest['config']['digest']}").json()

    assert config["config"]["Labels"]["org.opencontainers.image.revision"] == clean_build.revision


def test_push_again_reports_layers(pushed: dict[str, Any], registry: LoopbackRegistry, tmp_path: Path,
                                   docker_client: docker.DockerClient) -> None:
    result = _push(f"{registry.address}/team", "relay", "--allow-offline", docker_config=registry.docker_config,
                   cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "Layer already exists" in result.stderr
    assert f"pushed relay: {registry.address}/team/{CLEAN_REPOSITORY}/relay:0.1.0" in result.stderr


def test_push_without_login_names_docker_login(clean_build: CleanBuild, registry: LoopbackRegistry, tmp_path: Path,
                                               docker_client: docker.DockerClient) -> None:
    (tmp_path / "empty-config").mkdir()

    result = _push(f"{registry.address}/anonymous", "relay", "--allow-offline",
                   docker_config=tmp_path / "empty-config", cwd=tmp_path)

    assert result.returncode == 1
    assert f"to {registry.address}/anonymous failed" in result.stderr
    assert "rejected the credentials" in result.stderr
    assert f"docker login {registry.address}" in result.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(f"{registry.address}/anonymous/{CLEAN_REPOSITORY}/relay:0.1.0")


def test_push_closed_port_names_refused(clean_build: CleanBuild, registry: LoopbackRegistry, tmp_path: Path) -> None:
    closed = f"127.0.0.1:{_free_port()}"

    result = _push(f"{closed}/team", "relay", "--allow-offline", docker_config=registry.docker_config, cwd=tmp_path)

    assert result.returncode == 1
    assert f"to {closed}/team failed: the connection was refused" in result.stderr


def test_push_offline_image_needs_flag(clean_build: CleanBuild, registry: LoopbackRegistry, tmp_path: Path) -> None:
    result = _push(f"{registry.address}/team", "relay", docker_config=registry.docker_config, cwd=tmp_path)

    assert result.returncode == 1
    assert "built offline" in result.stderr
    assert "--allow-offline" in result.stderr


def test_push_unbuilt_image_names_build(registry: LoopbackRegistry, tmp_path: Path) -> None:
    result = _run_cli(["images", "push", "--registry", f"{registry.address}/team", "--repository",
                       "unicity-infra-test/never-built", "edge"], source=REPO / "src", cwd=tmp_path)

    assert result.returncode == 1
    assert "'unicity-infra-test/never-built/edge:0.1.0' not found locally" in result.stderr
    assert "unicity-infra images build edge" in result.stderr
