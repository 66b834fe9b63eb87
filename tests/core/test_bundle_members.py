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


def test_the_unpack_deadline_grows_with_the_archive_so_a_large_bundle_is_not_called_lost():
    """A 1 GB unpack took over a minute on three servers sharing two cores: a flat 20 s step called them all lost."""
    from releaser.shipping import unpack_deadline

    assert unpack_deadline(20.0, 0) == 20.0
    assert unpack_deadline(20.0, 1_000_000_000) == 120.0
    assert unpack_deadline(5.0, 10_000_000) == 6.0
