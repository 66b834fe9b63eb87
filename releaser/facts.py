"""A server's facts for the pre-release checks, read in one round trip: the script and the parser of its output.

Like a pyinfra fact, the command and its `parse` live together. One `sh` run per server reports its clock (at
the start and at the end, so the time the script itself took is not counted as network), its slots, the
release under check (its sums, manifest and data records), free disk and the release's size, the lock, each
configuration file config-parity compares, the latest rehearsal, and, when asked, `sha256sum -c` of the staged
and of the live release. The checks in releaser.checks judge these facts; none of them asks the server again.
A passing sums check leaves a stamp (the one remote.RELEASE_FILES's sums_fresh reads) that lets the prepare of
the same command skip reading every file again when nothing in the release changed since; the script itself
reuses a stamp of the last 15 minutes the same way (`intact since T`: the find that looks for unlisted files
also reads every inode change time), so two checks in a row, or a check after a stage, read the files once.

It runs on every server before every go-live, all of them at once on the day, so it starts few processes:
`stat -f` (free space), one `tar | base64` that carries every file's text and the two clock files' times,
one `sha256sum` per release to verify, one `mv` for their stamps and one `rm` so that nothing of the run stays
behind (its clock files and the directory its stamps were made in). The slots are read with the shell's
own `cd -P`, the lock and the release's recorded size with `read`; `date` and `du` run only where those
cannot answer (a file system that is not local, a release measured for the first time).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import PurePosixPath

from releaser import remote
from releaser.bundle import validate_release_id
from releaser.journal import parse_lines

FILES = (".releaser-sha256sums", "manifest.json", ".releaser-datasets.json")
REHEARSAL_FILE = ".releaser/rehearsal.json"
CLOCK_FILES = (".releaser/clock-start", ".releaser/clock-end")

# Prefixed with remote.UNLISTED only, not all of remote.RELEASE_FILES: it writes its stamps itself (verify_one),
# in the form sums_fresh reads.
_SCRIPT = remote.UNLISTED + r"""
cd "$1" 2>/dev/null || { echo noroot; now=$(date +%s.%N); printf 'clock %s\nclock-end %s\n' "$now" "$now"; exit 0; }
root=$PWD; release=$2; verify=$3; rehearsal=$4; shift 4
# a run whose connection broke before its end left its stamps' directory: gone once its process is
for d in .releaser/verifying-*; do [ -d "$d" ] || continue; kill -0 "${d##*-}" 2>/dev/null || rm -rf -- "$d" 2>/dev/null; done
fs=$(stat -f -c '%a*%S %T' . 2>/dev/null)
printf 'df %s\n' "${fs%% *}"
# The clock: the modification times of two files written here, at the start and at the end, which the tar
# below carries to the nanosecond, in place of two `date`s; only where the kernel here stamps them (a local
# file system: NFS's times are its server's), else `date`. The kernel stamps file times from a clock that
# moves by its tick (1-10 ms): ample for a skew limit counted in tenths of a second.
clock=date; clock_at=
case ${fs#* } in
  ext2/ext3|xfs|btrfs|tmpfs|overlayfs|zfs|f2fs|jfs|reiserfs)
    # a full disk may create the file and refuse its bytes: then `date`, and nothing of it stays behind
    if { [ -d .releaser ] || mkdir .releaser; } 2>/dev/null; then
      if { printf '%s\n' "$$" > .releaser/clock-start; } 2>/dev/null; then clock=files; clock_at=.releaser/clock-start
      else rm -f .releaser/clock-start 2>/dev/null; fi
    fi ;;
