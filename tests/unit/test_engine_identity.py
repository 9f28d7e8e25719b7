"""Unit tests of the identity archive checks (engine/identity.py), on archives built in memory."""

from __future__ import annotations

import io
import tarfile

import pytest

from unicity_infra.engine.identity import check_archive
from unicity_infra.errors import SettingsError


def archive(*members: tuple[str, bytes | None], kind: bytes = tarfile.REGTYPE) -> bytes:
    """Return a tar.gz with MEMBERS: (name, content) for files, (name, None) for directories."""
    output = io.BytesIO()
    with tarfile.open(fileobj=output, mode="w:gz") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.type = kind
                info.size = len(content) if kind == tarfile.REGTYPE else 0
                tar.addfile(info, io.BytesIO(content) if kind == tarfile.REGTYPE else None)
    return output.getvalue()


def test_check_archive_accepts_identity_backup() -> None:
    data = archive(("wallet", None), ("wallet/key.json", b"{}"), ("tokens", None), ("tenant.json", b"{}"))

    members = check_archive(data, required_dir="wallet")

    assert [member.name for member in members] == ["wallet", "wallet/key.json", "tokens", "tenant.json"]


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside", "wallet/../../outside"])
def test_check_archive_rejects_paths_outside(name: str) -> None:
    with pytest.raises(SettingsError, match="outside the identity directory"):
        check_archive(archive(("wallet", None), (name, b"x")), required_dir="wallet")


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE])
def test_check_archive_rejects_special_members(kind: bytes) -> None:
    with pytest.raises(SettingsError, match="only regular files and directories"):
        check_archive(archive(("wallet", None), ("wallet/link", b""), kind=kind), required_dir="wallet")


def test_check_archive_requires_wallet_directory() -> None:
    with pytest.raises(SettingsError, match="no wallet/ directory"):
        check_archive(archive(("tokens", None), ("tenant.json", b"{}")), required_dir="wallet")


@pytest.mark.parametrize("data", [b"", b"not an archive", b"\x1f\x8b\x08broken gzip"])
def test_check_archive_rejects_non_archives(data: bytes) -> None:
    with pytest.raises(SettingsError, match="not a tar.gz archive"):
        check_archive(data, required_dir="wallet")
