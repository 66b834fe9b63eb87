"""Release bundles: a directory or .tar.gz holding the build, its data and a manifest.json.

The manifest names the release id, the publications it carries, its data sets (with upload time and
QA sign-off) and the sha256 of every file. A bundle whose files do not match is refused before anything
is uploaded. `read_bundle`, `build_bundle` and `pack_bundle` touch files; the rest is pure.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from releaser.errors import BundleInvalid

MANIFEST = "manifest.json"
SUMS = ".releaser-sha256sums"
RELEASE_MARKER = "public/.releaser/release.json"  # written on each server at stage (releaser.identity), never bundled
# `\Z`, not `$`: in Python's `re`, `$` also matches before a trailing newline, so "r6\n" would pass.
# fleet.py and uploads.py match with these too.
RELEASE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_NAME_CHARACTERS = "A-Za-z0-9._+@=/ -"  # a regex character class's inside: the one list of what names may hold
SAFE_FILE_NAME = re.compile(  # file names a bundle may hold: no quotes, no shell metacharacters, no newline
    rf"^[A-Za-z0-9._+@=-][{_NAME_CHARACTERS}]*\Z")
_REFUSED_CHARACTER = re.compile(rf"[^{_NAME_CHARACTERS}]")
FILE_NAME_RULE = ("a file name in a bundle is a relative path of letters a-z A-Z, digits, spaces and . _ + @ = - /, "
                  "not starting with a space or '/', with no '..' part")


def _plain_line(value: str | None) -> str | None:
    """A manifest's free text (a publication, who uploaded or signed off) as one line of plain text, else ValueError:
    data-status, check and history print it, and an escape sequence there would drive the reader's terminal."""
    from releaser.free_text import control_character_problem

    problem = None if value is None else control_character_problem(value)
    if problem:
        raise ValueError(f"holds {problem}; it must be one line of plain text")
    return value