esac
[ "$clock" = files ] || printf 'clock %s\n' "$(date +%s.%N)"
# The slots, with the shell's own `cd -P` (no process); a link that leads nowhere is read with `readlink`.
releases_at=
if cd -P ./releases 2>/dev/null; then releases_at=$PWD; cd "$root" || exit 3; fi
live_release=
for slot in live backup staging; do
  [ -L "$slot" ] || continue
  if cd -P "./$slot" 2>/dev/null; then
    at=$PWD; cd "$root" || exit 3
    if [ -n "$releases_at" ]; then case $at in "$releases_at"/*) at=releases/${at#"$releases_at"/} ;; esac; fi
  else
    at=$(readlink "$slot")
  fi
  printf 'slot %s %s\n' "$slot" "$at"
  case $slot in live) live_release=${at#releases/} ;; staging) [ -n "$release" ] || release=${at#releases/} ;; esac
done
if [ -d .releaser/lock ]; then held=; IFS= read -r held 2>/dev/null < .releaser/lock/info.json; printf 'lock %s\n' "$held"; fi
if [ -n "$release" ]; then
  printf 'release %s\n' "$release"
  if [ -d "releases/$release" ]; then
    set -- "$@" "releases/$release/.releaser-sha256sums" "releases/$release/manifest.json" "releases/$release/.releaser-datasets.json"
    # a release never changes once unpacked: its size is measured once (at unpack, or here the first time)
    size=; { read -r size _ < ".releaser/size-$release"; } 2>/dev/null
    case $size in
      ''|*[!0-9]*) size=$(du -sk "releases/$release" 2>/dev/null) \
        && { printf '%s\n' "$size" > ".releaser/size-$release"; } 2>/dev/null; size=${size%%[!0-9]*} ;;
    esac
    printf 'size %s\n' "$size"
  else
    echo missing
  fi
fi
# the live release's file count: unlisted's awk counts its sums lines; else (no clock file) its sums file comes back
case $verify in *live*) [ -n "$clock_at" ] || [ -z "$live_release" ] || [ "$live_release" = "$release" ] \
  || set -- "$@" "releases/$live_release/.releaser-sha256sums" ;; esac
journal_parts=
if [ "$rehearsal" = yes ]; then
  if [ -f .releaser/rehearsal.json ]; then
    set -- "$@" .releaser/rehearsal.json
  else  # written before rehearsal summaries existed: every journal part's rehearsal lines instead
    n=1; while [ -e ".releaser/journal.jsonl.$n" ]; do journal_parts="$journal_parts .releaser/journal.jsonl.$n"; n=$((n + 1)); done
    [ -e .releaser/journal.jsonl ] && journal_parts="$journal_parts .releaser/journal.jsonl"
  fi
fi
passed=  # stamps of the releases whose files verified, put in place by one `mv` at the end
picked_from_extras() {  # $1: a line's beginning; sets $picked to the rest of $extras' line that begins so (no process)
  picked="
$extras"
  case $picked in *"
$1"*) picked=${picked#*"
$1"}; picked=${picked%%"
"*} ;; *) picked=; return 1 ;; esac
}
verify_one() {  # $1: staged | live, $2: the release id; sets $outcome to the fact's line after "$1 "
  if [ ! -d "releases/$2" ]; then outcome=missing
  elif [ ! -f "releases/$2/.releaser-sha256sums" ]; then outcome=nosums
  elif picked_from_extras "fresh releases/$2 "; then
    outcome="intact since $picked"  # checked in the last 15 minutes, and nothing in it changed since: not read again
  else
    stamp=.releaser/verifying-$$/verified-$2  # this run's own: another run at once cannot date it later
    { [ -d .releaser/verifying-$$ ] || mkdir -p .releaser/verifying-$$; } 2>/dev/null && { : > "$stamp"; } 2>/dev/null || stamp=
    picked_from_extras "releases/$2 "; extra=$picked  # a file its sums do not list (found for both releases at once)
    if sums_out=$(cd "releases/$2" && sha256sum --check --quiet --strict .releaser-sha256sums 2>&1) \
        && [ -z "$extra" ]; then
      outcome=intact; [ -z "$stamp" ] || passed="$passed $stamp"
    else
      [ -z "$extra" ] || sums_out="$extra: not in its checksums (added on this server after it was staged)"
      rm -f "$stamp" ".releaser/verified-$2"
      outcome="corrupt $(printf '%s\n' "$sums_out" | head -n 3 | tr '\n' ' ')"
    fi
  fi
  printf '%s release %s\n%s %s\n' "$1" "$2" "$1" "$outcome"
  if picked_from_extras "count releases/$2 "; then printf '%s files %s\n' "$1" "$picked"; fi
}
# the files the sums do not list, in every release about to be verified: one find and one awk for both
to_verify=
case $verify in *staged*) [ -z "$release" ] || to_verify="releases/$release" ;; esac
case $verify in *live*) [ -z "$live_release" ] || [ "$live_release" = "$release" ] || to_verify="$to_verify releases/$live_release" ;; esac
# and which of them a check read lately and nothing changed since (their stamps aged by this run's clock file)
extras=; [ -z "$to_verify" ] || extras=$(unlisted ${clock_at:+-f "$clock_at"} $to_verify)
staged_outcome=
if [ -n "$release" ] && [ -d "releases/$release" ]; then
  case $verify in *staged*) verify_one staged "$release"; staged_outcome=$outcome ;; esac
fi
case $verify in *live*)
  if [ -z "$live_release" ]; then echo 'live noslot'
  elif [ -n "$staged_outcome" ] && [ "$live_release" = "$release" ]; then printf 'live release %s\nlive %s\n' "$release" "$staged_outcome"
  else verify_one live "$live_release"; fi ;;
esac
[ -z "$passed" ] || mv -f $passed .releaser/ 2>/dev/null
if [ "$clock" = files ] && { printf '%s\n' "$$" > .releaser/clock-end; } 2>/dev/null; then
  set -- "$@" .releaser/clock-start .releaser/clock-end
fi
for f do shift; if [ -f "$f" ]; then set -- "$@" "$f"; fi; done
if [ $# -gt 0 ]; then printf 'tar '; tar --format=posix -b 1 -chf - -- "$@" 2>/dev/null | base64 -w0; echo; fi
if [ -n "$journal_parts" ]; then
  echo rehearsals; grep -h '"rehearse"' $journal_parts 2>/dev/null; echo rehearsals-end
fi
if [ "$clock" = files ]; then  # another run on this server at the same moment rewrote them: `date` after all
  a=; b=; { read -r a < .releaser/clock-start; read -r b < .releaser/clock-end; } 2>/dev/null
  if [ "$a" = "$$" ] && [ "$b" = "$$" ]; then printf 'clock-files %s\n' "$$"
  else now=$(date +%s.%N); printf 'clock %s\nclock-end %s\n' "$now" "$now"; fi
  # nothing of this run stays behind: the clock files (a run at the same moment then takes `date`) and the
  # directory its stamps were made in
  rm -rf -- ".releaser/verifying-$$" .releaser/clock-start .releaser/clock-end 2>/dev/null
else
  printf 'clock-end %s\n' "$(date +%s.%N)"
  [ ! -d ".releaser/verifying-$$" ] || rm -rf -- ".releaser/verifying-$$" 2>/dev/null
fi
exit 0
"""


@dataclass(frozen=True)
class Verified:
    """What `sha256sum -c` said of a release on one server: intact, corrupt (with the first lines), nosums, missing."""

    release: str | None
    outcome: str  # "intact", "corrupt", "nosums", "missing", "noslot", "noroot"
    detail: str = ""
    files: int | None = None
    read_at: float | None = None  # intact by an earlier check's reading at this server time, nothing changed since

    def read_note(self) -> str:
        """'' when the files were read just now; else when an earlier check read them (the server's clock, UTC),
        so a PASS never says they were read when they were not."""
        if self.read_at is None:
            return ""
        return f"checked at {datetime.fromtimestamp(self.read_at, timezone.utc):%H:%M:%S} UTC, unchanged since"


@dataclass(frozen=True)
class ServerFacts:
    """Everything the checks read from one server, as one record.

    `lock` is the lock's info.json line ('' when unreadable) and `locked` whether a lock directory exists;
    `clock` is the server's time when the script started and `clock_spent` how long the script ran there.
    `config` holds each requested configuration file's text (None: not there), in the order asked, and
    `rehearsals` the rehearsal events the server holds (its summary's one line, or its journal's lines).
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
    rehearsals: tuple[dict, ...] = ()


def facts_argv(root: PurePosixPath, release_id: str | None, *, verify: Sequence[str] = (),
               config: Sequence[str] = (), rehearsal: bool = False) -> list[str]:
    """One server's facts in one round trip; `verify` names the releases to sha256sum ("staged", "live").

    `config` are file paths relative to the app root (config-parity's, in the staged and the live release);
    `rehearsal` adds the server's latest rehearsal (its summary file, else its journal's rehearsal lines).
    """
    unknown = set(verify) - {"staged", "live"}
    if unknown:
        raise ValueError(f"cannot verify {sorted(unknown)}")
    return ["sh", "-c", _SCRIPT, "releaser-facts", str(root), validate_release_id(release_id) if release_id else "",
            " ".join(verify), "yes" if rehearsal else "", *config]


def parse_facts(text: str, config: Sequence[str] = ()) -> ServerFacts:
    """Read the facts script's output into one record (pure); `config` are the paths facts_argv was given."""
    slots: dict[str, str] = {}
    files: dict[str, str] = {}
    verified: dict[str, list[str]] = {"staged": [], "live": []}
    values: dict[str, object] = {}
    clock = clock_end = None
    noroot = missing = False
    journal_lines: list[str] | None = None
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if journal_lines is not None and line != "rehearsals-end":
            journal_lines.append(line)  # a journal's rehearsal line, as the server holds it
        elif kind == "rehearsals":
            journal_lines = []
        elif kind == "rehearsals-end":
            values["journal"], journal_lines = journal_lines or [], None
        elif kind == "clock-files":
            values["clock_token"] = rest.strip()
        elif kind == "clock":
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
            values["texts"], values["times"] = _untar(rest)
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
    if clock is None and values.get("clock_token"):
        clock, clock_end = _file_clock(texts, values.get("times", {}), str(values["clock_token"]))
    if release:
        files.update({name: texts[f"releases/{release}/{name}"] for name in FILES if f"releases/{release}/{name}" in texts})
    sums = files.get(FILES[0], "")
    return ServerFacts(
        noroot=noroot, slots=slots, release=release, on_disk=release is not None and not missing, files=files,
        free_kib=values.get("free_kib"), release_kib=values.get("release_kib"), locked=bool(values.get("locked")),
        lock=str(values.get("lock", "")), clock=clock,
        clock_spent=(clock_end - clock) if clock is not None and clock_end is not None else 0.0,
        config=tuple(texts.get(path) for path in config),
        rehearsals=tuple(parse_lines(texts[REHEARSAL_FILE]) if REHEARSAL_FILE in texts
                         else parse_lines("\n".join(values.get("journal", [])))),
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


def _file_clock(texts: Mapping[str, str], times: Mapping[str, float], token: str) -> tuple[float | None, float | None]:
    """The server's clock at the script's start and end: the times of the two clock files this very run wrote."""
    if any(texts.get(name, "").strip() != token or name not in times for name in CLOCK_FILES):
        return None, None
    return times[CLOCK_FILES[0]], times[CLOCK_FILES[1]]


def _untar(encoded: str) -> tuple[dict[str, str], dict[str, float]]:
    """The files of the script's base64 tar, by the path it was given: their text, and their modification times.

    The tar is GNU tar's pax form (--format=posix), whose extended headers keep the times to the nanosecond
    (the ustar header holds whole seconds). Read here block by block rather than with tarfile, which costs
    ten times as much: every server's facts are parsed at once while the other servers' answers arrive.
    Anything that is not such a tar gives nothing, as a file that was not sent.
    """
    try:
        data = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return {}, {}
    texts: dict[str, str] = {}
    times: dict[str, float] = {}
    extended: dict[str, str] = {}
    at = 0
    while at + _BLOCK <= len(data):
        header = data[at:at + _BLOCK]
        if header == _EMPTY_BLOCK:
            break
        try:
            size, kind = _octal(header[124:136]), header[156:157]
        except ValueError:
            return {}, {}
        size = int(extended.get("size", size)) if kind not in (b"x", b"g") else size
        body = data[at + _BLOCK:at + _BLOCK + size]
        if len(body) < size or header[257:262] != b"ustar":
            return {}, {}
        at += _BLOCK + -(-size // _BLOCK) * _BLOCK
        if kind == b"x":
            extended = _pax_records(body)
            continue
        if kind in (b"0", b"\0", b"7"):
            name = extended.get("path") or _ustar_name(header)
            texts[name] = body.decode("utf-8", errors="replace")
            times[name] = float(extended.get("mtime", _octal(header[136:148])))
        extended = {}
    return texts, times


_BLOCK = 512
_EMPTY_BLOCK = bytes(_BLOCK)


def _octal(field: bytes) -> int:
    """A ustar number field: octal digits ended by NUL or space (ValueError when it is not one)."""
    digits = field.split(b"\0", 1)[0].strip()
    return int(digits, 8) if digits else 0


def _ustar_name(header: bytes) -> str:
    name = header[0:100].split(b"\0", 1)[0].decode("utf-8", errors="replace")
    prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8", errors="replace")
    return f"{prefix}/{name}" if prefix else name


def _pax_records(body: bytes) -> dict[str, str]:
    """A pax extended header's "LENGTH key=value\\n" records (the lengths count the whole record, in bytes)."""
    records: dict[str, str] = {}
    at = 0
    while at < len(body):
        space = body.find(b" ", at)
        if space < 0 or not body[at:space].isdigit():
            break
        length = int(body[at:space])
        if length <= space - at:
            break
        key, _, value = body[space + 1:at + length - 1].partition(b"=")
        records[key.decode("utf-8", errors="replace")] = value.decode("utf-8", errors="replace")
        at += length
    return records


def parse_verified(text: str) -> Verified:
    """Read one release's verification lines (release, files, then intact / corrupt / nosums / missing / noslot)."""
    release, outcome, detail, files, read_at = None, "missing", "", None, None
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "release":
            release = rest.strip()
        elif kind == "files" and rest.strip().isdigit():
            files = int(rest)
        elif kind == "intact" and rest.startswith("since "):
            outcome, detail, read_at = kind, "", _number(rest.removeprefix("since "))
        elif kind in ("intact", "corrupt", "nosums", "missing", "noslot", "noroot"):
            outcome, detail = kind, rest.strip()
    return Verified(release, outcome, detail, files, read_at)


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
