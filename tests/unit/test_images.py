"""Recipes, cache keys, mirror detection and host checks of the offline image build."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from unicity_infra.engine import images
from unicity_infra.engine.recipes import (
    BASE_PACKAGES,
    DEBIAN_DEFAULT_MIRROR,
    AptSource,
    BaseRecipe,
    CrateRecipe,
    StandinRecipe,
    WrapperRecipe,
    cache_dir,
    choose_debian_mirror,
    detect_debian_mirror,
    parse_deb822_sources,
    parse_one_line_sources,
    recipe_digest,
)
from unicity_infra.errors import ImageBuildError, SettingsError

HOST_DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

THIRD_PARTY_DEB822 = """\
Types: deb
URIs: https://packages.example.com/node_20.x
Suites: nodistro
Components: main
"""


def _wrapper(**changes: object) -> WrapperRecipe:
    recipe = WrapperRecipe(
        service="relay",
        dockerfile="FROM base\n",
        context_files={"unicity_infra/__init__.py": b"x = 1\n"},
        build_args={"BASE_IMAGE": "sha256:aa", "RELAY_IMAGE": "sha256:bb"},
    )
    return dataclasses.replace(recipe, **changes)


def test_recipe_digest_ignores_key_order() -> None:
    assert recipe_digest({"a": 1, "b": [2]}) == recipe_digest({"b": [2], "a": 1})


def test_base_recipe_digest_is_stable() -> None:
    assert BaseRecipe().digest == BaseRecipe().digest


def test_base_recipe_digest_changes_with_packages() -> None:
    assert BaseRecipe(packages=(*BASE_PACKAGES, "vim-tiny")).digest != BaseRecipe().digest


def test_base_recipe_digest_ignores_package_order() -> None:
    assert BaseRecipe(packages=tuple(reversed(BASE_PACKAGES))).digest == BaseRecipe().digest


@pytest.mark.parametrize(
    "field, value",
    [("suite", "forky"), ("variant", "buildd"), ("import_changes", ('CMD ["sh"]',)), ("stands_in_for", "x:1")],
)
def test_base_recipe_digest_changes_with_field(field: str, value: object) -> None:
    assert dataclasses.replace(BaseRecipe(), **{field: value}).digest != BaseRecipe().digest


def test_base_recipe_tag_carries_suite_and_digest() -> None:
    recipe = BaseRecipe()

    assert recipe.tag == f"unicity-infra/offline-base:trixie-{recipe.digest[:12]}"


def test_base_recipe_debootstrap_args() -> None:
    args = BaseRecipe(packages=("tini", "python3")).debootstrap_args(Path("/tmp/r"), "http://m/debian")

    assert args == ["debootstrap", "--variant=minbase", "--include=python3,tini", "trixie", "/tmp/r", "http://m/debian"]


def test_base_recipe_docker_changes_label_offline() -> None:
    label_line = BaseRecipe().docker_changes()[-1]

    assert 'org.unicity.infra.offline="true"' in label_line


def test_crate_recipe_digest_changes_with_version() -> None:
    assert CrateRecipe(version="0.8.11").digest != CrateRecipe().digest


def test_crate_recipe_digest_changes_with_locked() -> None:
    assert CrateRecipe(locked=not CrateRecipe().locked).digest != CrateRecipe().digest


def test_crate_recipe_cargo_args_use_target_dir() -> None:
    args = CrateRecipe().cargo_args(Path("/c/relay-x"), Path("/c/cargo-target"))

    assert args[:5] == ["cargo", "install", "nostr-rs-relay", "--version", "0.8.12"]
    assert args[-2:] == ["--target-dir", "/c/cargo-target"]


def test_standin_recipe_digest_changes_with_crate_version() -> None:
    first = StandinRecipe(crate=CrateRecipe(), base_image="base:1")
    second = StandinRecipe(crate=CrateRecipe(version="0.8.11"), base_image="base:1")

    assert first.digest != second.digest


def test_standin_recipe_digest_changes_with_base_image() -> None:
    first = StandinRecipe(crate=CrateRecipe(), base_image="base:1")

    assert dataclasses.replace(first, base_image="base:2").digest != first.digest


def test_standin_recipe_digest_changes_with_dockerfile() -> None:
    first = StandinRecipe(crate=CrateRecipe(), base_image="base:1")

    assert dataclasses.replace(first, dockerfile=first.dockerfile + "USER 1000\n").digest != first.digest


def test_standin_recipe_tag_names_crate_version() -> None:
    recipe = StandinRecipe(crate=CrateRecipe(), base_image="base:1")

    assert recipe.tag == f"unicity-infra/offline-relay-upstream:0.8.12-{recipe.digest[:12]}"


def test_wrapper_recipe_digest_is_stable() -> None:
    assert _wrapper().digest == _wrapper().digest


@pytest.mark.parametrize(
    "changes",
    [
        {"dockerfile": "FROM base\nUSER relay\n"},
        {"context_files": {"unicity_infra/__init__.py": b"x = 2\n"}},
        {"context_files": {"unicity_infra/__init__.py": b"x = 1\n", "unicity_infra/container/a.py": b""}},
        {"build_args": {"BASE_IMAGE": "sha256:cc", "RELAY_IMAGE": "sha256:bb"}},
        {"labels_without_recipe": {"org.opencontainers.image.revision": "1a2b3c4"}},
    ],
    ids=["dockerfile", "file-content", "file-added", "build-arg", "label"],
)
def test_wrapper_recipe_digest_changes_with_input(changes: dict[str, object]) -> None:
    assert _wrapper(**changes).digest != _wrapper().digest


def test_cache_dir_honours_unicity_infra_cache(tmp_path: Path) -> None:
    environ = {"UNICITY_INFRA_CACHE": str(tmp_path / "c"), "XDG_CACHE_HOME": "/x"}

    assert cache_dir(environ) == tmp_path / "c"


def test_cache_dir_uses_xdg_cache_home() -> None:
    assert cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/unicity-infra")


def test_cache_dir_defaults_to_home_cache() -> None:
    assert cache_dir({}) == Path.home() / ".cache" / "unicity-infra"


def test_parse_deb822_sources_reads_each_entry() -> None:
    sources = parse_deb822_sources(HOST_DEB822)

    assert sources == [
        AptSource("http://mirror.example.org/debian", ("bookworm", "bookworm-updates"), ("main",)),
        AptSource("http://mirror.example.org/debian-security", ("bookworm-security",), ("main",)),
    ]


def test_parse_deb822_sources_skips_disabled() -> None:
    text = "Types: deb\nEnabled: no\nURIs: http://m/debian\nSuites: trixie\nComponents: main\n"

    assert parse_deb822_sources(text) == []


def test_parse_deb822_sources_skips_deb_src() -> None:
    text = "Types: deb-src\nURIs: http://m/debian\nSuites: trixie\nComponents: main\n"

    assert parse_deb822_sources(text) == []


def test_parse_one_line_sources_skips_deb_src() -> None:
    text = "# deb http://old/debian buster main\ndeb-src http://m/debian trixie main\ndeb http://m/debian trixie main\n"

    assert parse_one_line_sources(text) == [AptSource("http://m/debian", ("trixie",), ("main",))]


def test_choose_debian_mirror_picks_release_archive() -> None:
    sources = parse_deb822_sources(THIRD_PARTY_DEB822) + parse_deb822_sources(HOST_DEB822)

    assert choose_debian_mirror(sources) == "http://mirror.example.org/debian"


def test_choose_debian_mirror_ignores_security_only() -> None:
    sources = [AptSource("http://m/debian-security", ("bookworm-security",), ("main",))]

    assert choose_debian_mirror(sources) is None


def test_choose_debian_mirror_ignores_ubuntu() -> None:
    sources = [AptSource("http://archive.ubuntu.com/ubuntu", ("jammy",), ("main",))]

    assert choose_debian_mirror(sources) is None


def test_detect_debian_mirror_reads_sources_dir(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(HOST_DEB822)
    (tmp_path / "sources.list.d" / "nodesource.sources").write_text(THIRD_PARTY_DEB822)
    (tmp_path / "sources.list.d" / "old.list.disabled").write_text("deb http://disabled/debian trixie main\n")

    assert detect_debian_mirror(tmp_path, environ={}) == "http://mirror.example.org/debian"


def test_detect_debian_mirror_prefers_sources_list(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text("deb http://first.example.org/debian/ bookworm main\n")
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(HOST_DEB822)

    assert detect_debian_mirror(tmp_path, environ={}) == "http://first.example.org/debian"


def test_detect_debian_mirror_falls_back_to_default(tmp_path: Path) -> None:
    assert detect_debian_mirror(tmp_path, environ={}) == DEBIAN_DEFAULT_MIRROR


def test_detect_debian_mirror_honours_override(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text("deb http://first.example.org/debian bookworm main\n")
    environ = {"UNICITY_INFRA_DEBIAN_MIRROR": "http://override.example.org/debian/"}

    assert detect_debian_mirror(tmp_path, environ=environ) == "http://override.example.org/debian"


def test_check_cargo_prerequisites_names_apt_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cargo").write_text("#!/bin/sh\n")
    (tmp_path / "cargo").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(images, "_has_openssl_headers", lambda: False)

    with pytest.raises(ImageBuildError) as caught:
        images._check_cargo_prerequisites("relay-standin")

    assert "apt-get install protobuf-compiler pkg-config libssl-dev" in str(caught.value)


def test_check_cargo_prerequisites_without_cargo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(ImageBuildError) as caught:
        images._check_cargo_prerequisites("relay-standin")

    assert "cargo not found" in str(caught.value)


def test_package_files_include_container_package() -> None:
    files = images._package_files()

    assert "unicity_infra/__init__.py" in files
    assert "unicity_infra/container/__init__.py" in files


def test_package_files_exclude_bytecode() -> None:
    assert not [path for path in images._package_files() if "__pycache__" in path or path.endswith(".pyc")]


def test_build_arg_name_for_upstream_key() -> None:
    assert images._build_arg_name("aggregator-proxy") == "AGGREGATOR_PROXY_IMAGE"


def test_build_images_rejects_unknown_service() -> None:
    with pytest.raises(SettingsError) as caught:
        images.build_images(["postgres"], offline=True)

    assert "'postgres'" in str(caught.value)


@pytest.fixture
def debootstrapped_rootfs(tmp_path: Path) -> Path:
    rootfs = tmp_path / "rootfs"
    for relative, content in {
        "var/lib/apt/lists/deb.debian.org_debian_dists_trixie_InRelease": "x",
        "var/cache/apt/pkgcache.bin": "x",
        "var/cache/apt/archives/tini_0.19.0-3_amd64.deb": "x",
        "var/log/bootstrap.log": "x",
        "usr/share/doc/tini/copyright": "MIT",
        "usr/share/doc/tini/changelog.Debian.gz": "x",
        "usr/share/man/man1/tini.1.gz": "x",
        "etc/resolv.conf": "nameserver 192.0.2.53\n",
        "etc/hostname": "build-host\n",
        "usr/bin/tini": "binary",
    }.items():
        (rootfs / relative).parent.mkdir(parents=True, exist_ok=True)
        (rootfs / relative).write_text(content)
    images._prune_rootfs(rootfs)
    return rootfs


@pytest.mark.parametrize(
    "relative",
    [
        "var/lib/apt/lists/deb.debian.org_debian_dists_trixie_InRelease",
        "var/cache/apt/pkgcache.bin",
        "var/cache/apt/archives/tini_0.19.0-3_amd64.deb",
        "var/log/bootstrap.log",
        "usr/share/doc/tini/changelog.Debian.gz",
        "usr/share/man/man1",
    ],
)
def test_prune_rootfs_removes(debootstrapped_rootfs: Path, relative: str) -> None:
    assert not (debootstrapped_rootfs / relative).exists()


@pytest.mark.parametrize("relative", ["usr/share/doc/tini/copyright", "usr/bin/tini"])
def test_prune_rootfs_keeps(debootstrapped_rootfs: Path, relative: str) -> None:
    assert (debootstrapped_rootfs / relative).is_file()


@pytest.mark.parametrize("relative", ["etc/resolv.conf", "etc/hostname"])
def test_prune_rootfs_empties_host_identity(debootstrapped_rootfs: Path, relative: str) -> None:
    assert (debootstrapped_rootfs / relative).read_text() == ""


def test_prune_rootfs_creates_acme_webroot(debootstrapped_rootfs: Path) -> None:
    assert (debootstrapped_rootfs / "var/www/acme-challenge/.well-known/acme-challenge").is_dir()


def test_create_rootfs_tarball_needs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images.os, "geteuid", lambda: 1000)

    with pytest.raises(ImageBuildError) as caught:
        images._create_rootfs_tarball(BaseRecipe(), tmp_path / "base.tar", image="base", progress=images.SILENT)

    assert "needs root" in str(caught.value)
    assert not list(tmp_path.iterdir())


@dataclasses.dataclass
class _Notes:
    """Progress that keeps only the notes."""

    notes: list[str] = dataclasses.field(default_factory=list)

    def stage(self, title: str) -> None:
        pass

    def action(self, text: str) -> None:
        pass

    def wait(self, text: str, elapsed_s: float, timeout_s: float | None = None) -> None:
        pass

    def note(self, text: str) -> None:
        self.notes.append(text)


@pytest.fixture
def recorded_wrapper_builds(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, str]]:
    """Replace the Docker steps of build_images; return service → upstream images it was built with."""
    builds: dict[str, dict[str, str]] = {}

    def build_wrapper(service: str, *, base_image: str, upstream_images: dict[str, str], **options: object) -> str:
        builds[service] = dict(upstream_images)
        return f"unicity-infra/{service}:test"

    monkeypatch.setattr(images, "build_offline_base", lambda progress: "unicity-infra/offline-base:test")
    monkeypatch.setattr(images, "build_relay_standin", lambda base_image, progress: "relay-standin:test")
    monkeypatch.setattr(images, "build_wrapper_image", build_wrapper)
    monkeypatch.delenv(images.FAUCET_IMAGE_ENV, raising=False)
    return builds


def test_build_images_offline_faucet_alone_fails(recorded_wrapper_builds: dict[str, dict[str, str]]) -> None:
    with pytest.raises(ImageBuildError) as caught:
        images.build_images(["faucet"], offline=True)

    assert images.FAUCET_IMAGE_ENV in str(caught.value)
    assert "cannot be built offline" in str(caught.value)
    assert recorded_wrapper_builds == {}


def test_build_images_offline_skips_faucet(recorded_wrapper_builds: dict[str, dict[str, str]]) -> None:
    progress = _Notes()

    tags = images.build_images(["relay", "faucet"], offline=True, progress=progress)

    assert list(tags) == ["relay"]
    assert [note for note in progress.notes if note.startswith("skipping the faucet image")]


def test_build_images_faucet_upstream_from_environment(
    recorded_wrapper_builds: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(images.FAUCET_IMAGE_ENV, "unicity-infra-test/standin-faucet:abc")

    tags = images.build_images(["faucet"], offline=True, progress=_Notes())

    assert tags == {"faucet": "unicity-infra/faucet:test"}
    assert recorded_wrapper_builds["faucet"]["faucet"] == "unicity-infra-test/standin-faucet:abc"
