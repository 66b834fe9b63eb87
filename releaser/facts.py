"""A server's facts for the pre-release checks, read in one round trip: the script and the parser of its output.

Like a pyinfra fact, the command and its `parse` live together. One `sh` run per server reports its clock (at
the start and at the end, so the time the script itself took is not counted as network), its slots, the
release under check (its sums, manifest and data records), free disk and the release's size, the lock, each
configuration file config-parity compares, and, when asked, `sha256sum -c` of the staged and of the live
release. The checks in releaser.checks judge these facts; none of them asks the server again. A passing sums
check leaves a stamp (remote.RELEASE_FILES) that lets the prepare of the same command skip reading every
file again when nothing in the release changed since.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath

from releaser.bundle import validate_release_id
from releaser.remote import RELEASE_FILES

FILES = (".releaser-sha256sums", "manifest.json", ".releaser-datasets.json")

# Few processes: it runs on every server before every go-live, all of them at once on the day.
_SCRIPT = RELEASE_FILES + r"""
printf 'clock %s\n' "$(date +%s.%N)"
cd "$1" 2>/dev/null || { echo noroot; printf 'clock-end %s\n' "$(date +%s.%N)"; exit 0; }
release=$2; verify=$3; shift 3
found=$(find . -mindepth 1 -maxdepth 1 -type l \( -name live -o -name backup -o -name staging \) -printf 'slot %f %l\n')
printf '%s\n' "$found"
live_release=
while read -r kind name target; do
  case $kind:$name in
    slot:live) live_release=${target#releases/} ;; slot:staging) [ -n "$release" ] || release=${target#releases/} ;;
  esac
done <<FOUND
$found
FOUND
if [ -d .releaser/lock ]; then held=; IFS= read -r held 2>/dev/null < .releaser/lock/info.json; printf 'lock %s\n' "$held"; fi
printf 'df %s\n' "$(stat -f -c '%a*%S' .)"
if [ -n "$release" ]; then
  printf 'release %s\n' "$release"
  if [ -d "releases/$release" ]; then
    set -- "$@" "releases/$release/.releaser-sha256sums" "releases/$release/manifest.json" "releases/$release/.releaser-datasets.json"
    printf 'size %s\n' "$(du -sk "releases/$release")"
  else
    echo missing
  fi
fi
case $verify in *live*) [ -z "$live_release" ] || [ "$live_release" = "$release" ] \
  || set -- "$@" "releases/$live_release/.releaser-sha256sums" ;; esac  # its file count, without a `wc`
for f do shift; if [ -f "$f" ]; then set -- "$@" "$f"; fi; done
[ $# -gt 0 ] && printf 'tar %s\n' "$(tar -chf - -- "$@" 2>/dev/null | base64 -w0)"
verify_one() {  # $1: staged | live, $2: the release id; one line per fact, each prefixed with $1
  printf '%s release %s\n' "$1" "$2"
  [ -d "releases/$2" ] || { echo "$1 missing"; return; }
  [ -f "releases/$2/.releaser-sha256sums" ] || { echo "$1 nosums"; return; }
  if check_sums "$2"; then echo "$1 intact"
  else printf '%s corrupt %s\n' "$1" "$(printf '%s\n' "$sums_out" | head -n 3 | tr '\n' ' ')"; fi
}
staged_out=
if [ -n "$release" ] && [ -d "releases/$release" ]; then
  case $verify in *staged*) staged_out=$(verify_one staged "$release"); printf '%s\n' "$staged_out" ;; esac
fi
case $verify in *live*)
  if [ -z "$live_release" ]; then echo 'live noslot'
  elif [ -n "$staged_out" ] && [ "$live_release" = "$release" ]; then printf '%s\n' "$staged_out" | sed 's/^staged /live /'
  else verify_one live "$live_release"; fi ;;
