"""The commands releaser runs on a server, as argv lists. Pure: builds argv, runs nothing.

Every script below is constant text run by `sh -c SCRIPT NAME ARG...`: release ids, paths, lock owners and
journal lines reach it only as positional arguments ("$1", "$2", ...), so nothing a user types is ever
parsed by a shell. A slot moves by creating the new link under a temporary name and renaming it over the
old one with `mv -T`: a reader always finds a link, never a gap (`rm` then `ln` would leave one).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath

from releaser.arming import GO_LINE_PY, python_first
from releaser.bundle import validate_release_id
from releaser.slots import SLOTS, LinkChange

# Slots, releases with their age, lock and notice; few processes, as it runs on every server before each change.
_SLOTS = r"""
cd "$1" 2>/dev/null || { echo "noroot"; exit 0; }
found=$(find . -mindepth 1 -maxdepth 2 \( -type l \( -path ./live -o -path ./backup -o -path ./staging \) -printf 'slot %f %l\n' \) \
  -o \( -type d -path './releases/*' -printf 'release %T@ %f\n' \))
printf '%s\n' "$found"
# a lock directory without (readable) info.json is still a lock: held by an unknown owner, never free
if [ -d .releaser/lock ]; then held=; IFS= read -r held 2>/dev/null < .releaser/lock/info.json; printf 'lock %s\n' "$held"; fi
if [ -f .releaser/notice.txt ]; then echo notice; fi
"""

_STATUS = _SLOTS + r"""
printf 'df %s\n' "$(stat -f -c '%a*%S' .)"
"""

# Shared by stage and prepare, run in the app root.
# write_marker DIR ID: the release marker (releaser.identity) in DIR's public root, unless it is already right.
# check_sums ID: sha256sum -c of every file of releases/ID; when it passes, .releaser/verified-ID says so. The
#   stamp's time is taken before the files are read, so a change made while they were read is newer than it.
#   The stamp says "every file matched its sums at this time" (stamp_begin dates it, stamp_end puts it in
#   place or removes it); the streamed unpack (_RECEIVE) writes one too,
#   right after its rename: its files came from an archive whose sha256 it checked, whose every member
#   read_bundle had checked against the manifest, so reading them again at once would learn nothing.
# sums_fresh ID...: a stamp of the last 15 minutes for each, and no inode in the release (its sums file too) changed after
#   it (every write, chmod, new, removed or renamed file updates an inode change time, which no user can set
#   back): the files are as they were checked, and prepare need not read them again in the same command.
# unlisted DIR...: for each DIR, the first plain file in it that its .releaser-sha256sums does not list, or anything
#   there that is neither a plain file nor a directory (a symbolic link added on the server), as a line
#   "DIR FILE" (sha256sum -c reads only the files listed, so a file added on the server after staging would go
#   live unseen). Releaser's own files there and the byte-code caches a running Python application writes beside
#   its modules are left out; a DIR without a readable sums file is not judged. One find and one awk for every
#   DIR at once (the facts script asks for the staged and the live release together). DIRs are releases/ID: no
#   space. Names in a bundle hold no backslash or newline (bundle.SAFE_FILE_NAME), so each sums line is 64 hex,
#   two spaces, the name.
#   `unlisted -f NOW DIR...` (the facts script) also prints "fresh DIR STAMP" for each DIR whose stamp
#   (.releaser/verified-ID) is at most 15 minutes older than the file NOW and older than every inode change in
#   DIR (strictly: a change in the stamp's own clock tick counts as after it), and that holds nothing unlisted:
#   its files are as the check dated STAMP read them, without reading them again; and "count DIR N", the number
#   of files its sums list (the check's file count, without carrying the sums file back). Same find, same awk.
UNLISTED = r"""
unlisted() {
  now_file=; if [ "$1" = -f ]; then now_file=$2; shift 2; fi
  [ $# -gt 0 ] || return 0
  dirs=$*
  if [ -n "$now_file" ]; then  # their stamps and the clock they are aged by, as more start points of the same find
    set -- "$@" "$now_file"
    for d in $dirs; do [ ! -f ".releaser/verified-${d#releases/}" ] || set -- "$@" ".releaser/verified-${d#releases/}"; done
  fi
  find "$@" ! -path '*/__pycache__/*' ! -name __pycache__ -printf '%y %T@ %C@ %p\n' 2>/dev/null | awk -v dirs="$dirs" -v now_file="$now_file" '
    BEGIN {
      n = split(dirs, dir, " ")
      for (i = 1; i <= n; i++) {
        sums = dir[i] "/.releaser-sha256sums"
        while ((got = (getline line < sums)) > 0) { listed[dir[i] "/" substr(line, 67)] = 1; lines[i]++ }
        judged[i] = (got == 0)  # 0 at the end of a file read; -1 when there was none to read
        own[dir[i] "/.releaser-sha256sums"] = own[dir[i] "/manifest.json"] = own[dir[i] "/.releaser-datasets.json"] = 1
        own[dir[i] "/public/.releaser/release.json"] = 1
      }
    }
    {
      kind = $1; path = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", path)
      if (now_file != "") {
        if (path == now_file) { now = $2 + 0; next }
        if (index(path, ".releaser/verified-") == 1) { stamp[substr(path, 20)] = $2; next }
        for (i = 1; i <= n; i++)
          if ((path == dir[i] || index(path, dir[i] "/") == 1) && (!(i in newest) || $3 + 0 > newest[i])) newest[i] = $3 + 0
      }
      if (kind == "d") next
      # a symbolic link (or a device, a FIFO...) is never a release file, listed name or not: sha256sum -c
      # follows a link, so one to a file with the same bytes would pass, and one to /etc/passwd serve it
      if (kind == "f" && ((path in listed) || (path in own))) next
      what = kind == "f" ? "" : kind == "l" ? " (a symbolic link)" : " (not a plain file)"
      for (i = 1; i <= n; i++)
        if (judged[i] && !(i in said) && index(path, dir[i] "/") == 1) { print dir[i], substr(path, length(dir[i]) + 2) what; said[i] = 1 }
    }
    END {
      if (now_file == "") exit
      for (i = 1; i <= n; i++) if (judged[i]) print "count", dir[i], lines[i] + 0
      if (now == 0) exit
      for (i = 1; i <= n; i++) {
        id = substr(dir[i], 10)
        if (judged[i] && !(i in said) && (id in stamp) && (i in newest) && newest[i] < stamp[id] + 0 \
            && stamp[id] + 0 <= now && now - stamp[id] <= 900) print "fresh", dir[i], stamp[id]
      }
    }'
}
"""

RELEASE_FILES = UNLISTED + r"""
write_marker() {
  [ -f "$1/.releaser-sha256sums" ] || return 0
  want="{\"release_id\": \"$2\", \"sums_sha256\": \"$(sha256sum < "$1/.releaser-sha256sums" | cut -d' ' -f1)\"}"
  [ "$(cat "$1/public/.releaser/release.json" 2>/dev/null)" = "$want" ] && return 0
  mkdir -p "$1/public/.releaser" && printf '%s\n' "$want" > "$1/public/.releaser/release.json.tmp" \
    && mv -f "$1/public/.releaser/release.json.tmp" "$1/public/.releaser/release.json"
}
only_listed() {
  # only_listed DIR: DIR holds directories, its manifest.json, its .releaser-sha256sums and exactly the files that
  # lists, nothing else; else prints the first entry that differs. The client checked every member as Python's
  # tarfile reads it; a header tar reads otherwise (GNU tar ignores a ustar prefix under the old GNU magic) could
  # still put a file nobody reviewed into the release, so the server checks what tar really made.
  ( cd "$1" || exit 1
    odd=$(find . ! -type f ! -type d -print 2>/dev/null | head -n 1)
    [ -z "$odd" ] || { printf '%s is not a plain file or a directory\n' "${odd#./}"; exit 1; }
    listed=$(sed 's/^[0-9a-f]\{64\}  //' .releaser-sha256sums | LC_ALL=C sort)
    found=$(find . -type f ! -path ./.releaser-sha256sums ! -path ./manifest.json | sed 's|^\./||' | LC_ALL=C sort)
    [ "$listed" = "$found" ] && exit 0
    extra=$(printf '%s\n' "$found" | grep -vxF -e "$listed" | head -n 1)
    [ -z "$extra" ] || { printf '%s is in the archive but not in the manifest\n' "$extra"; exit 1; }
    printf '%s is in the manifest but not in the archive\n' "$(printf '%s\n' "$listed" | grep -vxF -e "$found" | head -n 1)"
    exit 1 )
}
stamp_begin() {
  # stamp_begin ID: date the stamp now, by a file of this run's own ($$): another run cannot date it later
  stamp=.releaser/verified-$1
  { [ -d .releaser ] || mkdir .releaser; } 2>/dev/null && : > "$stamp.tmp-$$" 2>/dev/null || stamp=
}
stamp_end() {
  # stamp_end STATUS: status 0 puts the stamp stamp_begin dated in place; any other removes it and any older one
  [ -n "$stamp" ] || return 0
  if [ "$1" = 0 ]; then mv -f "$stamp.tmp-$$" "$stamp" || rm -f "$stamp.tmp-$$"; else rm -f "$stamp.tmp-$$" "$stamp"; fi
}
check_sums() {
  # sets $sums_why: what failed, for the caller's message
  stamp_begin "$1"
  sums_out=$(cd "releases/$1" && sha256sum --check --quiet --strict .releaser-sha256sums 2>&1); sums_rc=$?
  sums_why=
  if [ "$sums_rc" = 0 ]; then
    extra=$(unlisted "releases/$1")
    [ -z "$extra" ] || { sums_rc=1; sums_why="it holds ${extra#* }, which its checksums do not list"; }
  fi
  stamp_end "$sums_rc"
  return $sums_rc
}
sums_fresh() {
  # sums_fresh ID...: one find for every release named: a stamp older than 15 minutes, or anything in a
  # release changed after its own stamp, is printed (a find that fails, or is missing, is never "fresh":
  # the files are then read again). A stamp is left out of -cnewer: moving it into place changed its inode
  # after its time was set. Start points first, then one term per release, so "$@" is built in two passes.
  n=$#
  for r in "$@"; do [ -f ".releaser/verified-$r" ] || return 1; set -- "$@" ".releaser/verified-$r" "releases/$r"; done
  set -- "$@" "("; i=0
  for r in "$@"; do
    i=$((i + 1)); [ "$i" -le "$n" ] || break
    [ "$i" = 1 ] || set -- "$@" -o
    set -- "$@" -path ".releaser/verified-$r" "(" -mmin +15 -print -quit -o -true ")" \
      -o "(" -path "releases/$r" -o -path "releases/$r/*" ")" -cnewer ".releaser/verified-$r" -print -quit
  done
  shift "$n"
  seen=$(find "$@" ")" 2>/dev/null) || return 1
  [ -z "$seen" ]
}
pairs_fresh() {
  # pairs_fresh SLOT=ID...: sums_fresh of every release the pairs name ("-" names none)
  n=$#
  for pair in "$@"; do r=${pair#*=}; [ "$r" = - ] || set -- "$@" "$r"; done
  shift "$n"
  [ $# -gt 0 ] && sums_fresh "$@"
}
"""

# Shared by prepare and by the lock's early prepare: run in the app root with $root set to it.
_PREPARE_LINKS = RELEASE_FILES + r"""
prepare_links() {
  mode=$1; shift
  [ -w . ] || { echo "app root $PWD is not writable" >&2; return 3; }
  [ -d .releaser ] || mkdir .releaser || return 3
  fresh=no  # every release checked lately and unchanged since: one find, instead of one per release
  if [ "$mode" = verify ] && pairs_fresh "$@"; then fresh=yes; fi
  for pair in "$@"; do
    slot=${pair%%=*}; release=${pair#*=}
    [ "$release" = "-" ] && continue
    [ -d "releases/$release" ] || { echo "release $release is not on this server" >&2; return 3; }
    if [ "$mode" = verify ]; then
      [ "$fresh" = yes ] || sums_fresh "$release" || check_sums "$release" >/dev/null 2>&1 \
        || { echo "release $release fails its checksums on this server${sums_why:+ ($sums_why)}" >&2; return 4; }
      # unpack and check-release wrote the marker; only a release staged before markers existed lacks one
      [ -f "releases/$release/public/.releaser/release.json" ] || write_marker "releases/$release" "$release" \
        || { echo "cannot write the release marker in releases/$release/public/.releaser on this server" >&2; return 3; }
    fi
    ln -sfn "releases/$release" ".releaser/next-$slot" || return 3
  done
  [ ! -L .releaser/next-live ] || tick_past .releaser/next-live
}
# tick_past FILE: return once the file system's clock has moved past FILE's time. Its timestamps move in ticks
# (1-10 ms), and the commit's check is "changed after .releaser/next-live" (strictly newer): a change made in the
# same tick as the link compared equal and went live unseen (QA: 2 of 6 changes made 1-3 ms after prepare).
tick_past() {
  i=0
  while [ "$i" -lt 100 ]; do
    { : > ".releaser/tick-$$"; } 2>/dev/null || return 0
    [ -z "$(find ".releaser/tick-$$" -newer "$1" 2>/dev/null)" ] || break
    i=$((i + 1))
  done
  rm -f ".releaser/tick-$$"
}
"""


_PREPARE = _PREPARE_LINKS + r"""
cd "$1" || exit 3
root=$PWD; verify=$2; shift 2
prepare_links "$verify" "$@"
"""

# slots_kept "SLOT...": after the slots to remove were removed (find -delete) and before any rename: did each go?
# When none did (an immutable or read-only app root), nothing changed here: exit status 4, refused, so the fleet
# knows this server is as it was and only aborts it. When some went and others did not: 1, it may have changed.
_SLOTS_KEPT = r"""
slots_kept() {
  kept= gone=
  for slot in $1; do
    if [ -e "$slot" ] || [ -L "$slot" ]; then kept="$kept $slot"; else gone="$gone $slot"; fi
  done
  [ -z "$kept" ] && return 0
  if [ -z "$gone" ]; then echo "cannot remove$kept (is the app root read-only or immutable?); nothing was switched here" >&2; return 4; fi
  echo "cannot remove$kept (removed$gone); nothing was renamed here" >&2; return 1
}
"""

# Before any rename: was anything in the release going live changed after prepare verified it and made
# .releaser/next-live? Every write, chmod, new, removed or renamed file updates an inode change time (of the
# file, or of its directory), which no user can set back, unlike the mtime; one `find` over the directory
# entries (no file is read) answers, and stops at the first. A clock stepped back between prepare and commit
# could hide a change; prepare's sha256 check of every file still stands before it.
_RENAMES = _SLOTS_KEPT + r"""
removes=
for pair in "$@"; do
  case $pair in
    *=-) removes="$removes ${pair%%=*}" ;;
    *) [ -L ".releaser/next-${pair%%=*}" ] || { echo "the prepared link .releaser/next-${pair%%=*} is gone (removed since prepare); nothing was switched here" >&2; exit 4; } ;;
  esac
done
if [ -n "$unchanged" ]; then  # one find: the check, then (only once it passed) the slots to remove
  seen=$(find "releases/$unchanged" $removes \( \( -path live -o -path backup -o -path staging \) \( -delete -o -true \) \) \
    -o \( -cnewer .releaser/next-live -print -quit \) 2>/dev/null) || true
  if [ -n "$seen" ]; then
    echo "release $unchanged changed on this server after it was prepared (its files differ); nothing was switched here" >&2
    exit 4
  fi
  slots_kept "$removes" || exit $?
fi
for pair in "$@"; do
  slot=${pair%%=*}; release=${pair#*=}
  if [ "$release" = "-" ]; then [ -z "$unchanged" ] && rm -f "$slot"; else mv -T ".releaser/next-$slot" "$slot"; fi
  [ "$slot" = live ] && date +%s.%N
done
exit 0
"""
_COMMIT = r"""
set -e
cd "$1"; unchanged=$2; shift 2
""" + _RENAMES

# The commit armed before T, for a scheduled go-live. Everything that costs a process is paid while arming: the
# channel, the shell, hard links of the prepared links named as the slots (so one `mv` renames them all, in
# order), the clock (`date -f -` on a FIFO: it prints the time when told "now", after the rename) and one
# `find` over three kinds of start point: .releaser/next-live runs the gate (`timeout BOUND sh -c read`, which
# prints "armed" and blocks on the line "go" from stdin); the release going live is checked for changes since
# prepare (as _RENAMES does: the first one found stops it, exit 4, nothing renamed or removed); the slots to
# remove are removed (-delete, only once the check has passed). At T no process starts before the check and
# one, `mv`, before the rename. End of file before "go" (the client closed the channel, or its connection
# dropped) and the bound passing (timeout ends the gate: dash's `read` has no timeout) both end the gate
# without "go": exit 8, nothing renamed or removed, so a client lost before T never commits late. The empty
# .releaser/armed-PID directory is removed by the next finish, abort, restore or lock.
#
# Where the server has python3, the same commit runs in one python3 process started while arming (with the same
# marks, messages, exit codes and leftovers): at T it reads the go line, walks the release for a change time
# newer than .releaser/next-live's modification time (find's -cnewer), removes the slots to remove, renames
# and prints the time, all without starting a process. The sh way starts three at T (the gate ends, find
# resumes, mv), which on a busy server is most of the time from T to the rename. No single quote inside it.
_ARMED_COMMIT_PY = GO_LINE_PY + r"""
import stat
def leave(armed, message, code):
    for name in os.listdir(armed):
        os.unlink(os.path.join(armed, name))
    os.rmdir(armed)
    if message:
        sys.stderr.write(message + "\n")
    sys.exit(code)
def changed_since(reference, top):
    pending = [top]
    while pending:
        path = pending.pop()
        try:
            info = os.lstat(path)
        except OSError:  # gone since prepare (where find in the sh way skips what it cannot read): a change
            return True
        if info.st_ctime_ns > reference:
            return True
        if stat.S_ISDIR(info.st_mode):
            try:
                pending.extend(entry.path for entry in os.scandir(path))
            except OSError:
                pass
    return False
try:
    os.chdir(sys.argv[1])
except OSError:
    sys.exit(3)
unchanged, bound = sys.argv[2], float(sys.argv[3])
pairs = [pair.split("=", 1) for pair in sys.argv[4:]]
armed = ".releaser/armed-%d" % os.getpid()
try:
    os.mkdir(armed)
except OSError:
    sys.exit(3)
moves = [slot for slot, release in pairs if release != "-"]
removes = [slot for slot, release in pairs if release == "-"]
try:
    for slot in moves:
        os.link(".releaser/next-" + slot, os.path.join(armed, slot), follow_symlinks=False)
    reference = os.lstat(".releaser/next-live").st_mtime_ns
except OSError:
    leave(armed, "", 3)
deadline = time.monotonic() + bound
sys.stdout.write("armed\n")
sys.stdout.flush()
if not go_line(deadline):
    leave(armed, "no go line came (the connection closed, or %s s passed); nothing was switched here" % sys.argv[3], 8)
if changed_since(reference, "releases/" + unchanged):
    leave(armed, "release %s changed on this server after it was prepared (its files differ); nothing was switched "
          "here" % unchanged, 4)
kept, gone = [], []
for slot in removes:
    try:
        os.unlink(slot)
    except OSError:
        pass
    (kept if os.path.lexists(slot) else gone).append(slot)
if kept and not gone:
    leave(armed, "cannot remove %s (is the app root read-only or immutable?); nothing was switched here" % " ".join(kept), 4)
if kept:
    leave(armed, "cannot remove %s (removed %s); nothing was renamed here" % (" ".join(kept), " ".join(gone)), 1)
failed = False
for slot in moves:
    try:
        os.rename(os.path.join(armed, slot), slot)
    except OSError as error:
        sys.stderr.write("mv: cannot move %s to %s: %s\n" % (os.path.join(armed, slot), slot, error.strerror))
        failed = True
if failed:
    sys.exit(1)
if "live" in moves:
    sys.stdout.write("%.6f\n" % time.time())
sys.exit(0)
"""

_ARMED_COMMIT_SH = _SLOTS_KEPT + r"""
cd "$1" || exit 3
unchanged=$2; bound=$3; shift 3
armed=.releaser/armed-$$
mkdir "$armed" || exit 3
moves= removes= live=
for pair in "$@"; do
  slot=${pair%%=*}; release=${pair#*=}
  if [ "$release" = "-" ]; then removes="$removes $slot"; continue; fi
  ln -P ".releaser/next-$slot" "$armed/$slot" || { rm -rf "$armed"; exit 3; }
  moves="$moves $armed/$slot"
  if [ "$slot" = live ]; then live=yes; fi
done
if [ -n "$live" ]; then  # the clock, started now: it prints the time when told "now", after the rename
  mkfifo "$armed/clock" || { rm -rf "$armed"; exit 3; }
  date -f - +%s.%N < "$armed/clock" &
  exec 4> "$armed/clock"
fi
exec 3>&1
seen=$(find .releaser/next-live "releases/$unchanged" $removes \
  \( -path .releaser/next-live \( -exec timeout "$bound" sh -c 'echo armed >&3; IFS= read -r word && [ "$word" = go ]' releaser-gate \; -printf 'go\n' -o -quit \) \) \
  -o \( \( -path live -o -path backup -o -path staging \) \( -delete -o -true \) \) \
  -o \( -cnewer .releaser/next-live -print -quit \) 2>/dev/null)
case $seen in
  go) ;;
  go?*) rm -rf "$armed"
    echo "release $unchanged changed on this server after it was prepared (its files differ); nothing was switched here" >&2
    exit 4 ;;
  *) rm -rf "$armed"; echo "no go line came (the connection closed, or $bound s passed); nothing was switched here" >&2; exit 8 ;;
esac
slots_kept "$removes" || { kept_rc=$?; rm -rf "$armed"; exit $kept_rc; }
mv -f -t . $moves || exit 1
if [ -n "$live" ]; then echo now >&4; exec 4>&-; wait; fi
exit 0
"""

_ARMED_COMMIT = python_first(_ARMED_COMMIT_PY) + _ARMED_COMMIT_SH

_RESTORE = r"""
cd "$1" || exit 3
shift
mkdir -p .releaser
rc=0
for pair in "$@"; do
  slot=${pair%%=*}; release=${pair#*=}
  if [ "$release" = "-" ]; then rm -f "$slot" || rc=1; continue; fi
  rm -f ".releaser/back-$slot"
  { ln -s "releases/$release" ".releaser/back-$slot" && mv -T ".releaser/back-$slot" "$slot"; } \
    || { echo "cannot put $slot back on $release" >&2; rc=1; }
done
rm -f .releaser/next-*
for left in .releaser/armed-*; do if [ -d "$left" ]; then rm -rf .releaser/armed-*; fi; break; done
exit $rc
"""

_REHEARSAL = r"""
set -e
cd "$1"
rm -rf .releaser/rehearsal
if [ "$2" = setup ]; then
  mkdir -p .releaser/rehearsal
  ln -s ../../releases .releaser/rehearsal/releases
  for s in live backup staging; do if [ -L "$s" ]; then cp -P "$s" ".releaser/rehearsal/$s"; fi; done
fi
"""

_ABORT = r"""cd "$1" 2>/dev/null && rm -rf .releaser/next-* .releaser/armed-* .releaser/tick-*; exit 0"""

# The archive is the bundle's .tar.gz as it was built (or a directory packed once); the sums file, the manifest's
# sha256 of every file in `sha256sum -c` format, travels beside it and replaces any the archive holds.
_UNPACK = RELEASE_FILES + r"""
set -e
cd "$1"; release=$2; archive=$3; expected=$4; sums=$5; sums_expected=$6
fail() { rm -rf "$work" "$archive" "$sums"; echo "$1" >&2; exit "$2"; }
work=".releaser/unpack-$release-$$"
actual=$(sha256sum "$archive" | cut -d' ' -f1)
[ "$actual" = "$expected" ] || fail "upload of $release arrived corrupt (sha256 differs)" 4
actual=$(sha256sum < "$sums" | cut -d' ' -f1)
[ "$actual" = "$sums_expected" ] || fail "upload of $release's checksums arrived corrupt (sha256 differs)" 4
mkdir -p releases "$work"
tar --no-same-owner --no-same-permissions -xzf "$archive" -C "$work" || fail "cannot unpack $release (disk full?)" 5
mv -f "$sums" "$work/.releaser-sha256sums" || fail "cannot place $release's checksums (disk full?)" 5
(cd "$work" && sha256sum --check --quiet --strict .releaser-sha256sums >/dev/null 2>&1) \
  || fail "unpacked files of $release do not match their checksums" 4
odd=$(only_listed "$work") || fail "$release is refused: $odd (the server reads the archive otherwise than the client did)" 4
write_marker "$work" "$release" || fail "cannot write the release marker of $release (disk full?)" 5
rm -f "$archive"
if [ -e "releases/$release" ]; then rm -rf "$work"; echo "release $release appeared meanwhile" >&2; exit 6; fi
size=$(du -sk "$work") || size=
# across file systems (releases/ mounted apart) mv copies, and a full disk leaves half a copy: never keep it
mv -T "$work" "releases/$release" || { rm -rf "releases/$release"; fail "cannot move $release into releases/ (disk full? read-only? permissions?)" 5; }
# its size, measured once: the disk check reads it (a release never changes once unpacked)
printf '%s\n' "${size%%[!0-9]*}" > ".releaser/size-$release" 2>/dev/null || rm -f ".releaser/size-$release"
"""

# inflate: stdin's gzip stream (one member or several) to stdout, as `gzip -dc` does. With python3 (zlib, in
# bounded chunks: memory stays flat whatever the archive holds); without it, gzip. A stream that ends early or
# is not gzip exits non-zero; tar then sees its input end early and says so. Only double quotes inside.
INFLATE = r"""
inflate() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c '
import sys, zlib
src, dst = sys.stdin.buffer, sys.stdout.buffer
member, fed = zlib.decompressobj(31), False
while True:
    data = src.read1(1 << 20)
    if not data:
        break
    while data:
        fed = True
        dst.write(member.decompress(data, 1 << 22))
        data = member.unconsumed_tail
        if member.eof:
            data, member, fed = member.unused_data, zlib.decompressobj(31), False
dst.flush()
sys.exit("inflate: the gzip stream ends early" if fed and not member.eof else 0)
' 2>/dev/null
  else
    gzip -dc
  fi
}
"""

# The archive arriving on stdin (SshHost.stream), unpacked as it arrives: `tee` hands every byte to the hasher
# and, through a FIFO, to `tar`; the archive itself is never written. Once tar is done (or failed) the FIFO is
# drained, so the hash always covers the whole stream and a corrupt upload is named as such, not by tar's
# error. Only when the sha256 of what came equals the client's (read_bundle's, taken as it checked every member
# against the manifest) is the release renamed into releases/ and stamped verified (see check_sums); otherwise
# everything is removed. A short stream (Ctrl-C, a lost client) can never match. The hash and tar's verdict come back on stdout, never through a
# file, so a full disk is reported as tar saw it. `openssl dgst` hashes ~7x faster than coreutils where present.
# The gzip stream is inflated by the server's python3 (zlib) where there is one, ~3x faster than `gzip -d`, which
# at ~170 MB/s per core is slower than the network it comes over; else by gzip. See INFLATE.
_RECEIVE = RELEASE_FILES + INFLATE + r"""
cd "$1" || exit 3
release=$2; work=".releaser/unpack-$2-$3"; expected=$4; sums=$5; sums_expected=$6
fail() { rm -rf "$work"; rm -f "$sums"; echo "$1" >&2; exit "$2"; }
[ "$(sha256sum < "$sums" | cut -d' ' -f1)" = "$sums_expected" ] \
  || fail "upload of $release's checksums arrived corrupt (sha256 differs)" 4
mkdir -p releases && mkdir "$work" "$work/release" && mkfifo "$work/fifo" || fail "cannot unpack $release (disk full?)" 5
if command -v openssl >/dev/null 2>&1; then hasher="openssl dgst -sha256 -r"; else hasher=sha256sum; fi
exec 3<&0
out=$(
  tee "$work/fifo" <&3 | $hasher &
  { { inflate | tar --no-same-owner --no-same-permissions -xf - -C "$work/release" 2>&1 >/dev/null || echo "tar failed"; } | grep -v 'Exiting with failure status' | tail -n 2
    cat > /dev/null; } < "$work/fifo"
  wait
)
exec 3<&-
actual= why= failed=
set -f; IFS='
'; set -- $out; unset IFS; set +f
for line do
  case $line in
    "tar failed") failed=yes ;;
    *) hash=${line%% *}
       case $hash in *[!0-9a-f]*) why=$line ;; *) if [ ${#hash} = 64 ]; then actual=$hash; else why=$line; fi ;; esac ;;
  esac
done
[ "$actual" = "$expected" ] || fail "upload of $release arrived corrupt (sha256 differs)" 4
[ -z "$failed" ] || fail "cannot unpack $release: ${why:-tar failed} (disk full?)" 5
mv -f "$sums" "$work/release/.releaser-sha256sums" || fail "cannot place $release's checksums (disk full?)" 5
odd=$(only_listed "$work/release") || fail "$release is refused: $odd (the server reads the archive otherwise than the client did)" 4
write_marker "$work/release" "$release" || fail "cannot write the release marker of $release (disk full?)" 5
if [ -e "releases/$release" ]; then rm -rf "$work"; echo "release $release appeared meanwhile" >&2; exit 6; fi
size=$(du -sk "$work/release") || size=
# across file systems (releases/ mounted apart) mv copies, and a full disk leaves half a copy: never keep it
mv -T "$work/release" "releases/$release" || { rm -rf "releases/$release"; fail "cannot move $release into releases/ (disk full? read-only? permissions?)" 5; }
rm -rf "$work"
printf '%s\n' "${size%%[!0-9]*}" > ".releaser/size-$release" 2>/dev/null || rm -f ".releaser/size-$release"
# stamped after the rename (it changes the release directory's inode): prepare (sums_fresh) need not read them now
{ stamp_begin "$release"; stamp_end 0; } 2>/dev/null
exit 0
"""

_CHECK_RELEASE = RELEASE_FILES + r"""
cd "$1" 2>/dev/null && [ -d "releases/$2" ] || { echo "release $2 is not on this server" >&2; exit 3; }
[ "$(sha256sum < "releases/$2/.releaser-sha256sums" | cut -d' ' -f1)" = "$3" ] || { echo "release $2 on this server has different files from the bundle" >&2; exit 6; }
check_sums "$2" >/dev/null 2>&1 || { echo "release $2 fails its checksums on this server${sums_why:+ ($sums_why)}" >&2; exit 4; }
write_marker "releases/$2" "$2" || { echo "cannot write the release marker of $2 on this server (disk full?)" >&2; exit 5; }
"""

_REMOVE_RELEASE = r"""
cd "$1" || exit 3
for s in live backup staging; do
  if [ "$(readlink "$s" 2>/dev/null)" = "releases/$2" ]; then echo "refusing to remove $2: $s points at it" >&2; exit 3; fi
done
rm -f ".releaser/verified-$2" ".releaser/size-$2"
[ -d "releases/$2" ] || exit 0
mv -T "releases/$2" ".releaser/removing-$2-$$" && rm -rf ".releaser/removing-$2-$$"
"""

# The lock is taken only once info.json reads back whole: on a full disk mkdir may succeed (a directory needs
# no data block on tmpfs and some file systems) while the write fails, and a lock with an empty info.json
# would stay held by nobody forever. Then the directory is removed again and the script fails (exit 5, the
# reason on stderr's last line), as it does when mkdir itself fails without a lock being there (no inodes).
_LOCK = r"""
root_made=
if [ ! -d "$1" ]; then root_made=$1; while [ ! -d "$(dirname "$root_made")" ]; do root_made=$(dirname "$root_made"); done; fi
[ -d "$1/.releaser" ] || mkdir -p "$1/.releaser" || exit 3
lock=$1/.releaser/lock
if made=$(mkdir "$lock" 2>&1); then
  if printf '%s\n' "$2" 2>/dev/null > "$lock/info.json" && IFS= read -r back 2>/dev/null < "$lock/info.json" \
      && [ "$back" = "$2" ]; then
    echo taken; taken=yes
    [ -z "$root_made" ] || printf '%s\n' "$root_made" 2>/dev/null > "$lock/made-root" || true
  else
    rm -rf "$lock" || { echo "cannot write the lock on $1 (is its disk full?), nor remove the half-written $lock: free some space, then remove it" >&2; exit 5; }
    echo "cannot write the lock on $1: is its disk full?" >&2; exit 5
  fi
elif [ -d "$lock" ]; then
  printf 'held '; IFS= read -r held 2>/dev/null < "$lock/info.json"; printf '%s\n' "$held"
else
  echo "cannot create the lock on $1: ${made##*: }" >&2; exit 5
fi
"""

# Once the lock is ours, in the same round trip: remove what a command that died mid-way left in .releaser/
# (part-written uploads and unpack directories, removals cut short, a switch's temporary links), and beside the
# front's link or include ($2 of clean_leftovers, "" without a front; relative to the app root) what its switch
# left: the link or include prepared as .releaser-next, a revert's .releaser-back (and what older releasers kept).
# Nothing is in flight while we hold the lock (every switch takes it first), and the loop forks nothing unless
# there is something to remove.
_LEFTOVERS = r"""
clean_leftovers() {
  for left in "$1"/.releaser/upload-*.tar.gz "$1"/.releaser/upload-*.sha256sums "$1"/.releaser/unpack-* "$1"/.releaser/removing-* \
      "$1"/.releaser/next-* "$1"/.releaser/back-* "$1"/.releaser/armed-* "$1"/.releaser/verified-*.tmp-* "$1"/.releaser/verifying-* "$1"/.releaser/tick-*; do
    if [ -e "$left" ] || [ -L "$left" ]; then rm -rf -- "$left"; fi
  done
  [ -n "$2" ] || return 0
  case $2 in /*) front=$2 ;; *) front=$1/$2 ;; esac
  for left in "$front.releaser-next" "$front.releaser-back" "$front.releaser-prev" "$front.releaser-absent"; do
    if [ -e "$left" ] || [ -L "$left" ]; then rm -f -- "$left"; fi
  done
}
"""
_CLEAN_LEFTOVERS = _LEFTOVERS + r"""
if [ "$taken" = yes ]; then clean_leftovers "$1" "$4"; fi
"""

# After the lock and the status, in the same round trip: the links a go-live ($3 = go-live) or a rollback
# ($3 = rollback) of this server alone would make, prepared under their temporary names. The fleet uses
# them only when they equal its own plan for the server; otherwise it prepares again, as always.
_PREPARE_EARLY = _PREPARE_LINKS + r"""
[ "$taken" = yes ] || exit 0
live= backup= staging=
while read -r kind name target; do
  case $kind:$name in
    slot:live) live=${target#releases/} ;; slot:backup) backup=${target#releases/} ;; slot:staging) staging=${target#releases/} ;;
  esac
done <<FOUND
$found
FOUND
case $3 in
  rollback) [ -n "$backup" ] || exit 0; set -- "live=$backup" "backup=-" ;;
  go-live) [ -n "$staging" ] || exit 0
    if [ -n "$live" ]; then set -- "backup=$live" "live=$staging" "staging=-"; else set -- "live=$staging" "staging=-"; fi ;;
  *) exit 0 ;;
esac
root=$PWD
prepare_links verify "$@" 2>/dev/null && echo "prepared $*"
exit 0
"""

# The one rule for freeing the lock: only the holder's token frees it; "" frees it whoever holds it. A lock
# that had to make the app root (and its missing parents) notes the topmost it made in made-root; freeing it
# removes them again when the command left nothing there (refused before it did anything), so a refused first
# deploy, or one aimed at a mistyped root, leaves the server as it was and status still says "no app root".
_FREE_LOCK = r"""
free_lock() {
  [ -d "$1/.releaser/lock" ] || return 0
  IFS= read -r held 2>/dev/null < "$1/.releaser/lock/info.json" || true
  [ -z "$2" ] || case $held in *"$2"*) ;; *) return 0 ;; esac
  root_made=; IFS= read -r root_made 2>/dev/null < "$1/.releaser/lock/made-root" || true
  rm -rf "$1/.releaser/lock" || return 1
  [ -n "$root_made" ] && rmdir "$1/.releaser" 2>/dev/null || return 0
  dir=$1
  while rmdir "$dir" 2>/dev/null && [ "$dir" != "$root_made" ]; do dir=$(dirname "$dir"); done
  return 0
}
"""

# A forced unlock (no token: `invoke unlock`, the holder is gone) also removes what the holder left, while the lock
# still stands, so no command that takes it next can have started anything it would remove.
_UNLOCK = _FREE_LOCK + _LEFTOVERS + r"""
if [ -z "$2" ] && [ -d "$1/.releaser/lock" ]; then clean_leftovers "$1" "$3"; fi
free_lock "$1" "$2"
"""

# Append journal lines ("$@") to $root/.releaser/journal.jsonl. A journal past $max_bytes, or begun more
# than $max_days days ago, first moves to journal.jsonl.N (the next free N; parts are never renamed or
# removed, and the history reads them all). The latest rehearsal line is also kept alone in rehearsal.json,
# so the rehearsal check reads one line instead of every journal. Event lines are JSON with sorted keys
# and no spaces, and quotes inside values are escaped, so '"action":"rehearse"' matches only the action.
# A write that fails (a full disk) can leave part of a line with no newline, and the next line appended
# would be glued onto it, unreadable too. So .releaser/journal.whole exists while every write has ended
# whole: a failed write removes it (removing needs no room on the disk, creating a marker might), and the
# next write, finding it gone, first ends a torn last line with a newline (before any rotation, so no part
# ends torn either). The torn line stays unreadable, and readers skip it; what follows stays readable. While
# nothing failed, this costs one `[ -e ]`, no process.
_WRITE_JOURNAL = r"""
write_journal() {
  dir="$root/.releaser"; j="$dir/journal.jsonl"
  # never the app root itself: a journal line from `check` on a mistyped root must not make that root exist
  [ -d "$dir" ] || { [ -d "$root" ] || { echo "no app root $root on this server" >&2; return 1; }; mkdir "$dir"; } || return 1
  [ -e "$dir/journal.started" ] || touch "$dir/journal.started"
  whole=yes
  if [ ! -e "$dir/journal.whole" ]; then
    whole=no
    if [ -s "$j" ] && [ -n "$(tail -c 1 "$j")" ]; then printf '\n' >> "$j" || return 1; fi
  fi
  # one find: the journal past max_bytes, or begun more than max_days ago
  if [ -s "$j" ] && [ -n "$(find "$j" "$dir/journal.started" \( -name journal.jsonl -size +"$max_bytes"c -o \
       -name journal.started -mtime +"$max_days" \) -print -quit 2>/dev/null)" ]; then
    n=1; while [ -e "$j.$n" ]; do n=$((n + 1)); done
    mv "$j" "$j.$n" && touch "$dir/journal.started" || return 1
  fi
  printf '%s\n' "$@" >> "$j" || { rm -f "$dir/journal.whole"; return 1; }
  # `true`, not `:`: a redirection that fails on a special builtin ends dash itself
  [ "$whole" = yes ] || true 2>/dev/null > "$dir/journal.whole" || true
  for line in "$@"; do
    case $line in
      *'"action":"rehearse"'*) printf '%s\n' "$line" > "$dir/rehearsal.json.tmp" && mv -f "$dir/rehearsal.json.tmp" "$dir/rehearsal.json" ;;
    esac
  done
  return 0
}
"""

# What the finish script's exit status says (FINISH_BASE plus): 1 the lock it was to free is still held
# there, 2 its journal lines could not be written whole; each is also said on stderr. Any other non-zero
# status means the script itself did not run through (so nothing is known of either).
FINISH_BASE = 40
FINISH_LOCK_KEPT = 1
FINISH_JOURNAL_MISSED = 2

# Journal lines first, then the lock: the record is on disk before anyone else may act. A journal that
# cannot be written (full disk) never keeps the lock held: the lock is freed all the same, and the exit
# status and stderr say the lines are missing there.
_FINISH = _FREE_LOCK + _WRITE_JOURNAL + r"""
root=$1; token=$2; max_bytes=$3; max_days=$4; shift 4
missed=0
if [ $# -gt 0 ]; then
  write_journal "$@" || { missed=2; echo "cannot write this command's journal lines in $root/.releaser/journal.jsonl (is its disk full?)" >&2; }
fi
for link in "$root"/.releaser/next-*; do [ -L "$link" ] && rm -f "$root"/.releaser/next-*; break; done
for left in "$root"/.releaser/armed-*; do [ -d "$left" ] && rm -rf "$root"/.releaser/armed-*; break; done
# an upload or unpack this command's connection lost mid-way (a reset kills the receiving script before its own
# cleanup): only a lock holder uploads, and this one's steps have ended, so what is there is its own
if [ -n "$token" ] && [ -d "$root/.releaser/lock" ]; then
  IFS= read -r held 2>/dev/null < "$root/.releaser/lock/info.json" || held=
  case $held in *"$token"*)
    for left in "$root"/.releaser/upload-* "$root"/.releaser/unpack-* "$root"/.releaser/removing-*; do
      if [ -e "$left" ] || [ -L "$left" ]; then rm -rf -- "$left"; fi
    done ;;
  esac
fi
kept=0
if [ -n "$token" ]; then free_lock "$root" "$token" || { kept=1; echo "cannot remove the lock $root/.releaser/lock" >&2; }; fi
[ $((kept + missed)) = 0 ] || exit $((40 + kept + missed))
"""

_APPEND_JOURNAL = _WRITE_JOURNAL + r"""
root=$1; max_bytes=$2; max_days=$3; shift 3
write_journal "$@"
"""

# Every part, oldest first, then the current journal: rotation never loses a line from the history.
_READ_JOURNAL = r"""
j="$1/.releaser/journal.jsonl"; n=1
while [ -e "$j.$n" ]; do cat "$j.$n"; n=$((n + 1)); done
cat "$j" 2>/dev/null; exit 0
"""

# The journal from byte $2 on, after a first line "SIZE INODE" ("0 -" when there is none), so a reader that
# keeps its place (the dashboard, every 2 s) reads only what was appended since. Exactly the bytes up to
# SIZE are printed, even while another command appends. With $3 = whole (a first read, or a journal that was
# rotated or replaced since), every rotated part comes first, oldest first, and the first line says how many
# bytes they make: "SIZE INODE PARTS_BYTES", so nothing the parts hold is missed.
_READ_JOURNAL_FROM = r"""f="$1/.releaser/journal.jsonl"
[ -f "$f" ] || { echo "0 -"; exit 0; }
set -- "$f" "$2" "$3" $(ls -i "$f")
size=$(wc -c < "$f")
if [ "$3" = whole ]; then
  parts=0; n=1
  while [ -e "$f.$n" ]; do parts=$((parts + $(wc -c < "$f.$n"))); n=$((n + 1)); done
  echo "$((size)) $4 $parts"
  i=1; while [ "$i" -lt "$n" ]; do cat "$f.$i"; i=$((i + 1)); done
  head -c "$((size))" "$f"
  exit 0
fi
echo "$((size)) $4"
if [ "$size" -gt "$2" ]; then tail -c +"$(($2 + 1))" "$f" | head -c "$((size - $2))"; fi
exit 0"""

_WRITE_FILE = r"""
set -e
mkdir -p "$(dirname "$2")"
printf '%s' "$3" > "$2.releaser-tmp"
mv -fT "$2.releaser-tmp" "$2" || { rm -f "$2.releaser-tmp"; exit 1; }
"""


def _script(name: str, body: str, *args: str) -> list[str]:
    return ["sh", "-c", body, f"releaser-{name}", *args]


def status_argv(root: PurePosixPath) -> list[str]:
    """Report slots, releases with their age, free disk and lock in one round trip."""
    return _script("status", _STATUS, str(root))


def prepare_argv(root: PurePosixPath, changes: Sequence[LinkChange], *, verify: bool = True) -> list[str]:
    """Create each new link under a temporary name, after checking its release is there and intact."""
    return _script("prepare", _PREPARE, str(root), "verify" if verify else "trust", *prepared_pairs(changes))


def prepared_pairs(changes: Sequence[LinkChange]) -> tuple[str, ...]:
    """The slot=release words prepare gets for these changes ("-" removes a slot), as the early prepare prints them."""
    return tuple(_pairs(changes, "new"))


def commit_argv(root: PurePosixPath, changes: Sequence[LinkChange], *, unchanged: str | None = None) -> list[str]:
    """Rename the prepared links over the slots; prints the time live was renamed.

    With `unchanged` (the release going live) the server first checks nothing in it changed since prepare
    made .releaser/next-live, and refuses (exit 4, nothing renamed) when something did.
    """
    return _script("commit", _COMMIT, str(root), validate_release_id(unchanged) if unchanged else "",
                   *_pairs(changes, "new"))


def armed_commit_argv(root: PurePosixPath, changes: Sequence[LinkChange], *, bound: float, unchanged: str,
                      python: bool = True) -> list[str]:
    """commit_argv's commit, started ahead: prints "armed", then checks and renames when the line "go" arrives.

    In one python3 process where the server has one (and `python`), which starts no process at T; else in sh.

    End of file before "go" (the client went away), or `bound` seconds without it, exits 8 with nothing
    renamed. After "go": exit 4 (nothing renamed) when `unchanged`, the release going live, changed since
    prepare; else the renames, in order, in one `mv`, and the time live was renamed.
    """
    return _script("commit", _ARMED_COMMIT if python else _ARMED_COMMIT_SH, str(root), validate_release_id(unchanged),
                   f"{max(0.001, bound):.3f}",
                   *_pairs(changes, "new"))


def restore_argv(root: PurePosixPath, changes: Sequence[LinkChange]) -> list[str]:
    """Put every slot the changes touch back to its old release, each by an atomic rename."""
    return _script("restore", _RESTORE, str(root), *_pairs(reversed(list(changes)), "old"))


def rehearsal_argv(root: PurePosixPath, *, setup: bool) -> list[str]:
    """Copy the slot links into .releaser/rehearsal (a throwaway root sharing releases/), or remove it."""
    return _script("rehearsal", _REHEARSAL, str(root), "setup" if setup else "remove")


def abort_argv(root: PurePosixPath) -> list[str]:
    """Remove prepared links that will not be committed."""
    return _script("abort", _ABORT, str(root))


def unpack_argv(root: PurePosixPath, release_id: str, archive: PurePosixPath, archive_sha256: str,
                sums: PurePosixPath, sums_sha256: str) -> list[str]:
    """Check an uploaded archive and sums file, unpack it aside, verify every file, then rename it into releases/."""
    return _script("unpack", _UNPACK, str(root), validate_release_id(release_id), str(archive), archive_sha256,
                   str(sums), sums_sha256)


def receive_argv(root: PurePosixPath, release_id: str, tag: str, archive_sha256: str,
                 sums: PurePosixPath, sums_sha256: str) -> list[str]:
    """Unpack the archive arriving on stdin aside (in .releaser/unpack-ID-TAG), hashing it as it comes; rename it
    into releases/ only if its sha256 is `archive_sha256`, else remove it all. The sums file is already there."""
    if not re.fullmatch(r"[0-9a-f]{1,32}", tag):
        raise ValueError(f"bad upload tag {tag!r}")
    return _script("receive", _RECEIVE, str(root), validate_release_id(release_id), tag, archive_sha256,
                   str(sums), sums_sha256)


def check_release_argv(root: PurePosixPath, release_id: str, sums_sha256: str) -> list[str]:
    """Check a release already on the server has exactly the bundle's files (same sums file), intact."""
    return _script("check-release", _CHECK_RELEASE, str(root), validate_release_id(release_id), sums_sha256)


def remove_release_argv(root: PurePosixPath, release_id: str) -> list[str]:
    """Remove releases/<id>, refusing on the server too if any slot points at it."""
    return _script("remove", _REMOVE_RELEASE, str(root), validate_release_id(release_id))


def lock_argv(root: PurePosixPath, info_json: str, *, prepare_for: str | None = None,
              front: str | None = None) -> list[str]:
    """Take the lock by mkdir (atomic); prints 'taken' or 'held <holder json>', then the status report.

    Once taken, the same round trip removes what an interrupted command left in .releaser/, and beside `front`
    (the nginx front's link or include, [application.front], relative to the root) what a switch left there.

    The status (without free disk) is read after the lock was taken, in the same round trip, so a plan made
    from it cannot be overtaken by another command. With `prepare_for` ("go-live" or "rollback") the server
    also prepares that switch's links as its own slots suggest, and prints 'prepared <slot=release>...' when
    it did: one round trip fewer when the fleet's plan agrees.
    """
    if prepare_for:
        return _script("lock", _LOCK + _CLEAN_LEFTOVERS + _SLOTS + _PREPARE_EARLY, str(root), info_json, prepare_for,
                       front or "")
    return _script("lock", _LOCK + _CLEAN_LEFTOVERS + _SLOTS, str(root), info_json, "", front or "")


def unlock_argv(root: PurePosixPath, token: str | None, *, front: str | None = None) -> list[str]:
    """Remove the lock; with a token only if the lock is ours. Without one (forced), first what its holder left,
    beside `front` too (as lock_argv)."""
    return _script("unlock", _UNLOCK, str(root), token or "", front or "")


def finish_argv(root: PurePosixPath, token: str, lines: Sequence[str]) -> list[str]:
    """Append journal lines (rotating the journal when due), then free the lock if `token` took it ("" keeps it)."""
    return _script("finish", _FINISH, str(root), token, *_rotation(), *lines)


def append_journal_argv(root: PurePosixPath, line: str) -> list[str]:
    """Append one JSON line to the server's journal, rotating it first when it is too big or too old."""
    return _script("journal", _APPEND_JOURNAL, str(root), *_rotation(), line)


def read_journal_argv(root: PurePosixPath) -> list[str]:
    """Print the server's whole journal, rotated parts first (nothing when there is none yet)."""
    return _script("journal-read", _READ_JOURNAL, str(root))


def _rotation() -> tuple[str, str]:
    """When a journal moves aside: its size in bytes and its age in days (read at call time, so tests can lower them)."""
    from releaser import journal

    return str(journal.ROTATE_BYTES), str(journal.ROTATE_DAYS)

def read_journal_from_argv(root: PurePosixPath, offset: int, *, whole: bool = False) -> list[str]:
    """Print "SIZE INODE", then the server's journal from byte `offset` to SIZE: what was appended since.

    With `whole`, the rotated parts first and the journal from its start ("SIZE INODE PARTS_BYTES").
    """
    return _script("journal-follow", _READ_JOURNAL_FROM, str(root), str(int(offset)), "whole" if whole else "since")


def write_file_argv(path: PurePosixPath, content: str) -> list[str]:
    """Replace a small text file atomically (write aside, then rename)."""
    return _script("write", _WRITE_FILE, "-", str(path), content)


def release_link(release_id: str) -> str:
    """Return the relative link target a slot uses for a release."""
    return f"releases/{release_id}"


def _pairs(changes, which: str) -> list[str]:
    pairs = []
    for change in changes:
        if change.slot not in SLOTS:
            raise ValueError(f"unknown slot {change.slot!r}")
        release = getattr(change, which)
        pairs.append(f"{change.slot}={validate_release_id(release) if release else '-'}")
    return pairs


# ---- pre-release checks and data uploads (issue 5) ----


# Data uploads go into the staged release only. Phase "check" verifies the uploaded temporary files and the
# slots on every server; only when every server passed does phase "install" rename them into place.
_DATA_FILES = r"""
cd "$1" || exit 3
phase=$2; release=$3; shift 3
d="releases/$release"
if [ "$phase" != discard ]; then
  [ "$(readlink staging)" = "$d" ] || { echo "staging no longer points at $release" >&2; exit 3; }
  for s in live backup; do
    if [ "$(readlink "$s" 2>/dev/null)" = "$d" ]; then echo "refusing: $s points at $release" >&2; exit 3; fi
  done
fi
while [ $# -ge 3 ]; do
  tmp=$1; dest=$2; sum=$3; shift 3
  case $phase in
    check)
      [ "$(sha256sum "$d/$tmp" | cut -d' ' -f1)" = "$sum" ] || { echo "upload of $dest arrived corrupt (sha256 differs)" >&2; exit 4; } ;;
    install)
      mkdir -p "$(dirname "$d/$dest")" && mv -f "$d/$tmp" "$d/$dest" || exit 5 ;;
    discard)
      rm -f "$d/$tmp" ;;
  esac
done
"""


def data_files_argv(root: PurePosixPath, phase: str, release_id: str,
                    files: Sequence[tuple[str, str, str]]) -> list[str]:
    """Check, install or discard uploaded files (temporary name, destination, sha256) in the staged release."""
    if phase not in ("check", "install", "discard"):
        raise ValueError(f"unknown phase {phase!r}")
    return _script("data", _DATA_FILES, str(root), phase, validate_release_id(release_id),
                   *(part for triple in files for part in triple))