class DataSet(BaseModel):
    """A data set the release publishes, with who uploaded it, when, and who signed it off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    publication: str
    file: str
    uploaded_at: datetime | None = None
    uploaded_by: str | None = None
    sha256: str | None = None
    qa_signed_off_by: str | None = None
    qa_signed_off_at: datetime | None = None

    @field_validator("publication", "uploaded_by", "qa_signed_off_by")
    @classmethod
    def _plain_text(cls, value: str | None) -> str | None:
        return _plain_line(value)


class DataFile(BaseModel):
    """One file of the release's data, loaded into the staging schema in manifest order (issue 14).

    A `csv` file (with a header line) is copied into `table` with COPY and must load exactly `rows` rows;
    a `sql` file runs as a script inside the staging schema (create the tables there, or small inserts),
    and when it names a `table` and `rows`, that table must hold that many rows afterwards. The file's
    sha256 is the one in `files`, so it is checked with every other file of the bundle.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    format: Literal["csv", "sql"]
    table: str | None = Field(None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    rows: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _table_and_rows_go_together(self) -> "DataFile":
        if self.format == "csv" and (self.table is None or self.rows is None):
            raise ValueError(f"{self.file}: a csv data file needs the table it loads and the rows it must load")
        if (self.table is None) != (self.rows is None):
            raise ValueError(f"{self.file}: table and rows go together")
        return self


class Manifest(BaseModel):
    """The manifest.json at the top of every bundle."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    release_id: str
    created_at: datetime | None = None
    publications: list[str] = []
    datasets: list[DataSet] = []
    data_files: list[DataFile] = []  # the data loaded into the database's staging schema, in order
    files: dict[str, str]

    @field_validator("release_id")
    @classmethod
    def _release_id_is_safe(cls, value: str) -> str:
        return validate_release_id(value)

    @field_validator("publications")
    @classmethod
    def _publications_are_plain_text(cls, value: list[str]) -> list[str]:
        return [_plain_line(name) for name in value]

    @model_validator(mode="after")
    def _data_files_are_checksummed(self) -> "Manifest":
        for data in self.data_files:
            if data.file not in self.files:
                raise ValueError(f"data file {data.file!r} is not in files, so nothing checks its sha256")
        return self


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on this machine: where it is, its manifest and its size in bytes."""

    path: Path
    manifest: Manifest
    size: int
    archive_sha256: str | None = None  # a .tar.gz's own sha256, taken while it was read: it is uploaded as it is

    @property
    def release_id(self) -> str:
        """The release id the manifest declares."""
        return self.manifest.release_id


def validate_release_id(text: str) -> str:
    """Return `text` if it is a safe release id: letters, digits, '.', '_' and '-', at most 64 characters.

    Release ids become directory names on every server, so slashes, spaces, quotes and shell
    metacharacters are refused outright rather than escaped.
    """
    if not RELEASE_ID_PATTERN.match(text):
        raise BundleInvalid(
            f"bad release id {text!r}: use letters, digits, '.', '_' or '-' (at most 64, the first a letter or digit)",
            hint="pick an id like 2026-12-phof (--release-id for invoke build, release_id in a manifest.json)",
        )
    return text


def file_name_problem(name: str) -> str | None:
    """What in `name` breaks FILE_NAME_RULE, said so a person sees which part to rename, or None if it keeps it.

    The rule is SAFE_FILE_NAME plus no absolute path and no '..' part: a name stays inside the release and
    reaches a server's shell only as one quoted argument, and a newline would break the sha256sums lines.
    Characters are shown escaped (repr), so a control character is named, never sent to the terminal.
    """
    if not name:
        return "it is empty"
    if name.startswith("/"):
        return "it starts with '/', so it is an absolute path, not one inside the release"
    if ".." in PurePosixPath(name).parts:
        return "it has a '..' part, which would leave the release's directory"
    refused = sorted(set(_REFUSED_CHARACTER.findall(name)))
    if refused:
        shown = ", ".join(repr(c) for c in refused)
        return f"it holds {shown}, which {'is' if len(refused) == 1 else 'are'} not allowed in file names"
    if name.startswith(" "):
        return "it starts with a space"
    return None  # SAFE_FILE_NAME matches: tests/core/test_bundle_members.py holds the two to the same rule


def checksum_problems(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """List files that are missing, unexpected or whose sha256 differs from the manifest (empty when all match)."""
    problems = [f"{name}: missing" for name in sorted(expected.keys() - actual.keys())]
    problems += [f"{name}: not in the manifest" for name in sorted(actual.keys() - expected.keys())]
    problems += [
        f"{name}: sha256 differs from the manifest"
        for name in sorted(expected.keys() & actual.keys())
        if expected[name] != actual[name]
    ]
    return problems


def sha256sums_text(files: dict[str, str]) -> str:
    """Render checksums in the format `sha256sum -c` reads, so servers verify with a stock tool."""
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(files.items()))


def read_bundle(path: Path) -> Bundle:
    """Read and verify a bundle directory or .tar.gz; raise BundleInvalid saying what is wrong."""
    path = Path(path)
    archive_sha256 = None
    if path.is_dir():
        manifest = _parse_manifest(_read_or_refuse(path / MANIFEST, path), path)
        actual = {name: sha256_file(path / name) for name in _files_in(path)}
        size = sum((path / name).stat().st_size for name in actual)
    elif path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        manifest, actual, size, archive_sha256 = _read_archive(path)
    elif path.exists():
        raise BundleInvalid(f"{path} is neither a directory nor a .tar.gz bundle")
    else:
        raise BundleInvalid(f"release bundle {path} does not exist", hint="pass --release PATH to a directory or .tar.gz")
    problems = checksum_problems(manifest.files, actual)
    if problems:
        shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
        raise BundleInvalid(f"bundle {path} is corrupt: {shown}", hint="rebuild it with: invoke build")
    return Bundle(path=path, manifest=manifest, size=size, archive_sha256=archive_sha256)


def build_bundle(source: Path, release_id: str, out: Path, *, publications: list[str] = (), now: datetime | None = None) -> Bundle:
    """Write a .tar.gz bundle of `source` with a fresh manifest.json, and return it verified.

    The archive is written beside `out` under a temporary name and renamed when whole: a build that fails or is
    interrupted leaves no half archive that a later deploy could mistake for a bundle.
    """
    validate_release_id(release_id)
    if not out.name.endswith((".tar.gz", ".tgz")):
        raise BundleInvalid(f"--out {out}: a bundle is written as a .tar.gz (or .tgz) file; nothing was written",
                            hint=f"name it {release_id}.tar.gz")
    previous = {}
    if (source / MANIFEST).is_file():
        previous = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    files = {name: sha256_file(source / name) for name in _files_in(source)}
    manifest = Manifest(
        release_id=release_id,
        created_at=now,
        publications=list(publications) or previous.get("publications", []),
        datasets=previous.get("datasets", []),
        data_files=previous.get("data_files", []),
        files=files,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f".{out.name}.part-{os.getpid()}")
    try:
        with tarfile.open(part, "w:gz") as archive:
            _add_bytes(archive, MANIFEST, manifest_bytes(manifest))
            for name in sorted(files):
                archive.add(source / name, arcname=name, recursive=False)
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
    return read_bundle(out)


def seal_directory(source: Path, release_id: str, *, publications: list[str] = (), datasets: list[dict] = (),
                   data_files: list[dict] = (), now: datetime | None = None) -> Bundle:
    """Write manifest.json into a directory so the directory itself is a bundle, and return it verified."""
    validate_release_id(release_id)
    files = {name: sha256_file(source / name) for name in _files_in(source)}
    manifest = Manifest(release_id=release_id, created_at=now, publications=list(publications),
                        datasets=list(datasets), data_files=list(data_files), files=files)
    (source / MANIFEST).write_bytes(manifest_bytes(manifest))
    return read_bundle(source)


def manifest_bytes(manifest: Manifest) -> bytes:
    """Serialise a manifest the way bundles store it (stable key order, readable)."""
    return (manifest.model_dump_json(indent=2, exclude_none=True) + "\n").encode()


def archive_to_upload(bundle: Bundle, workdir: Path) -> tuple[Path, str]:
    """Return the .tar.gz to upload and its sha256: a .tar.gz bundle as it is, a directory packed once into workdir.

    A .tar.gz is never repacked: read_bundle verified it and took its sha256 as it read it, and each server
    checks the upload against that sha256, so a file changed since (or on the way) is refused there. The
    sums file travels beside the archive (see remote.unpack_argv), so the archive needs none inside.
    """
    if bundle.archive_sha256 is not None:
        return bundle.path, bundle.archive_sha256
    return pack_bundle(bundle, workdir)


def pack_bundle(bundle: Bundle, workdir: Path) -> tuple[Path, str]:
    """Pack a directory bundle into a .tar.gz (manifest and files) in workdir; return it and its sha256, hashed as written."""
    out = Path(tempfile.mkstemp(prefix=f"{bundle.release_id}-", suffix=".tar.gz", dir=workdir)[1])
    with open(out, "wb") as raw:
        hashed = _Hashing(raw)
        with tarfile.open(fileobj=hashed, mode="w:gz", compresslevel=1) as archive:
            _add_bytes(archive, MANIFEST, (bundle.path / MANIFEST).read_bytes())
            for name in sorted(bundle.manifest.files):
                archive.add(bundle.path / name, arcname=name, recursive=False)
    return out, hashed.digest.hexdigest()


class _Hashing:
    """A binary file wrapper that hashes every byte read from it or written to it, in passing."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        return data

    def write(self, data) -> int:
        self.digest.update(data)
        return self.handle.write(data)

    def drain(self) -> None:
        """Hash what is left unread (a tar reader stops at the end-of-archive blocks, before any padding)."""
        for block in iter(lambda: self.read(1 << 20), b""):
            pass

    def __getattr__(self, name: str):
        return getattr(self.handle, name)


def _parse_manifest(raw: bytes, where: Path) -> Manifest:
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise BundleInvalid(f"{where}/{MANIFEST} is not valid JSON: {error}") from error
    if isinstance(data, dict) and isinstance(data.get("release_id"), str):
        validate_release_id(data["release_id"])
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise BundleInvalid(f"{where}/{MANIFEST}: {field}: {first['msg']}", hint="rebuild it with: invoke build") from error
    for name in manifest.files:
        if problem := file_name_problem(name):
            raise BundleInvalid(f"{where}/{MANIFEST}: unsafe file name {name!r}: {problem}", hint=FILE_NAME_RULE)
    return manifest


def _read_or_refuse(path: Path, bundle: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as error:
        raise BundleInvalid(f"{bundle} has no {MANIFEST}", hint="build the bundle with: invoke build --source DIR --release-id ID") from error


def _read_archive(path: Path) -> tuple[Manifest, dict[str, str], int, str]:
    """Read a .tar.gz once, in blocks: its manifest, each file's sha256, the files' size and the archive's own sha256."""
    actual: dict[str, str] = {}
    manifest_raw = None
    size = 0
    try:
        with open(path, "rb") as raw:
            hashed = _Hashing(raw)
            with tarfile.open(fileobj=hashed, mode="r|gz") as archive:  # a stream: read once, no seek
                for member in archive:
                    name = member.name.removeprefix("./")
                    if member.isdir() and name.rstrip("/") in ("", "."):
                        continue
                    if member.isdir() and _is_safe_member(name.rstrip("/")):
                        continue  # a directory is made by the files in it; one escaping the root is refused below
                    if problem := file_name_problem(name.rstrip("/") if member.isdir() else name):
                        raise BundleInvalid(f"{path}: refusing archive member {member.name!r}: {problem}",
                                            hint=FILE_NAME_RULE)
                    if not member.isfile():
                        raise BundleInvalid(f"{path}: refusing archive member {member.name!r}: it is "
                                            f"{_MEMBER_KINDS.get(member.type, 'not a regular file')}; a bundle "
                                            "holds regular files only")
                    if problem := _unwritable_name_problem(name):  # else every server would refuse it, blamed on its disk
                        raise BundleInvalid(f"{path}: refusing archive member {member.name!r}: {problem}",
                                            hint="rename it in the source and build the bundle again")
                    source = archive.extractfile(member)
                    if name == MANIFEST:
                        manifest_raw = source.read()
                    elif name not in (SUMS, RELEASE_MARKER):
                        digest = hashlib.sha256()
                        for block in iter(lambda: source.read(1 << 20), b""):  # a large file never sits whole in memory
                            digest.update(block)
                        actual[name] = digest.hexdigest()
                        size += member.size
            hashed.drain()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise BundleInvalid(f"{path} is not a readable .tar.gz: {error}", hint="rebuild or re-download it") from error
    if manifest_raw is None:
        raise BundleInvalid(f"{path} has no {MANIFEST}", hint="build the bundle with: invoke build --source DIR --release-id ID")
    return _parse_manifest(manifest_raw, path), actual, size, hashed.digest.hexdigest()


def _files_in(root: Path) -> list[str]:
    names = []
    for item in sorted(root.rglob("*")):
        name = item.relative_to(root).as_posix()
        if name in (MANIFEST, SUMS, RELEASE_MARKER):  # the marker names one release: it is never part of a bundle
            continue
        if item.is_symlink():
            raise BundleInvalid(f"{root}: {name} is a symbolic link; bundles hold plain files only")
        if item.is_file():
            if problem := file_name_problem(name):
                raise BundleInvalid(f"{root}: unsafe file name {name!r}: {problem}", hint=FILE_NAME_RULE)
            names.append(name)
        elif not item.is_dir():  # left out silently, the release would lack what its source held
            raise BundleInvalid(f"{root}: {name!r} is not a regular file or a directory (a FIFO, a socket, a device); "
                                "bundles hold plain files only", hint="remove it from the source, or copy what it holds "
                                                                      "into a plain file")
    return names


def _unwritable_name_problem(name: str) -> str | None:
    """What makes a regular file's name one no server's file system can write, or None: a part over 255 bytes,
    a path over 4095, or a trailing '/' (a directory's name on a file)."""
    if name.endswith("/"):
        return "it ends with '/', which names a directory, not a file"
    long = next((part for part in name.split("/") if len(part.encode()) > 255), None)
    if long is not None:
        return f"its part {long!r} is {len(long.encode())} bytes long, and file systems take at most 255"
    if len(name.encode()) > 4095:
        return f"it is {len(name.encode())} bytes long, and paths are at most 4095"
    return None


def _is_safe_member(name: str) -> bool:
    return file_name_problem(name) is None


_MEMBER_KINDS = {tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link", tarfile.CHRTYPE: "a device",
                 tarfile.BLKTYPE: "a device", tarfile.FIFOTYPE: "a named pipe"}


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in blocks so a large data file never sits whole in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))
