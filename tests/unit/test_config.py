"""Settings file: merging with flags and variables, and every bad file stopping with exit 2 before Docker is used."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from unicity_infra import cli as cli_module
from unicity_infra.commands.up import UpSettings


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def run_up(*arguments: str) -> None:
    cli_module.main([*arguments])


def test_file_only_sets_up_options(captured: dict[str, object], tmp_path: Path) -> None:
    write(tmp_path / "unicity-infra.toml", 'stack = "from-file"\n[up]\nrelay-port = 17777\ntimeout = 42\n'
                                           'image_override = ["mongo=mongo:7"]\n')

    run_up("up")

    settings = captured["settings"]
    assert isinstance(settings, UpSettings)
    assert captured["stack"] == "from-file"
    assert settings.ports["relay"] == 17777
    assert settings.timeout_s == 42.0
    assert settings.image_overrides == ("mongo=mongo:7",)


def test_without_file_builtin_defaults_apply(captured: dict[str, object]) -> None:
    run_up("up")

    settings = captured["settings"]
    assert isinstance(settings, UpSettings)
    assert captured["stack"] == "default"
    assert settings.ports["relay"] == 7777
    assert settings.mode == "direct"


def test_flag_wins_over_file(captured: dict[str, object], tmp_path: Path) -> None:
    write(tmp_path / "unicity-infra.toml", 'stack = "from-file"\n[up]\nrelay-port = 17777\nmode = "local-edge"\n')

    run_up("--stack", "from-flag", "up", "--relay-port", "27777", "--mode", "direct")

    settings = captured["settings"]
    assert isinstance(settings, UpSettings)
    assert captured["stack"] == "from-flag"
    assert settings.ports["relay"] == 27777
    assert settings.mode == "direct"


def test_environment_wins_over_file(captured: dict[str, object], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "unicity-infra.toml", 'stack = "from-file"\n[up]\nimage-override = ["mongo=mongo:7"]\n')
    monkeypatch.setenv("UNICITY_INFRA_STACK", "from-env")
    monkeypatch.setenv("UNICITY_INFRA_IMAGE_OVERRIDES", "mongo=mongo:8")

    run_up("up")

    settings = captured["settings"]
    assert isinstance(settings, UpSettings)
    assert captured["stack"] == "from-env"
    assert settings.image_overrides == ("mongo=mongo:8",)


def test_override_flag_replaces_only_its_key(captured: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNICITY_INFRA_IMAGE_OVERRIDES", "mongo=mongo:8 curl=curl:1 bft-core=bft:2")

    run_up("up", "--image-override", "mongo=mongo:9", "--image-override", "aggregator-go=go:3")

    settings = captured["settings"]
    assert isinstance(settings, UpSettings)
    assert settings.image_overrides == ("curl=curl:1", "bft-core=bft:2", "mongo=mongo:9", "aggregator-go=go:3")


def test_run_override_replaces_only_its_key(captured: dict[str, object],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from unicity_infra.commands import run as run_module

    def record_run(engine: object, settings: object, **options: object) -> object:
        captured["run_settings"] = settings
        raise SystemExit(0)

    monkeypatch.setattr(run_module, "run_service", record_run)
    monkeypatch.setenv("UNICITY_INFRA_IMAGE_OVERRIDES", "mongo=mongo:8 curl=curl:1")

    with pytest.raises(SystemExit):
        run_up("run", "aggregator", "--no-haproxy", "--image-override", "mongo=mongo:9")

    overrides = captured["run_settings"].aggregator.image_overrides  # type: ignore[attr-defined]
    assert overrides == {"curl": "curl:1", "mongo": "mongo:9"}


def test_override_flag_with_file_ignores_file(captured: dict[str, object], tmp_path: Path) -> None:
    write(tmp_path / "unicity-infra.toml", '[up]\nimage-override = ["mongo=mongo:7", "curl=curl:7"]\n')

    run_up("up", "--image-override", "mongo=mongo:9")

    settings = captured["settings"]
    assert isinstance(settings, UpSettings)
    assert settings.image_overrides == ("mongo=mongo:9",)


def test_flag_wins_over_environment_and_file(captured: dict[str, object], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "unicity-infra.toml", 'stack = "from-file"\n')
    monkeypatch.setenv("UNICITY_INFRA_STACK", "from-env")

    run_up("--stack", "from-flag", "up")

    assert captured["stack"] == "from-flag"


def test_config_flag_names_another_file(captured: dict[str, object], tmp_path: Path) -> None:
    write(tmp_path / "unicity-infra.toml", 'stack = "default-file"\n')
    other = write(tmp_path / "ci.toml", 'stack = "named-file"\n')

    run_up("--config", str(other), "up")

    assert captured["stack"] == "named-file"


def test_config_variable_names_another_file(captured: dict[str, object], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    other = write(tmp_path / "ci.toml", '[up]\nfaucet-port = "17780"\n')
    monkeypatch.setenv("UNICITY_INFRA_CONFIG", str(other))

    run_up("up")

    settings = captured["settings"]
    assert isinstance(settings, UpSettings)
    assert settings.ports["faucet"] == 17780


def test_nested_table_sets_subcommand_defaults(captured: dict[str, object], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "unicity-infra.toml", '[edge.up]\nhttp-port = 8080\n')

    cli_module.main(["edge", "up", "--help"])

    assert "[default: 8080]" in capsys.readouterr().out


def test_top_level_help_shows_config_option(captured: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    cli_module.main(["--help"])

    output = capsys.readouterr().out
    assert "--config FILE" in output
    assert "unicity-infra.toml" in output


BAD_FILES = [
    ('[up]\nrelay-domian = "relay.example.org"\n', "line 2", "unknown key 'relay-domian' in table [up]",
     "relay-domain"),
    ('[upp]\nmode = "direct"\n', "line 1", "unknown table [upp]", "[up]"),
    ('[edge]\nport = 1\n', "line 2", "unknown key 'port' in table [edge]", "[edge.up]"),
    ('stak = "x"\n', "line 1", "unknown key 'stak' at the top level", "the key stack"),
    ('up = "direct"\n', "line 1", "names the command 'up'", "table [up]"),
    ('[up]\ntimeout = "soon"\n', "line 2", "key 'timeout' in table [up] has the value 'soon'", "expected a number"),
    ('[up]\nmode = "prod"\n', "line 2", "key 'mode' in table [up]", "direct, local-edge, production"),
    ('[up]\njson = "yes"\n', "line 2", "key 'json' in table [up]", "true or false"),
    ('[up]\nrelay-domain = ["a.example.org"]\n', "line 2", "key 'relay-domain' in table [up]", "a string"),
    ('[up]\nimage-override = 3\n', "line 2", "key 'image-override' in table [up]", "a list of strings"),
    ('[up]\nimage-override = [true]\n', "line 2", "key 'image-override' in table [up]", "items are each a string"),
    ('[up]\nrelay-port = 1\nrelay_port = 2\n', "line 3", "sets --relay-port a second time", "keep one"),
    ('[up]\nfresh = true\n', "line 2", "key 'fresh' in table [up] cannot be set in a file", "--fresh"),
    ('[down]\nwipe = true\n', "line 2", "key 'wipe' in table [down] cannot be set in a file", "--wipe"),
    ('[run]\nhaproxy-api-key = "s3cret"\n', "line 2", "cannot be set in a file", "haproxy-api-key-file"),
    ('debug = true\n', "line 1", "key 'debug' at the top level cannot be set in a file", "--debug"),
    ('[up\nmode = "direct"\n', "line 1", "not valid TOML", "column"),
    ('[up]\nmode = direct\n', "line 2", "not valid TOML", "column"),
]


@pytest.mark.parametrize(("text", "line", "problem", "accepted"), BAD_FILES)
def test_bad_file_exits_2_naming_file_and_key(captured: dict[str, object], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str], text: str, line: str,
                                               problem: str, accepted: str) -> None:
    write(tmp_path / "unicity-infra.toml", text)

    with pytest.raises(SystemExit) as exit_info:
        run_up("up")

    error = capsys.readouterr().err
    assert exit_info.value.code == 2, error
    assert error.startswith("error: invalid settings file unicity-infra.toml")
    assert line in error
    assert problem in error
    assert accepted in error
    assert "settings" not in captured
    assert "engine_created" not in captured


def test_missing_explicit_file_exits_2(captured: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_up("--config", "missing.toml", "up")

    error = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "missing.toml" in error
    assert "no such file (named by --config)" in error
    assert "settings" not in captured


def test_missing_file_named_by_variable_exits_2(captured: dict[str, object], capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNICITY_INFRA_CONFIG", "missing.toml")

    with pytest.raises(SystemExit) as exit_info:
        run_up("up")

    error = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "no such file (named by UNICITY_INFRA_CONFIG)" in error
    assert "settings" not in captured


def test_directory_as_config_exits_2(captured: dict[str, object], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_up("--config", str(tmp_path), "up")

    assert exit_info.value.code == 2
    assert "not a regular file" in capsys.readouterr().err


def test_non_utf8_file_exits_2(captured: dict[str, object], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "unicity-infra.toml").write_bytes(b"stack = \"\xff\"\n")

    with pytest.raises(SystemExit) as exit_info:
        run_up("up")

    assert exit_info.value.code == 2
    assert "not UTF-8 text" in capsys.readouterr().err


def test_invalid_value_from_file_names_its_key(captured: dict[str, object], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "unicity-infra.toml", '[up]\nmode = "local-edge"\n\nrelay-port = 99999\n')

    with pytest.raises(SystemExit) as exit_info:
        run_up("up")

    error = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "invalid value for --relay-port: '99999'" in error
    assert "set by key 'relay-port' in table [up] of unicity-infra.toml, line 4" in error
    assert "settings" not in captured


def test_invalid_flag_value_does_not_blame_file(captured: dict[str, object], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "unicity-infra.toml", '[up]\nrelay-port = 17777\n')

    with pytest.raises(SystemExit) as exit_info:
        run_up("up", "--relay-port", "99999")

    error = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "invalid value for --relay-port: '99999'" in error
    assert "unicity-infra.toml" not in error


def test_invalid_stack_from_file_names_its_key(captured: dict[str, object], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "unicity-infra.toml", 'stack = "my stack"\n')

    with pytest.raises(SystemExit) as exit_info:
        run_up("up")

    error = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "invalid value for --stack: 'my stack'" in error
    assert "set by key 'stack' at the top level of unicity-infra.toml, line 1" in error


def test_docs_example_file_loads(captured: dict[str, object], tmp_path: Path) -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    example = re.search(r"```toml\n(.*?)```", docs.read_text(), re.DOTALL)
    assert example is not None, "docs/configuration.md has no toml block"
    write(tmp_path / "unicity-infra.toml", example.group(1))

    run_up("up")

    settings = captured["settings"]
    assert isinstance(settings, UpSettings)
    assert captured["stack"] == "prod"
    assert settings.mode == "production"
    assert settings.domains["aggregator"] == "gateway.example.org"
    assert settings.timeout_s == 300.0
