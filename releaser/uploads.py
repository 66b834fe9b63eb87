"""`invoke data`: put a data file into the staged release on every server, record uploads and QA sign-offs.

Data goes only into the staged release, never into live or backup: the command refuses when nothing is
staged or when staging is the live or backup release. Every change is two-phase. The files (the data, the
release's updated .releaser-sha256sums and its .releaser-datasets.json) are uploaded under temporary names
inside the release and checked on every server; only when every server holds them intact are they renamed
into place, each by one atomic rename. Who and when come from the fleet's actor and clock, never from a
time typed by hand.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from releaser import remote
from releaser.bundle import SAFE_FILE_NAME, SUMS, sha256_file
from releaser.checks import Limits, ServerView, read_view
from releaser.checks.deadline import upload_deadline
from releaser.config import NAME_PATTERN
from releaser.datasets import (
    RECORDS_FILE, DataSetState, DataVerdict, Stamp, dataset_states, find_dataset, judge_dataset, parse_records,
    parse_sums, records_json, sums_with, with_sign_off, with_upload,
)
from releaser.errors import HostUnreachable, PlanRefused, ReleaserError
from releaser.order import counted, counted_items



@dataclass(frozen=True)
class DataChange:
    """What `invoke data upload` or `sign-off` did: which data set of which release, its sha256, who, when, where."""

    action: str
    release: str
    dataset: str
    file: str
    sha256: str
    by: str
    at: datetime
    servers: tuple[str, ...]


@dataclass(frozen=True)
class DataRow:
    """One data set of the staged release with its deadline and the deadline rule's verdict."""

    state: DataSetState
    deadline: datetime | None
    verdict: DataVerdict


@dataclass(frozen=True)
class DataStatus:
    """The staged release's data sets, or why there are none to show."""

    release: str | None
    rows: tuple[DataRow, ...]
    problem: str | None = None


def staged_release_for_data(servers: Mapping[str, ServerView]) -> str:
    """Return the release every server stages, refusing when data could land in live or backup or servers disagree."""
    broken = {name: view.error for name, view in servers.items() if view.error}
    if broken:
        name, error = counted_items(broken)[0]
        raise HostUnreachable(name, error, hint="nothing was changed; fix that server and run the command again")
    staged = {view.staging for view in servers.values()}
    if None in staged:
        empty = ", ".join(counted(n for n, v in servers.items() if v.staging is None))
        raise PlanRefused(f"nothing is staged on {empty}; data goes only into a staged release",
                          hint="stage the release first: invoke deploy --stage --release PATH")
    if len(staged) > 1:
        raise PlanRefused(f"servers stage different releases ({', '.join(sorted(staged))}); nothing was changed",
                          hint="stage one release everywhere: invoke deploy --stage --release PATH")
    release = staged.pop()
    for name, view in counted_items(servers):
        for slot in ("live", "backup"):
            if getattr(view, slot) == release:
                raise PlanRefused(f"staging on {name} is the {slot} release {release}; data never goes into live or backup",
                                  hint="stage a new release first: invoke deploy --stage --release PATH")
    return release


def require_data_file(path: Path) -> None:
    """Refuse a --file that is not a regular file, saying what it is instead (the dry run asks this too)."""
    if path.is_file():
        return
    what = "does not exist" if not path.exists() else ("is a directory" if path.is_dir() else
                                                        "is not a regular file (a device, a FIFO or a socket)")
    raise ReleaserError(f"data file {path} {what}", hint="pass --file PATH to the data set's file")


def upload_dataset(fleet, name: str, path: Path, *, reason: str | None = None) -> DataChange:
    """Put `path` in place of data set `name`'s file in the staged release on every server, and record the upload."""
    data = Path(path)
    require_data_file(data)
    digest = sha256_file(data)
    return _change(fleet, "data-upload", name, reason=reason, data=data, digest=digest)


def sign_off_dataset(fleet, name: str, *, reason: str | None = None) -> DataChange:
    """Record the actor's QA sign-off of data set `name` as it is now (its current sha256) on every server."""
    return _change(fleet, "data-sign-off", name, reason=reason)


def read_data_status(fleet, limits: Limits, now: datetime) -> DataStatus:
    """Read the staged release's data sets, each with its upload, sign-off, deadline and verdict."""
    view = read_view(fleet, limits, now)
    if view.manifest is None:
        return DataStatus(view.release, (), view.problem or "nothing is staged")
    rows = []
    for state in dataset_states(view.manifest, view.records, parse_sums(view.sums)):
        deadline = upload_deadline(limits.environment, state.publication, limits.at, now)
        verdict = (judge_dataset(state, deadline, now) if deadline else
                   DataVerdict(state.name, state.publication, "FAIL", f"publication {state.publication!r} is not declared"))
        rows.append(DataRow(state, deadline, verdict))
    rows.sort(key=lambda row: (row.deadline is None, row.deadline or now, row.state.publication, row.state.name))
    return DataStatus(view.release, tuple(rows))


# ---- the two-phase change ----

