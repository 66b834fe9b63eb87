"""A bundle whose archive GNU tar reads otherwise than Python's tarfile is refused by the server, nothing staged.

The client checks every member as tarfile reads it. A header that GNU tar reads differently (a ustar prefix
under the old GNU magic, which tar ignores and tarfile applies) could extract a file the manifest does not list,
so each server compares what tar really made with the manifest before the release is kept (remote.only_listed).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from conftest import read_slots
from releaser.bundle import read_bundle
from releaser.errors import ReleaserError

INDEX = b"<h1>r-smuggle</h1>\n"
UNREVIEWED = b"<h1>never in the manifest</h1>\n"
DECOY = b"decoy\n"


def _header(name: bytes, size: int, *, prefix: bytes = b"", magic: bytes = b"ustar\x0000") -> bytes:
    """One 512-byte tar header of a regular file, written field by field."""
    block = bytearray(512)
    block[0:len(name)] = name
    block[100:108], block[108:116], block[116:124] = b"0000644\0", b"0000000\0", b"0000000\0"
    block[124:136], block[136:148] = f"{size:011o}\0".encode(), b"00000000000\0"
    block[148:156], block[156:157] = b" " * 8, b"0"
    block[257:265] = magic
    block[345:345 + len(prefix)] = prefix
    block[148:156] = f"{sum(block):06o}\0 ".encode()
    return bytes(block)


def _member(name: bytes, data: bytes, **header) -> bytes:
    return _header(name, len(data), **header) + data + b"\0" * ((-len(data)) % 512)


def smuggling_bundle(path: Path) -> Path:
    """r-smuggle: tarfile reads p/public/extra.html (listed, a decoy) where GNU tar writes public/extra.html."""
    files = {"public/index.html": INDEX, "public/healthz": b"ok\n", "p/public/extra.html": DECOY}
    manifest = json.dumps({"release_id": "r-smuggle",
                           "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}).encode()
    body = _member(b"manifest.json", manifest) + _member(b"public/index.html", INDEX) + _member(b"public/healthz", b"ok\n")
    body += _member(b"public/extra.html", UNREVIEWED, prefix=b"p", magic=b"ustar  \0")
    body += _member(b"p/public/extra.html", DECOY) + b"\0" * 1024
    path.write_bytes(gzip.compress(body))
    with tarfile.open(path) as archive:  # the client's reading: every member is one the manifest lists
        assert sorted(archive.getnames()) == ["manifest.json", "p/public/extra.html", "p/public/extra.html",
                                              "public/healthz", "public/index.html"]
    return path


@pytest.mark.parametrize("which", ["local_env", "ssh_env"])
def test_a_file_tar_extracts_but_the_manifest_does_not_list_is_refused_everywhere(which, request, open_fleet, tmp_path):
    environment = request.getfixturevalue(which)
    bundle = read_bundle(smuggling_bundle(tmp_path / "r-smuggle.tar.gz"))  # the client finds nothing wrong
    before = read_slots(environment)
    with open_fleet(environment) as fleet, pytest.raises(ReleaserError) as refused:
        fleet.stage(bundle)
    assert "public/extra.html is in the archive but not in the manifest" in str(refused.value)
    assert read_slots(environment) == before  # no staging moved anywhere
    for server in environment.servers:
        root = Path(str(environment.app_root(server)))
        assert not (root / "releases" / "r-smuggle").exists()
        assert not list((root / ".releaser").glob("unpack-*")), "the unpack's work directory was left behind"


def bundle_with_modes(path: Path) -> Path:
    """r-modes: its page set-uid, set-gid, world-writable and owned by uid 4242 in the archive."""
    page = b"<h1>r-modes</h1>\n"
    files = {"public/index.html": page, "public/healthz": b"ok\n"}
    manifest = json.dumps({"release_id": "r-modes",
                           "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}).encode()
    with tarfile.open(path, "w:gz") as archive:
        for name, data in {"manifest.json": manifest, **files}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o6777 if name.endswith(".html") else 0o644, 4242, 4242
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("which", ["local_env", "ssh_env"])
def test_a_staged_file_belongs_to_the_deploy_user_without_set_uid_bits(which, request, open_fleet, tmp_path):
    """Unpacking as root kept the archive's owner and mode bits (QA): a bundle could place a set-uid file in the web
    root. The server's tar now writes files as the deploy user with its umask."""
    environment = request.getfixturevalue(which)
    with open_fleet(environment) as fleet:
        fleet.stage(read_bundle(bundle_with_modes(tmp_path / "r-modes.tar.gz")))
    for server in environment.servers:
        page = Path(str(environment.app_root(server))) / "releases" / "r-modes" / "public" / "index.html"
        info = page.stat()
        assert info.st_uid == os.getuid() and not info.st_mode & (stat.S_ISUID | stat.S_ISGID | stat.S_IWOTH), \
            (server.name, info.st_uid, oct(info.st_mode))
