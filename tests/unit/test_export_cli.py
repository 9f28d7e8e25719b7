"""export compose|kubernetes through the real CLI: outputs written, bad inputs refused with exit 2 and no file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from unicity_infra import __version__
from unicity_infra import cli as cli_module
from unicity_infra.settings import UPSTREAM_IMAGES


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run in an empty directory, with no configuration file or stack variable, and no Docker Engine."""
    def engine_not_contacted(self):
        raise AssertionError("export must not contact the Docker Engine")

    monkeypatch.setattr(cli_module.Context, "engine", engine_not_contacted)
    monkeypatch.chdir(tmp_path)
    for variable in ("UNICITY_INFRA_CONFIG", "UNICITY_INFRA_STACK", "UNICITY_INFRA_IMAGE_OVERRIDES"):
        monkeypatch.delenv(variable, raising=False)


def run(*arguments: str) -> int:
    try:
        cli_module.main(list(arguments))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_export_compose_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--stack", "c1", "export", "compose", "relay") == 0

    document = yaml.safe_load(capsys.readouterr().out)
    assert list(document["services"]) == ["relay"]


def test_export_compose_to_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "compose.yaml"

    assert run("export", "compose", "--mode", "local-edge", "--output", str(target)) == 0

    assert set(yaml.safe_load(target.read_text())["services"]) >= {"edge", "relay", "aggregator-proxy", "faucet"}
    assert str(target) in capsys.readouterr().err


def test_export_kubernetes_to_directory(tmp_path: Path) -> None:
    target = tmp_path / "k8s"

    assert run("export", "kubernetes", "--mode", "production", "--domain-suffix", "example.org",
               "--output", f"{target}/") == 0

    assert sorted(path.name for path in target.iterdir()) == ["aggregator.yaml", "faucet.yaml", "relay.yaml"]
    kinds = {item["kind"] for item in yaml.safe_load_all((target / "relay.yaml").read_text()) if item}
    assert kinds == {"PersistentVolumeClaim", "Service", "StatefulSet"}


def test_export_kubernetes_to_one_file(tmp_path: Path) -> None:
    target = tmp_path / "stack.yml"

    assert run("export", "kubernetes", "relay", "faucet", "--output", str(target)) == 0

    names = {item["metadata"]["name"] for item in yaml.safe_load_all(target.read_text()) if item}
    assert {"unicity-relay", "unicity-faucet"} <= names


def test_export_registry_names_our_images_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("export", "kubernetes", "aggregator", "--registry", "ghcr.io/acme/") == 0

    images = {container["image"] for item in yaml.safe_load_all(capsys.readouterr().out)
              if item and item["kind"] in ("Deployment", "StatefulSet")
              for container in item["spec"]["template"]["spec"]["containers"]}
    assert f"ghcr.io/acme/unicity-infra/aggregator-proxy:{__version__}" in images
    assert UPSTREAM_IMAGES["mongo"] in images


def test_export_takes_up_table_and_flags_win(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "unicity-infra.toml").write_text('[up]\nrelay-port = 17778\n\n[export.compose]\nfaucet-port = 17779\n')

    assert run("export", "compose", "relay", "faucet") == 0
    from_file = yaml.safe_load(capsys.readouterr().out)["services"]
    assert run("export", "compose", "relay", "--relay-port", "17000") == 0
    from_flag = yaml.safe_load(capsys.readouterr().out)["services"]

    assert from_file["relay"]["ports"] == ["127.0.0.1:17778:80/tcp"]
    assert from_file["faucet"]["ports"] == ["127.0.0.1:17779:80/tcp"]
    assert from_flag["relay"]["ports"] == ["127.0.0.1:17000:80/tcp"]


@pytest.mark.parametrize(("arguments", "message"), [
    (["export", "compose", "mailer"], "'mailer'"),
    (["export", "compose", "--mode", "cluster"], "'cluster'"),
    (["export", "compose", "--mode", "production"], "production mode needs a public host name"),
    (["export", "compose", "--relay-port", "70000"], "70000"),
    (["export", "compose", "--output", "missing-dir/compose.yaml"], "does not exist"),
    (["export", "compose", "--output", "."], "is a directory"),
    (["export", "compose", "--output", "file.txt/compose.yaml"], "does not exist"),
    (["export", "kubernetes", "--mode", "local-edge"], "runs only on Docker"),
    (["export", "kubernetes", "--registry", "bad registry"], "'bad registry'"),
    (["export", "kubernetes", "--output", "file.txt"], "is a file"),
    (["--stack", "Upper_Case", "export", "kubernetes"], "'Upper_Case'"),
])
def test_export_bad_input_exits_2_and_writes_nothing(arguments: list[str], message: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file.txt").write_text("keep me\n")

    status = run(*arguments)

    captured = capsys.readouterr()
    assert status == 2
    assert message in captured.err
    assert captured.out == ""
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file.txt"]
    assert (tmp_path / "file.txt").read_text() == "keep me\n"
