"""The GitHub Actions workflow that builds and pushes the images, checked offline.

The workflow never runs here. check-jsonschema validates it against the
GitHub workflow schema it vendors, shellcheck checks its shell steps, and
the steps that compute the matrix and the build context run in bash with a
temporary GITHUB_OUTPUT, as a runner would run them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "images.yml"
SETUP_SCRIPT = Path(__file__).resolve().parents[2] / "src/unicity_infra/engine/recipes/images/image-setup.sh"


def _workflow() -> dict[Any, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def _step(job: str, name: str) -> dict[str, Any]:
    steps = _workflow()["jobs"][job]["steps"]
    return next(step for step in steps if step.get("name") == name)


def _uses(job: str) -> list[str]:
    return [step["uses"].split("@")[0] for step in _workflow()["jobs"][job]["steps"] if "uses" in step]


def _run_step(script: str, tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """Run SCRIPT as GitHub runs a bash step and return what it wrote to GITHUB_OUTPUT."""
    output = tmp_path / "github_output"
    output.write_text("")
    environment = os.environ | env | {"GITHUB_OUTPUT": str(output)}
    subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=environment, check=True, timeout=120,
                   capture_output=True, text=True)
    return _parse_github_output(output.read_text())


def _parse_github_output(text: str) -> dict[str, str]:
    """Parse GITHUB_OUTPUT lines: ``name=value`` and ``name<<DELIMITER`` blocks."""
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            for inner in lines:
                if inner == delimiter:
                    break
                block.append(inner)
            outputs[name] = "\n".join(block)
        else:
            name, _, value = line.partition("=")
            outputs[name] = value
    return outputs


def test_workflow_matches_github_schema() -> None:
    result = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True, text=True, timeout=120, check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_broken_workflow(tmp_path: Path) -> None:
    # The check above must be able to fail: a misspelt key is rejected.
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:", 1))

    result = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(broken)],
        capture_output=True, text=True, timeout=120, check=False,
    )

    assert result.returncode == 1


def test_workflow_triggers() -> None:
    triggers = _workflow()[True]  # YAML 1.1 reads the key 'on' as true.

    assert "pull_request" in triggers
    assert triggers["push"] == {"tags": ["v*"]}


def test_workflow_uses_docker_actions() -> None:
    assert {"docker/login-action", "docker/metadata-action", "docker/build-push-action",
            "docker/setup-buildx-action"} <= set(_uses("image"))


def test_workflow_pushes_only_on_tags() -> None:
    build = _step("image", "Build, and push on tags")

    assert build["with"]["push"] == "${{ github.event_name == 'push' }}"
    assert _step("image", "Log in to GHCR")["if"] == "github.event_name == 'push'"


def test_workflow_caches_in_github_actions() -> None:
    build = _step("image", "Build, and push on tags")

    assert build["with"]["cache-from"].startswith("type=gha")
    assert build["with"]["cache-to"].startswith("type=gha")


def test_workflow_takes_no_password_but_github_token() -> None:
    login = _step("image", "Log in to GHCR")

    assert login["with"]["password"] == "${{ secrets.GITHUB_TOKEN }}"


def test_workflow_tags_sha_like_images_build() -> None:
    tags = _step("image", "Compute the tags")["with"]["tags"].split()

    assert "type=sha" in tags
    assert "type=semver,pattern={{version}}" in tags


@pytest.mark.parametrize(
    "faucet, expected",
    [("", ["relay", "aggregator-proxy", "edge"]), ("ghcr.io/org/faucet:1", ["relay", "aggregator-proxy", "edge", "faucet"])],
    ids=["without-faucet-upstream", "with-faucet-upstream"],
)
def test_plan_step_matrix(tmp_path: Path, faucet: str, expected: list[str]) -> None:
    step = _step("plan", "List the images to build")

    outputs = _run_step(step["run"], tmp_path, {"FAUCET_UPSTREAM_IMAGE": faucet})
    matrix = json.loads(outputs["matrix"])

    assert [entry["image"] for entry in matrix["include"]] == expected
    assert all(entry["platforms"] for entry in matrix["include"])


def test_context_step_outputs_build_args_and_labels(tmp_path: Path) -> None:
    step = _step("image", "Write the build context")
    # The step reads the commit time of the checkout it runs in.
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q",
                    "--allow-empty", "-m", "x", "--date=@1700000000"],
                   cwd=tmp_path, check=True, env=os.environ | {"GIT_COMMITTER_DATE": "@1700000000 +0000"})

    outputs = _run_step(step["run"], tmp_path, {"SERVICE": "relay", "UNICITY_INFRA_FAUCET_IMAGE": ""})

    assert outputs["source-date-epoch"] == "1700000000"
    assert "BASE_IMAGE=ghcr.io/unicitynetwork/ssl-manager:latest" in outputs["build-args"].splitlines()
    assert "org.opencontainers.image.created=2023-11-14T22:13:20Z" in outputs["labels"].splitlines()
    assert (tmp_path / "build-context" / "Dockerfile").is_file()


@pytest.mark.parametrize(
    "job, name", [("plan", "List the images to build"), ("image", "Write the build context"),
                  ("image", "Check that the tag names the package version")],
)
def test_workflow_shell_steps_pass_shellcheck(tmp_path: Path, job: str, name: str) -> None:
    _require_shellcheck()
    script = tmp_path / "step.sh"
    script.write_text("#!/bin/bash\n" + _step(job, name)["run"])

    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 0, result.stdout


def test_image_setup_script_passes_shellcheck() -> None:
    _require_shellcheck()
    result = subprocess.run(["shellcheck", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 0, result.stdout


def _require_shellcheck() -> None:
    # scripts/install-deps.sh installs it; a missing tool must not pass as a skipped check.
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck not found on PATH; run scripts/install-deps.sh (apt-get install shellcheck)")