def _change(fleet, action: str, name: str, *, reason: str | None, data: Path | None = None,
            digest: str | None = None) -> DataChange:
    if not isinstance(name, str) or not _is_name(name):
        raise PlanRefused(f"bad data set name {name!r}", hint="use the name the release's manifest.json gives it")
    fleet.require_all_reachable(action.replace("-", " "))
    limits = Limits(fleet.environment)
    now = fleet.clock.now()
    release = staged_release_for_data(read_view(fleet, limits, now).servers)
    with fleet.locked(f"{action.replace('-', ' ')} {name} in {release}"):
        view = read_view(fleet, limits, now)  # again, under the lock: nobody can move staging now
        if staged_release_for_data(view.servers) != release:
            raise PlanRefused(f"staging moved away from {release} meanwhile; nothing was changed", hint="run the command again")
        if view.manifest is None:
            raise PlanRefused(f"cannot read {release}'s manifest: {view.problem}", hint="stage the release again")
        dataset = find_dataset(view.manifest, name)
        if dataset is None:
            known = ", ".join(d.name for d in view.manifest.datasets) or "none"
            raise PlanRefused(f"{release} has no data set {name!r}; nothing was changed", hint=f"its manifest declares: {known}")
        if not _is_release_file(dataset.file):
            raise PlanRefused(f"data set {name}'s file {dataset.file!r} is not a plain path inside the release")
        stamp_at = fleet.clock.now()
        if action == "data-upload":
            stamp = Stamp(fleet.actor, stamp_at, digest)
        else:
            current = {parse_sums(v.sums).get(dataset.file) for v in view.servers.values()}
            if len(current) != 1 or None in current:
                raise PlanRefused(f"{dataset.file} differs between servers or is missing; nothing was signed off",
                                  hint=f"upload it again: invoke data-upload --dataset {name} --file PATH")
            state = next(s for s in dataset_states(view.manifest, view.records, parse_sums(view.sums)) if s.name == name)
            if state.uploaded is None:
                raise PlanRefused(f"{name} has not been uploaded; there is nothing to sign off",
                                  hint=f"upload it first: invoke data-upload --dataset {name} --file PATH")
            stamp = Stamp(fleet.actor, stamp_at, current.pop())
        _install_everywhere(fleet, view.servers, release, dataset.file, name, stamp, data)
    change = DataChange(action.removeprefix("data-"), release, name, dataset.file, stamp.sha256, stamp.by, stamp.at,
                        tuple(counted(view.servers)))
    fleet.record(action, "done", releases={"staging": release}, reason=reason,
                 detail=f"{name} ({dataset.file}) sha256 {stamp.sha256[:12]}",
                 extra={"dataset": name, "file": dataset.file, "sha256": stamp.sha256})
    return change


def _install_everywhere(fleet, servers: Mapping[str, ServerView], release: str, file: str, name: str, stamp: Stamp,
                        data: Path | None) -> None:
    tag = uuid.uuid4().hex[:12]
    with tempfile.TemporaryDirectory(prefix="releaser-data-") as workdir:
        def files_for(server: str) -> list[tuple[Path, str, str]]:
            view = servers[server]
            records = parse_records(view.records)
            if data is not None:
                texts = {SUMS: sums_with(view.sums, file, stamp.sha256),
                         RECORDS_FILE: records_json(with_upload(records, name, stamp))}
            else:
                texts = {RECORDS_FILE: records_json(with_sign_off(records, name, stamp))}
            local = []
            for target, text in texts.items():
                written = Path(workdir) / f"{server}-{target.lstrip('.')}"
                written.write_text(text, encoding="utf-8")
                local.append((written, target, sha256_file(written)))
            if data is not None:
                local.insert(0, (data, file, stamp.sha256))
            return local

        plans = {server: files_for(server) for server in servers}

        def triples(server: str) -> list[tuple[str, str, str]]:
            return [(f".releaser-upload-{tag}-{index}", target, digest)
                    for index, (_, target, digest) in enumerate(plans[server])]

        def upload_and_check(server: str):
            host, root = fleet.hosts[server], fleet.root(server)
            for (local, _, _), (temporary, _, _) in zip(plans[server], triples(server)):
                fleet.progress(server, f"uploading {local.name}")
                host.put(local, root / "releases" / release / temporary)
            return host.run(remote.data_files_argv(root, "check", release, triples(server)))

        def run_phase(phase: str):
            return fleet.each(lambda server: fleet.hosts[server].run(
                remote.data_files_argv(fleet.root(server), phase, release, triples(server))), list(servers))

        checked = fleet.each(upload_and_check, list(servers))
        failed = _failures(checked)
        if failed:
            run_phase("discard")
            raise ReleaserError(f"data {name} was not changed anywhere: {_summary(failed)}",
                                hint="fix that server (disk, permissions), then run the same command again")
        installed = run_phase("install")
        failed = _failures(installed)
        if failed:
            run_phase("discard")
            done = ", ".join(counted(set(servers) - set(failed))) or "no server"
            raise ReleaserError(f"data {name} changed on {done} but not on {_summary(failed)}",
                                hint="run the same command again; `invoke check` fails the staged check until every server agrees")


def _failures(outcomes: Mapping[str, object]) -> dict[str, str]:
    failed = {}
    for server, outcome in outcomes.items():
        if isinstance(outcome, Exception):
            failed[server] = str(outcome).removeprefix(f"{server}: ")
        elif not outcome.ok:
            failed[server] = outcome.reason()
    return failed


def _summary(failed: Mapping[str, str]) -> str:
    return "; ".join(f"{server} ({detail})" for server, detail in counted_items(failed))


def _is_name(name: str) -> bool:
    return re.match(NAME_PATTERN, name) is not None


def _is_release_file(file: str) -> bool:
    """A data file is a plain relative path in the release, never releaser's own files or the manifest."""
    parts = file.split("/")
    return (SAFE_FILE_NAME.match(file) is not None and ".." not in parts and "" not in parts
            and not parts[-1].startswith(".releaser") and file != "manifest.json")

