"""Data sets in a staged release: who uploaded each, who signed it off, and whether both beat the deadline.

Pure: records in, records or verdicts out; no I/O, no clock. The records live next to the release on every
server, in releases/<id>/.releaser-datasets.json, as an append-only history per data set (the newest entry
counts). A data set's manifest entry gives its file and publication and, for bundles built with their data
already in, the upload and sign-off the bundle was made with; a record written by `invoke data` overrides those.

A sign-off names the sha256 it approved. A data set whose file no longer has that sha256 (uploaded again,
or edited) needs a new sign-off, and the deadline check says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from releaser.bundle import DataSet, Manifest

RECORDS_FILE = ".releaser-datasets.json"


@dataclass(frozen=True)
class Stamp:
    """Who did something to a data set, when, and the sha256 of the file they did it to (None: unknown)."""

    by: str
    at: datetime
    sha256: str | None = None


@dataclass(frozen=True)
class DataRecord:
    """The uploads and sign-offs of one data set in one release, oldest first."""

    name: str
    uploads: tuple[Stamp, ...] = ()
    sign_offs: tuple[Stamp, ...] = ()


@dataclass(frozen=True)
class DataSetState:
    """A data set as it stands: its file, that file's sha256 now, the last upload and the last sign-off."""

    name: str
    publication: str
    file: str
    sha256: str | None
    uploaded: Stamp | None
    signed_off: Stamp | None

    def needs_sign_off(self) -> bool:
        """Say whether the data set lacks a sign-off that covers its current content."""
        if self.signed_off is None:
            return True
        if self.signed_off.sha256 and self.sha256:
            return self.signed_off.sha256 != self.sha256
        return self.uploaded is not None and self.signed_off.at < self.uploaded.at


@dataclass(frozen=True)
class DataVerdict:
    """What the deadline rule says about one data set: PASS, WARN or FAIL and a line saying why."""

    dataset: str
    publication: str
    status: str
    detail: str


def parse_records(text: str) -> dict[str, DataRecord]:
    """Read .releaser-datasets.json; empty or missing text gives no records. Raises ValueError if it is not ours."""
    if not text.strip():
        return {}
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("datasets", {}), dict):
        raise ValueError("not a releaser data set record file")
    records = {}
    for name, entry in data.get("datasets", {}).items():
        records[name] = DataRecord(
            name,
            tuple(_stamp(item) for item in entry.get("uploads", [])),
            tuple(_stamp(item) for item in entry.get("sign_offs", [])),
        )
    return records


def records_json(records: Mapping[str, DataRecord]) -> str:
    """Serialise records for .releaser-datasets.json (stable order, one file per release)."""
    data = {"datasets": {
        name: {"uploads": [_stamp_json(s) for s in record.uploads],
               "sign_offs": [_stamp_json(s) for s in record.sign_offs]}
        for name, record in sorted(records.items())
    }}
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def with_upload(records: Mapping[str, DataRecord], name: str, stamp: Stamp) -> dict[str, DataRecord]:
    """Return the records with one more upload of data set `name`."""
    record = records.get(name, DataRecord(name))
    return {**records, name: replace(record, uploads=record.uploads + (stamp,))}


def with_sign_off(records: Mapping[str, DataRecord], name: str, stamp: Stamp) -> dict[str, DataRecord]:
    """Return the records with one more QA sign-off of data set `name` (its stamp names the sha256 approved)."""
    record = records.get(name, DataRecord(name))
    return {**records, name: replace(record, sign_offs=record.sign_offs + (stamp,))}


def parse_sums(text: str) -> dict[str, str]:
    """Read a `sha256sum` file into {file: sha256}."""
    sums = {}
    for line in text.splitlines():
        digest, separator, name = line.partition("  ")
        if separator and len(digest) == 64:
            sums[name] = digest
    return sums


def sums_with(text: str, file: str, sha256: str) -> str:
    """Return the sums file with `file`'s line set to `sha256` (added if new), in the order `sha256sum -c` reads."""
    sums = {**parse_sums(text), file: sha256}
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))


def find_dataset(manifest: Manifest, name: str) -> DataSet | None:
    """Return the manifest's data set called `name`, or None."""
    return next((dataset for dataset in manifest.datasets if dataset.name == name), None)


