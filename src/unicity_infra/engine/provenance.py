"""Read where the running package comes from: its distribution metadata and, from a checkout, its git commit.

The results feed the tags and OCI labels that ``engine/recipes/release.py``
computes. Nothing here needs the Docker Engine.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import unicity_infra
from unicity_infra import __version__
from unicity_infra.engine.recipes.release import (
    Provenance,
    SourceCheckout,
    parse_source_date_epoch,
)

__all__ = ["DISTRIBUTION", "package_dir", "read_checkout", "read_distribution_urls", "read_provenance"]

logger = logging.getLogger(__name__)

DISTRIBUTION = "unicity-infra"
GIT_TIMEOUT_S = 30


def package_dir() -> Path:
    """Return the directory of the imported ``unicity_infra`` package."""
    return Path(unicity_infra.__file__).resolve().parent


def read_provenance(environ: Mapping[str, str] | None = None) -> Provenance:
    """Read the version, project URLs, licence, git checkout and SOURCE_DATE_EPOCH of the running package.

    Raises SettingsError when SOURCE_DATE_EPOCH is set but not a whole number.
    """
    env = os.environ if environ is None else environ
    epoch = env.get("SOURCE_DATE_EPOCH", "").strip()
    source_date_epoch = parse_source_date_epoch(epoch) if epoch else None
    urls, licenses = read_distribution_urls()

    return Provenance(
        version=__version__,
        source_url=urls.get("source", ""),
        documentation_url=urls.get("documentation", ""),
        licenses=licenses,
        checkout=read_checkout(package_dir()),
        source_date_epoch=source_date_epoch,
    )


def read_distribution_urls() -> tuple[dict[str, str], str]:
    """Return the installed distribution's project URLs by lower-cased label, and its licence ("" if none)."""
    try:
        metadata = importlib.metadata.metadata(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        logger.debug("distribution %s is not installed; no project URLs or licence", DISTRIBUTION)
        return {}, ""
    urls: dict[str, str] = {}
    for entry in metadata.get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        urls[label.strip().lower()] = url.strip()
    licenses = metadata.get("License-Expression") or metadata.get("License") or ""
    return urls, licenses.strip()


def read_checkout(directory: Path) -> SourceCheckout | None:
    """Return the git commit DIRECTORY's files are tracked in, or None when they are not in a git checkout.

    A package installed from a wheel lives in site-packages, which may sit
    inside a git work tree (a virtual environment in a project directory).
    So the checkout counts only when it tracks the package's own ``__init__.py``.
    """
    if shutil.which("git") is None:
        logger.debug("git not found on PATH; no revision for %s", directory)
        return None
    if _git(directory, "ls-files", "--error-unmatch", "__init__.py") is None:
        return None
    revision = _git(directory, "rev-parse", "HEAD")
    commit_time = _git(directory, "show", "-s", "--format=%ct", "HEAD")
    prefix = _git(directory, "rev-parse", "--show-prefix")
    status = _git(directory, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".", strip=False)
    if revision is None or commit_time is None or prefix is None or status is None:
        return None
    return SourceCheckout(
        revision=revision,
        commit_time=int(commit_time),
        changed_paths=frozenset(_changed_paths(status, prefix)),
        last_change=functools.partial(_last_change, directory),
    )


def _last_change(directory: Path, paths: tuple[str, ...]) -> tuple[str, int] | None:
    """Return the sha and commit time of the last commit that changed any of PATHS (relative to DIRECTORY)."""
    if not paths:
        return None
    output = _git(directory, "log", "-1", "--format=%H %ct", "--", *paths)
    if not output:
        return None
    sha, _, commit_time = output.partition(" ")
    return (sha, int(commit_time)) if commit_time.isdigit() else None


def _changed_paths(status: str, prefix: str) -> list[str]:
    """Return the paths in ``git status --porcelain=v1 -z`` output, relative to the directory at PREFIX.

    Porcelain paths are relative to the top of the work tree. A rename or
    copy entry is followed by a second field with the original path, and
    both paths count as changed.
    """
    fields = status.split("\0")
    paths: list[str] = []
    index = 0
    while index < len(fields):
        entry = fields[index]
        index += 1
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC" or entry[1] in "RC":
            paths.append(fields[index])
            index += 1
    return [path.removeprefix(prefix) for path in paths if path.startswith(prefix)]


def _git(directory: Path, *args: str, strip: bool = True) -> str | None:
    """Return the output of ``git ARGS`` run in DIRECTORY, or None when git fails."""
    try:
        result = subprocess.run(
            ["git", *args], cwd=directory, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.debug("git %s failed in %s: %s", " ".join(args), directory, exc)
        return None
    if result.returncode != 0:
        logger.debug("git %s exited with %d in %s: %s", " ".join(args), result.returncode, directory,
                      result.stderr.strip())
        return None
    return result.stdout.strip() if strip else result.stdout
