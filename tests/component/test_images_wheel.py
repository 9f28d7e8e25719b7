"""The image recipes ship in the wheel: a wheel built from this tree, installed in a fresh venv, finds them.

The wheel is built from a copy of the source tree, so the build leaves no
build/ or egg-info directory in the checkout. It is installed without
dependencies into a venv that imports them from the host's site-packages.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.component

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("relay", "faucet", "aggregator-proxy", "edge")


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A venv with unicity-infra installed from a freshly built wheel; return its bin directory."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)

    # No build isolation and no index: the host's setuptools builds it, so the test contacts no package index.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
          "--wheel-dir", str(root / "dist"), str(source)], timeout_s=300)
    wheels = list((root / "dist").glob("unicity_infra-*.whl"))
    assert len(wheels) == 1, wheels
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(root / "venv")])
    _run([str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheels[0])],
         timeout_s=300)
    yield root / "venv" / "bin"


def _run(args: list[str], *, timeout_s: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False, cwd=cwd)
    assert result.returncode == 0, f"{args} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def test_wheel_package_imported_from_venv(venv: Path) -> None:
    result = _run([str(venv / "python"), "-c", "import unicity_infra; print(unicity_infra.__file__)"], cwd=venv)

    assert result.stdout.strip().startswith(str(venv.parent))


def test_wheel_images_build_help(venv: Path) -> None:
    result = _run([str(venv / "unicity-infra"), "images", "build", "--help"], cwd=venv)

    assert "--repository" in result.stdout


@pytest.mark.parametrize("service", SERVICES)
def test_wheel_finds_recipe_files(venv: Path, service: str) -> None:
    script = (
        "import json, sys\n"
        "from unicity_infra.engine.images import wrapper_context\n"
        "context = wrapper_context(sys.argv[1])\n"
        "print(json.dumps({'files': sorted(context.files), 'dockerfile': context.dockerfile}))\n"
    )

    result = _run([str(venv / "python"), "-c", script, service], cwd=venv)
    found = json.loads(result.stdout)

    assert "image-setup.sh" in found["files"]
    assert "unicity_infra/__init__.py" in found["files"]
    assert "ENTRYPOINT" in found["dockerfile"]


def test_wheel_context_is_version_only(venv: Path, tmp_path: Path) -> None:
    # Installed from a wheel, the package is in no git checkout: no sha- tag, an empty revision label.
    result = _run([str(venv / "unicity-infra"), "images", "context", "relay", str(tmp_path / "ctx")], cwd=tmp_path)
    document = json.loads(result.stdout)

    assert document["tags"] == ["unicity-infra/relay:0.1.0"]
    assert document["labels"]["org.opencontainers.image.revision"] == ""
    assert document["labels"]["org.opencontainers.image.source"] == "https://github.com/unicitynetwork/unicity-infra"
    assert (tmp_path / "ctx" / "Dockerfile").is_file()
    assert (tmp_path / "ctx" / "unicity_infra" / "container" / "entrypoint.py").is_file()