def dataset_states(manifest: Manifest, records: Mapping[str, DataRecord], sums: Mapping[str, str]) -> list[DataSetState]:
    """Combine the manifest, the records and the release's current sums into one state per data set.

    `sums` is the release's sha256sums on the server, so an upload after staging shows its new checksum.
    A manifest's own upload and sign-off are taken to cover the file as the bundle was built.
    """
    states = []
    for dataset in manifest.datasets:
        built_sha = dataset.sha256 or manifest.files.get(dataset.file)
        uploaded = signed = None
        if dataset.uploaded_at is not None:
            uploaded = Stamp(dataset.uploaded_by or "unknown", _aware(dataset.uploaded_at), built_sha)
        if dataset.qa_signed_off_at is not None:
            signed = Stamp(dataset.qa_signed_off_by or "unknown", _aware(dataset.qa_signed_off_at), built_sha)
        record = records.get(dataset.name)
        if record and record.uploads:
            uploaded = record.uploads[-1]
        if record and record.sign_offs:
            signed = record.sign_offs[-1]
        states.append(DataSetState(dataset.name, dataset.publication, dataset.file,
                                   sums.get(dataset.file, built_sha if not sums else None), uploaded, signed))
    return states


def judge_dataset(state: DataSetState, deadline: datetime, now: datetime) -> DataVerdict:
    """Judge one data set against its publication's upload deadline.

    FAIL: not in the release, or uploaded or signed off after the deadline (saying how late), or still
    missing an upload or a valid sign-off once the deadline has passed. WARN: still missing one while the
    deadline is ahead, or signed off by the person who uploaded it. PASS otherwise.
    """
    def verdict(status: str, detail: str) -> DataVerdict:
        return DataVerdict(state.name, state.publication, status, detail)

    due = f"deadline {moment_text(deadline)}"
    passed = now > deadline
    if state.sha256 is None:
        return verdict("FAIL", f"{state.name}: {state.file} is not in the release")
    if state.uploaded is None:
        return verdict("FAIL" if passed else "WARN",
                       f"{state.name}: not uploaded; {due}" + (f" ({how_late(now - deadline)} ago)" if passed else ""))
    if state.uploaded.at > deadline:
        return verdict("FAIL", f"{state.name}: uploaded {how_late(state.uploaded.at - deadline)} late "
                               f"by {state.uploaded.by} at {moment_text(state.uploaded.at, deadline)}; {due}")
    if state.needs_sign_off():
        why = ("not signed off" if state.signed_off is None
               else f"changed after {state.signed_off.by}'s sign-off: needs a new sign-off")
        return verdict("FAIL" if passed else "WARN", f"{state.name}: {why}; {due}")
    if state.signed_off.at > deadline:
        return verdict("FAIL", f"{state.name}: signed off {how_late(state.signed_off.at - deadline)} late "
                               f"by {state.signed_off.by} at {moment_text(state.signed_off.at, deadline)}; {due}")
    done = (f"{state.name}: uploaded by {state.uploaded.by} {moment_text(state.uploaded.at, deadline)}, "
            f"signed off by {state.signed_off.by} {moment_text(state.signed_off.at, deadline)}; {due}")
    if state.signed_off.by == state.uploaded.by:
        return verdict("WARN", done.replace(f"signed off by {state.signed_off.by}", "signed off by its own uploader", 1))
    return verdict("PASS", done)


def how_late(delta) -> str:
    """Say a positive duration in words: "45 min", "2 h 15 min", "1 day 3 h"."""
    minutes = max(1, math.ceil(delta.total_seconds() / 60))
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days > 1 else ''}" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    return f"{minutes} min"


def moment_text(moment: datetime, like: datetime | None = None) -> str:
    """Show a moment as "Wed 25 Nov 17:00 GMT", in the zone of `like` (a deadline) when given, with its year
    when that is not the year of `like` ("Wed 10 Jan 2024 14:00 GMT": a file uploaded long before the deadline)."""
    shown = moment.astimezone(like.tzinfo) if like is not None and like.tzinfo is not None else moment
    year = f" {shown.year}" if like is not None and shown.year != like.astimezone(shown.tzinfo).year else ""
    return f"{shown:%a} {shown.day} {shown:%b}{year} {shown:%H:%M} {shown.tzname() or ''}".rstrip()


def _stamp(item: Mapping) -> Stamp:
    return Stamp(str(item["by"]), _aware(datetime.fromisoformat(str(item["at"]).replace("Z", "+00:00"))),
                 item.get("sha256"))


def _stamp_json(stamp: Stamp) -> dict:
    return {"by": stamp.by, "at": stamp.at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
            "sha256": stamp.sha256}


def _aware(moment: datetime) -> datetime:
    """Times in manifests and records are UTC; a naive one (hand-written) is read as UTC too."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)

