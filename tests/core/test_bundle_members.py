"""A release archive's members must stay inside the release, whatever their type."""

from __future__ import annotations

import io
from pathlib import Path
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


def _plain_member(name: str) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.size = 0
    return member


def test_a_member_named_with_shell_characters_is_refused_for_those_characters(tmp_path):
    """`public/$(touch x).html` is a plain relative file: the message names '$', '(' and ')', and the rule."""
    from releaser.bundle import FILE_NAME_RULE

    with pytest.raises(BundleInvalid) as caught:
        read_bundle(archive_with(tmp_path, _plain_member("public/$(touch x).html")))
    assert str(caught.value.args[0]).endswith(
        "refusing archive member 'public/$(touch x).html': it holds '$', '(', ')', which are not allowed in file names")
    assert caught.value.hint == FILE_NAME_RULE and "spaces" in FILE_NAME_RULE
    assert "plain relative" not in str(caught.value)


def test_a_symbolic_link_member_is_refused_as_a_link_not_for_its_name(tmp_path):
    member = tarfile.TarInfo("public/index.html")
    member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(BundleInvalid, match="'public/index.html': it is a symbolic link; a bundle holds regular files only"):
        read_bundle(archive_with(tmp_path, member))


def test_a_control_character_in_a_name_is_shown_escaped(tmp_path):
    with pytest.raises(BundleInvalid) as caught:
        read_bundle(archive_with(tmp_path, _plain_member("public/a\x1b[2J.html")))
    assert "\x1b" not in str(caught.value) and "'\\x1b'" in str(caught.value)


def test_build_takes_a_name_with_a_space_as_the_rule_says(tmp_path):
    """The rule allows spaces (not first): build keeps `public/my file.html` and reading the bundle agrees."""
    from releaser.bundle import build_bundle

    source = tmp_path / "site"
    (source / "public").mkdir(parents=True)
    (source / "public" / "my file.html").write_text("hi")
    bundle = build_bundle(source, "r9", tmp_path / "r9.tar.gz")
    assert "public/my file.html" in read_bundle(bundle.path).manifest.files


def test_build_refuses_a_name_the_rule_refuses_and_says_which_character(tmp_path):
    from releaser.bundle import build_bundle

    source = tmp_path / "site"
    (source / "public").mkdir(parents=True)
    (source / "public" / "it's.html").write_text("hi")
    with pytest.raises(BundleInvalid, match=r"unsafe file name \"public/it's.html\": it holds \"'\", which is not"):
        build_bundle(source, "r9", tmp_path / "r9.tar.gz")


@pytest.mark.parametrize("prefix", ["", "a", "a/b"])
def test_the_words_of_the_rule_and_the_pattern_agree_on_every_character(prefix):
    """file_name_problem and SAFE_FILE_NAME (which uploads.py uses too) accept exactly the same names."""
    from releaser.bundle import SAFE_FILE_NAME, file_name_problem

    for code in range(0x300):
        for name in (prefix + chr(code), chr(code) + prefix, f"{prefix}{chr(code)}x"):
            pattern = bool(SAFE_FILE_NAME.match(name)) and not name.startswith("/") and ".." not in name.split("/")
            assert (file_name_problem(name) is None) == pattern, repr(name)


def test_a_bundle_that_compresses_well_gets_the_deadline_of_its_files(tmp_path):
    """QA: 600 MB of zeros in a 0.6 MB archive got the archive's deadline, and the busy servers were called silent."""
    from releaser.shipping import Upload

    archive = tmp_path / "small.tar.gz"
    archive.write_bytes(b"x" * 600_000)
    upload = Upload("r1", archive, "0" * 64, tmp_path / "sums", "0" * 64, unpacked_bytes=600_000_000)
    assert upload.unpack_deadline(2.0) == 62.0
    assert Upload("r1", archive, "0" * 64, tmp_path / "sums", "0" * 64, unpacked_bytes=10).unpack_deadline(2.0) == 2.06


@pytest.mark.parametrize(("name", "said"), [
    ("public/" + "x" * 300 + ".html", "is 305 bytes long, and file systems take at most 255"),
    ("public/tsf/", "it ends with '/', which names a directory, not a file"),
])
def test_a_file_no_server_could_write_is_refused_here_not_blamed_on_the_servers(tmp_path, name, said):
    """QA: a 300-byte name part reached every server and came back as 'File name too long (disk full?)'."""
    member = tarfile.TarInfo(name)
    member.type = tarfile.REGTYPE
    with pytest.raises(BundleInvalid, match="refusing archive member") as refused:
        read_bundle(archive_with(tmp_path, member))
    assert said in str(refused.value)


def test_build_refuses_a_name_it_would_not_read_and_leaves_no_file(tmp_path):
    """QA: `build --out r9.zip` wrote the file, then refused it (exit 3) and left it behind."""
    from releaser.bundle import build_bundle

    source = Path(__file__).parents[2] / "examples" / "releases" / "r1"
    with pytest.raises(BundleInvalid, match="a bundle is written as a .tar.gz"):
        build_bundle(source, "r9", tmp_path / "r9.zip")
    built = build_bundle(source, "r9", tmp_path / "r9.tar.gz")
    assert built.release_id == "r9" and sorted(p.name for p in tmp_path.iterdir()) == ["r9.tar.gz"]  # no .part left


@pytest.mark.parametrize("field", ["publication", "uploaded_by", "qa_signed_off_by"])
def test_a_manifest_s_free_text_is_one_line_of_plain_text(field):
    """QA: build accepted ESC and U+202E in a data set's publication and sign-off names; data-status printed them."""
    from releaser.bundle import Manifest

    dataset = {"name": "phof", "publication": "phof", "file": "public/data.csv", field: "ana\u202e@stats"}
    with pytest.raises(ValueError, match="bidirectional control"):
        Manifest(release_id="r1", files={"public/data.csv": "0" * 64}, datasets=[dataset])
    with pytest.raises(ValueError, match="an escape"):
        Manifest(release_id="r1", files={}, publications=["phof\x1b[2J"])


def test_a_fifo_in_the_source_is_refused_not_left_out(tmp_path):
    """QA: build skipped a FIFO in --source without a word."""
    import os
    import shutil

    from releaser.bundle import build_bundle

    source = tmp_path / "src"
    shutil.copytree(Path(__file__).parents[2] / "examples" / "releases" / "r1", source)
    os.mkfifo(source / "public" / "feed")
    with pytest.raises(BundleInvalid, match="'public/feed' is not a regular file or a directory"):
        build_bundle(source, "r9", tmp_path / "r9.tar.gz")
    assert not (tmp_path / "r9.tar.gz").exists()
