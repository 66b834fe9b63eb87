"""Data set records: uploads, sign-offs, checksums and the deadline verdict, as data in and data out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from releaser.bundle import Manifest
from releaser.datasets import (
    DataSetState, Stamp, dataset_states, how_late, judge_dataset, parse_records, parse_sums, records_json, sums_with,
    with_sign_off, with_upload,
)

UTC = timezone.utc
DEADLINE = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
FILE = "public/data/a.csv"
OLD, NEW = "a" * 64, "b" * 64


def manifest() -> Manifest:
    return Manifest(release_id="r2", publications=["phof"], files={FILE: OLD, "public/index.html": "d" * 64}, datasets=[
        {"name": "a", "publication": "phof", "file": FILE, "uploaded_at": "2026-11-24T10:00:00Z", "uploaded_by": "ana",
         "qa_signed_off_by": "ben", "qa_signed_off_at": "2026-11-24T12:00:00Z"}])


def test_records_round_trip_through_json():
    """Records written to .releaser-datasets.json read back equal, with times in UTC."""
    records = with_upload({}, "a", Stamp("ana", datetime(2026, 11, 24, 10, tzinfo=UTC), NEW))
    records = with_sign_off(records, "a", Stamp("ben", datetime(2026, 11, 24, 11, tzinfo=UTC), NEW))
    assert parse_records(records_json(records)) == records
    assert '"at": "2026-11-24T10:00:00Z"' in records_json(records)


def test_record_updates_return_new_values():
    """Adding an upload leaves the records it was given unchanged."""
    before = with_upload({}, "a", Stamp("ana", DEADLINE, OLD))
    after = with_upload(before, "a", Stamp("ana", DEADLINE, NEW))
    assert len(before["a"].uploads) == 1 and len(after["a"].uploads) == 2


def test_empty_or_foreign_record_text():
    """No file means no records; a file that is not ours is refused, not misread."""
    assert parse_records("") == {}
    with pytest.raises(ValueError):
        parse_records('["not", "ours"]')


def test_sums_with_replaces_a_line_and_keeps_sha256sum_order():
    """Updating a file's checksum rewrites its line; a new file gets a line, sorted like sha256sum files."""
    text = f"{OLD}  {FILE}\n{'d' * 64}  public/index.html\n"
    updated = sums_with(text, FILE, NEW)
    assert parse_sums(updated) == {FILE: NEW, "public/index.html": "d" * 64}
    assert parse_sums(sums_with(text, "public/data/new file.csv", NEW))["public/data/new file.csv"] == NEW


def test_states_take_the_manifest_then_the_newest_record():
    """The manifest's upload counts until a record overrides it; the current sha comes from the release's sums."""
    [state] = dataset_states(manifest(), {}, {FILE: OLD})
    assert (state.uploaded.by, state.signed_off.by, state.sha256, state.needs_sign_off()) == ("ana", "ben", OLD, False)
    records = with_upload({}, "a", Stamp("cleo", datetime(2026, 11, 25, 9, tzinfo=UTC), NEW))
    [state] = dataset_states(manifest(), records, {FILE: NEW})
    assert (state.uploaded.by, state.sha256, state.needs_sign_off()) == ("cleo", NEW, True)


def test_file_edited_behind_releasers_back_needs_a_new_sign_off():
    """A sums entry different from what was signed off means the signed-off content is gone."""
    [state] = dataset_states(manifest(), {}, {FILE: NEW})
    assert state.needs_sign_off()


def test_sign_off_without_a_checksum_is_judged_by_time():
    """A sign-off that names no sha256 covers the data only if it came after the last upload."""
    upload = Stamp("ana", datetime(2026, 11, 24, 10, tzinfo=UTC))
    assert DataSetState("a", "phof", FILE, NEW, upload, Stamp("ben", datetime(2026, 11, 24, 9, tzinfo=UTC))).needs_sign_off()
    assert not DataSetState("a", "phof", FILE, NEW, upload, Stamp("ben", datetime(2026, 11, 24, 11, tzinfo=UTC))).needs_sign_off()


def state(uploaded_at=None, signed_at=None, signed_by="ben", signed_sha=NEW, sha=NEW):
    uploaded = Stamp("ana", uploaded_at, NEW) if uploaded_at else None
    signed = Stamp(signed_by, signed_at, signed_sha) if signed_at else None
    return DataSetState("a", "phof", FILE, sha, uploaded, signed)


ON_TIME = DEADLINE - timedelta(hours=5)


@pytest.mark.parametrize(
    "the_state, now, expected, starts",
    [
        pytest.param(state(ON_TIME, ON_TIME), DEADLINE, "PASS", "a: uploaded by ana", id="on-time"),
        pytest.param(state(ON_TIME, ON_TIME, signed_by="ana"), DEADLINE, "WARN", "a: uploaded by ana", id="own-sign-off"),
        pytest.param(state(ON_TIME), ON_TIME, "WARN", "a: not signed off", id="open-before-deadline"),
        pytest.param(state(ON_TIME), DEADLINE + timedelta(minutes=1), "FAIL", "a: not signed off", id="unsigned-after-deadline"),
        pytest.param(state(ON_TIME, ON_TIME, signed_sha=OLD), DEADLINE + timedelta(days=1), "FAIL",
                     "a: changed after ben's sign-off: needs a new sign-off", id="changed-after-sign-off"),
        pytest.param(state(DEADLINE + timedelta(minutes=45), DEADLINE + timedelta(hours=2)), DEADLINE + timedelta(days=1),
                     "FAIL", "a: uploaded 45 min late", id="uploaded-late"),
        pytest.param(state(ON_TIME, DEADLINE + timedelta(days=1, hours=3)), DEADLINE + timedelta(days=2), "FAIL",
                     "a: signed off 1 day 3 h late", id="signed-late"),
        pytest.param(state(), ON_TIME, "WARN", "a: not uploaded", id="not-uploaded-yet"),
        pytest.param(state(sha=None), ON_TIME, "FAIL", "a: public/data/a.csv is not in the release", id="no-file"),
    ],
)
def test_judge_dataset(the_state, now, expected, starts):
    """Late is FAIL with how late; still open before the deadline is WARN; done on time by two people is PASS."""
    verdict = judge_dataset(the_state, DEADLINE, now)
    assert verdict.status == expected and verdict.detail.startswith(starts)


@pytest.mark.parametrize(
    "delta, text",
    [
        pytest.param(timedelta(seconds=1), "1 min", id="rounds-up"),
        pytest.param(timedelta(hours=2, minutes=15), "2 h 15 min", id="hours"),
        pytest.param(timedelta(days=1, hours=3), "1 day 3 h", id="day"),
        pytest.param(timedelta(days=34, hours=23), "34 days 23 h", id="days"),
    ],
)
def test_how_late(delta, text):
    """Durations read as people say them."""
    assert how_late(delta) == text
