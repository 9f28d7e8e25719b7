"""images build|context|push through the real CLI: bad inputs rejected with exit 2 before Docker is contacted."""

from __future__ import annotations

import json
from pathlib import Path

import docker
import pytest

from unicity_infra import cli as cli_module
from unicity_infra.settings import UPSTREAM_IMAGES


@pytest.fixture(autouse=True)
def no_docker_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fail any attempt to reach the Docker Engine; run in an empty directory without settings files."""
    def engine_not_contacted(*args: object, **kwargs: object) -> None:
        raise AssertionError("the Docker Engine must not be contacted")

    monkeypatch.setattr(docker, "from_env", engine_not_contacted)
    monkeypatch.chdir(tmp_path)
    for variable in ("UNICITY_INFRA_CONFIG", "UNICITY_INFRA_STACK", "SOURCE_DATE_EPOCH", "UNICITY_INFRA_FAUCET_IMAGE"):
        monkeypatch.delenv(variable, raising=False)


def run(*arguments: str) -> int:
    try:
        cli_module.main(list(arguments))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.mark.parametrize(
    "registry, fragment",
    [
        ("myorg", "Docker Hub namespace"),
        ("https://ghcr.io/org", "without a scheme"),
        ("ghcr.io/MyOrg", "lower case only"),
        ("ghcr.io:123456/org", "out of range"),
    ],
)
def test_push_rejects_registry(capsys: pytest.CaptureFixture[str], registry: str, fragment: str) -> None:
    assert run("images", "push", "--registry", registry, "relay") == 2

    err = capsys.readouterr().err
    assert f"invalid value for --registry: {registry!r}" in err
    assert fragment in err


def test_push_requires_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("images", "push", "relay") == 2

    assert "--registry" in capsys.readouterr().err


def test_push_has_no_password_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("images", "push", "--help") == 0

    help_text = capsys.readouterr().out
    assert "--password" not in help_text
    assert "docker login" in help_text


def test_push_rejects_unknown_service(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("images", "push", "--registry", "ghcr.io/org", "postgres") == 2

    assert "'postgres'" in capsys.readouterr().err


def test_build_rejects_repository(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("images", "build", "--repository", "Unicity Infra", "relay") == 2

    assert "invalid value for --repository: 'Unicity Infra'" in capsys.readouterr().err


def test_build_rejects_source_date_epoch(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")

    assert run("images", "build", "relay") == 2

    assert "invalid value for SOURCE_DATE_EPOCH: 'yesterday'" in capsys.readouterr().err


def test_build_help_names_tags_and_repository(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("images", "build", "--help") == 0

    help_text = capsys.readouterr().out
    assert "--repository" in help_text
    assert "sha-SHORT_SHA" in help_text


def test_context_prints_build_args_and_labels(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")

    assert run("images", "context", "relay", str(tmp_path / "ctx")) == 0

    document = json.loads(capsys.readouterr().out)
    assert document["build_args"]["RELAY_IMAGE"] == UPSTREAM_IMAGES["relay"]
    assert document["labels"]["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    assert document["labels"]["org.opencontainers.image.licenses"] == "MIT"
    assert document["tags"][0] == "unicity-infra/relay:0.1.0"
    assert (tmp_path / "ctx" / "Dockerfile").read_text().startswith("# Nostr relay")


def test_context_rejects_non_empty_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "notes.txt").write_text("keep")

    assert run("images", "context", "relay", str(tmp_path / "ctx")) == 2

    assert "empty or missing directory" in capsys.readouterr().err
    assert [path.name for path in (tmp_path / "ctx").iterdir()] == ["notes.txt"]
