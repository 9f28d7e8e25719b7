"""Unit tests of the edge entry point's options and API key file."""

from __future__ import annotations

from pathlib import Path

import pytest

from unicity_infra.edge.__main__ import build_parser, read_api_key


def test_build_parser_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EDGE_API_PORT", "EDGE_HTTP_PORT", "EDGE_HTTPS_PORT", "EDGE_RESOLVERS", "EDGE_API_KEY_FILE", "EDGE_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)

    options = build_parser().parse_args([])

    assert (options.api_port, options.http_port, options.https_port) == (8404, 80, 443)
    assert options.resolvers == "docker"
    assert options.api_key_file is None
    assert options.state_dir == Path("/var/lib/unicity-edge")


def test_build_parser_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_API_PORT", "18404")
    monkeypatch.setenv("EDGE_API_KEY_FILE", "/run/secrets/edge-key")
    monkeypatch.setenv("EDGE_RESOLVERS", "none")

    options = build_parser().parse_args([])

    assert options.api_port == 18404
    assert options.api_key_file == Path("/run/secrets/edge-key")
    assert options.resolvers == "none"


@pytest.mark.parametrize("value", ["0", "65536", "http"])
def test_build_parser_rejects_bad_port(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["--api-port", value])

    assert caught.value.code == 2
    assert value in capsys.readouterr().err


def test_read_api_key_strips_newline(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("s3cret\n")

    assert read_api_key(key_file) == "s3cret"


def test_read_api_key_without_file() -> None:
    assert read_api_key(None) is None


def test_read_api_key_empty_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(" \n")

    with pytest.raises(ValueError, match="empty"):
        read_api_key(key_file)


def test_read_api_key_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        read_api_key(tmp_path / "absent")