esac
printf 'clock-end %s\n' "$(date +%s.%N)"
exit 0
"""


@dataclass(frozen=True)
class Verified:
    """What `sha256sum -c` said of a release on one server: intact, corrupt (with the first lines), nosums, missing."""

    release: str | None
    outcome: str  # "intact", "corrupt", "nosums", "missing", "noslot", "noroot"
    detail: str = ""
    files: int | None = None


@dataclass(frozen=True)
class ServerFacts:
    """Everything the checks read from one server, as one record.

    `lock` is the lock's info.json line ('' when unreadable) and `locked` whether a lock directory exists;
    `clock` is the server's time when the script started and `clock_spent` how long the script ran there.
    `config` holds each requested configuration file's text (None: not there), in the order asked.
    """

    noroot: bool = False
    slots: Mapping[str, str] = field(default_factory=dict)
    release: str | None = None
    on_disk: bool = False
    files: Mapping[str, str] = field(default_factory=dict)
    free_kib: int | None = None
    release_kib: int | None = None
    locked: bool = False
    lock: str = ""
    clock: float | None = None
    clock_spent: float = 0.0
    config: tuple[str | None, ...] = ()
    staged: Verified | None = None
    live: Verified | None = None


def facts_argv(root: PurePosixPath, release_id: str | None, *, verify: Sequence[str] = (),
               config: Sequence[str] = ()) -> list[str]:
    """One server's facts in one round trip; `verify` names the releases to sha256sum ("staged", "live").

    `config` are file paths relative to the app root (config-parity's, in the staged and the live release).
    """
    unknown = set(verify) - {"staged", "live"}
    if unknown:
        raise ValueError(f"cannot verify {sorted(unknown)}")
    return ["sh", "-c", _SCRIPT, "releaser-facts", str(root), validate_release_id(release_id) if release_id else "",
            " ".join(verify), *config]


def parse_facts(text: str, config: Sequence[str] = ()) -> ServerFacts:
    """Read the facts script's output into one record (pure); `config` are the paths facts_argv was given."""
    slots: dict[str, str] = {}
    files: dict[str, str] = {}
    verified: dict[str, list[str]] = {"staged": [], "live": []}
    values: dict[str, object] = {}
    clock = clock_end = None
    noroot = missing = False
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "clock":
            clock = _number(rest)
        elif kind == "clock-end":
            clock_end = _number(rest)
        elif kind == "noroot":
            noroot = True
        elif kind == "slot":
            slot, _, target = rest.partition(" ")
            slots[slot] = target.removeprefix("releases/").rstrip("/")
        elif kind == "lock":
            values["locked"], values["lock"] = True, rest.strip()
        elif kind == "df" and re.fullmatch(r"\d+\*\d+", rest.strip()):
            blocks, size = rest.strip().split("*")
            values["free_kib"] = int(blocks) * int(size) // 1024
        elif kind == "size" and rest.split() and rest.split()[0].isdigit():
            values["release_kib"] = int(rest.split()[0])
        elif kind == "tar":
            values["texts"] = _untar(rest)
        elif kind == "release":
            values["release"] = rest.strip()
        elif kind == "missing":
            missing = True
        elif kind == "file":  # the older release-view form: one base64 line per file
            name, _, encoded = rest.partition(" ")
            files[name] = decode(encoded)
        elif kind in verified:
            verified[kind].append(rest)
    release = values.get("release")
    texts = values.get("texts", {})
    if release:
        files.update({name: texts[f"releases/{release}/{name}"] for name in FILES if f"releases/{release}/{name}" in texts})
    sums = files.get(FILES[0], "")
    return ServerFacts(
        noroot=noroot, slots=slots, release=release, on_disk=release is not None and not missing, files=files,
        free_kib=values.get("free_kib"), release_kib=values.get("release_kib"), locked=bool(values.get("locked")),
        lock=str(values.get("lock", "")), clock=clock,
        clock_spent=(clock_end - clock) if clock is not None and clock_end is not None else 0.0,
        config=tuple(texts.get(path) for path in config),
        staged=_verified(verified["staged"], sums), live=Verified(None, "noroot") if noroot and not verified["live"]
        else _verified(verified["live"], sums if slots.get("live") == release
                       else texts.get(f"releases/{slots.get('live')}/{FILES[0]}", "")))


def _verified(lines: list[str], sums: str) -> Verified | None:
    """One release's verification, its file count from its sums text when the script did not count them."""
    if not lines:
        return None
    found = parse_verified("\n".join(lines))
    if found.files is None and sums and found.outcome in ("intact", "corrupt"):
        found = replace(found, files=len(sums.splitlines()))
    return found


def _untar(encoded: str) -> dict[str, str]:
    """The files of the script's base64 tar, by the path it was given, as text."""
    try:
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(encoded.strip(), validate=True))) as archive:
            return {member.name: archive.extractfile(member).read().decode("utf-8", errors="replace")
                    for member in archive.getmembers() if member.isfile()}
    except (binascii.Error, ValueError, tarfile.TarError, OSError):
        return {}


def parse_verified(text: str) -> Verified:
    """Read one release's verification lines (release, files, then intact / corrupt / nosums / missing / noslot)."""
    release, outcome, detail, files = None, "missing", "", None
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "release":
            release = rest.strip()
        elif kind == "files" and rest.strip().isdigit():
            files = int(rest)
        elif kind in ("intact", "corrupt", "nosums", "missing", "noslot", "noroot"):
            outcome, detail = kind, rest.strip()
    return Verified(release, outcome, detail, files)


def decode(encoded: str) -> str:
    """A base64 text the scripts print, as text ('' when it is not base64)."""
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None
