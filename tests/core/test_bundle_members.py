"""A release archive's members must stay inside the release, whatever their type."""

from __future__ import annotations

import io
import tarfile

import pytest

from releaser.bundle import read_bundle
from releaser.errors import BundleInvalid


def archive_with(tmp_path, member: tarfile.TarInfo):
    path = tmp_path / "r9.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        archive.addfile(member, io.BytesIO(b"") if member.isfile() else None)
    return path


@pytest.mark.parametrize("name", ["../x", "/abs", "a/../../x"])
def test_a_directory_member_escaping_the_release_is_refused_not_dropped(tmp_path, name):
    member = tarfile.TarInfo(name)
    member.type = tarfile.DIRTYPE
    with pytest.raises(BundleInvalid, match="refusing archive member"):
        read_bundle(archive_with(tmp_path, member))
