"""Data slot plans, names, agreement and the [database] and manifest rules: data in, plans or verdicts out."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from releaser.bundle import Manifest
from releaser.config import Database
from releaser.dataslots import (DataSlots, Rename, is_moved, judge_data_agreement, judge_smoke_value,
                                plan_data_go_live, plan_data_prune, plan_data_rollback, read_slots, schema_names)
from releaser.errors import ConfigError, PlanRefused


def slots(live=None, backup=None, staging=None, retired=None) -> DataSlots:
    return DataSlots("phof", live, backup, staging, retired or {})


def test_the_slot_schemas_sit_beside_the_one_the_application_reads():
    """phof is live; backup, staging and a load in progress carry a double-underscore suffix."""
    names = schema_names("phof")
    assert (names.live, names.backup, names.staging, names.loading) == ("phof", "phof__backup", "phof__staging",
                                                                        "phof__loading")
    assert names.is_retired("phof__old_3") and not names.is_retired("phof__old_x") and not names.is_retired("phofx__old_1")


@pytest.mark.parametrize("bad", ["Phof", "phof__x", "pg_phof", 'ph"of', "ph of", "phof;drop", "", "a" * 41, "phof\n"])
def test_a_schema_name_that_would_need_quoting_is_refused(bad):
    """Only plain lower-case names: the application's SQL then never needs quotes, and the suffixes never collide."""
    with pytest.raises(ValidationError):
        Database.model_validate({"schema": bad})
    with pytest.raises(ValueError):
        schema_names(bad)


def test_the_connection_string_never_comes_from_the_file():
    """A dsn key is refused without echoing it; the variable named in dsn_env is read instead."""
    with pytest.raises(ValidationError) as caught:
        Database.model_validate({"schema": "phof", "dsn": "postgresql://app:s3cret@db/phof"})
    assert "s3cret" not in str(caught.value)
    database = Database.model_validate({"schema": "phof", "dsn_env": "PHOF_DB"})
    assert database.dsn({"PHOF_DB": "postgresql://db/phof"}) == "postgresql://db/phof"
    with pytest.raises(ConfigError, match=r"\$PHOF_DB, which is not set"):
        database.dsn({})


def test_the_catalog_reads_as_slots_with_release_ids_from_the_comments():
    """Each schema's comment names its release; a retired one is listed; a foreign schema is unmarked."""
    read = read_slots("phof", {"phof": "releaser release r2", "phof__backup": "releaser release r1",
                               "phof__old_1": "releaser release r0", "phof__staging": "hand made"}, ["releaser:phof:x"])
    assert (read.live, read.backup, read.staging) == ("r2", "r1", None)
    assert dict(read.retired) == {"phof__old_1": "r0"} and read.unmarked == ("phof__staging",)
    assert read.pending == ("releaser:phof:x",)


@pytest.mark.parametrize("before, renames, after", [
    pytest.param(slots(staging="r1"), [("phof__staging", "phof")], (("r1", None, None), {}), id="first-go-live"),
    pytest.param(slots("r1", None, "r2"), [("phof", "phof__backup"), ("phof__staging", "phof")],
                 (("r2", "r1", None), {}), id="second-go-live"),
    pytest.param(slots("r2", "r1", "r3", {"phof__old_1": "r0"}),
                 [("phof__backup", "phof__old_2"), ("phof", "phof__backup"), ("phof__staging", "phof")],
                 (("r3", "r2", None), {"phof__old_1": "r0", "phof__old_2": "r1"}), id="old-backup-retired"),
])
def test_go_live_renames_staging_live_and_live_backup(before, renames, after):
    """The old backup is retired, never dropped, so a revert can bring every schema back."""
    plan = plan_data_go_live(before, before.staging, before.live)
    assert plan.renames == tuple(Rename(*pair) for pair in renames)
    assert ((plan.after.live, plan.after.backup, plan.after.staging), dict(plan.after.retired)) == after
    assert plan.reversed() == tuple(Rename(new, old) for old, new in reversed(renames))


@pytest.mark.parametrize("state, target, previous, message", [
    pytest.param(slots("r1"), "r2", "r1", "no staged data for r2", id="nothing-staged"),
    pytest.param(slots("r1", None, "r2"), "r3", "r1", "staging holds r2's data, not r3's", id="other-staged"),
    pytest.param(slots("r0", None, "r2"), "r2", "r1", "live data is r0's but the servers' live release is r1",
                 id="live-disagrees"),
])
def test_go_live_refuses_when_files_and_data_would_disagree(state, target, previous, message):
    """A refused plan names both sides."""
    with pytest.raises(PlanRefused, match=message):
        plan_data_go_live(state, target, previous)


def test_go_live_refuses_to_move_a_schema_releaser_did_not_mark():
    """A hand-made phof without a releaser comment is never renamed."""
    with pytest.raises(PlanRefused, match="phof exists but has no releaser comment"):
        plan_data_go_live(read_slots("phof", {"phof": None, "phof__staging": "releaser release r1"}), "r1", None)


def test_rollback_puts_backup_live_and_retires_the_failed_data():
    """As with the files, no backup remains afterwards, and the failed data is kept for inspection."""
    plan = plan_data_rollback(slots("r2", "r1", None, {"phof__old_1": "r0"}), "r1", "r2")
    assert plan.renames == (Rename("phof", "phof__old_2"), Rename("phof__backup", "phof"))
    assert (plan.after.live, plan.after.backup, dict(plan.after.retired)) == ("r1", None, {"phof__old_1": "r0",
                                                                                           "phof__old_2": "r2"})
    with pytest.raises(PlanRefused, match="no backup data"):
        plan_data_rollback(slots("r2"), "r1", "r2")


def test_a_plan_knows_whether_the_catalog_shows_it_moved():
    """Revert renames back only when the catalog shows the end state."""
    plan = plan_data_go_live(slots("r1", None, "r2"), "r2", "r1")
    assert is_moved(slots("r2", "r1"), plan) and not is_moved(slots("r1", None, "r2"), plan)


def test_prune_drops_only_retired_data_no_slot_or_kept_release_names():
    """live, backup and staging are never in the answer; a kept release id keeps its retired schema."""
    state = slots("r3", "r2", "r4", {"phof__old_1": "r1", "phof__old_2": "r0", "phof__old_3": "r3"})
    assert plan_data_prune(state, ["r0"]) == ("phof__old_1",)


@pytest.mark.parametrize("files, problems", [
    pytest.param({"live": "r2", "backup": "r1"}, [], id="agree"),
    pytest.param({"live": "r3", "backup": "r2"}, ["live: the servers have r3, the database has r2",
                                                   "backup: the servers have r2, the database has r1"], id="behind"),
    pytest.param({"live": "r2", "backup": "r1", "staging": "r3"},
                 ["staging: the servers have r3, the database has no data staged for it"], id="data-not-staged"),
])
def test_status_says_where_files_and_data_disagree(files, problems):
    """Every slot is compared; each problem names both sides."""
    assert judge_data_agreement(files, slots("r2", "r1")) == problems


def test_a_smoke_value_passes_on_a_row_and_the_expected_first_value():
    assert judge_smoke_value((0,), 0) is None and judge_smoke_value(("x",), None) is None
    assert judge_smoke_value(None, None) == "returned no row"
    assert judge_smoke_value((3,), 0) == "returned 3, expected 0"


def test_a_manifest_data_file_must_be_checksummed_and_csv_needs_table_and_rows():
    """A data file outside `files` would load unchecked; a csv without its row count loads unverified."""
    base = {"release_id": "r1", "files": {"data/a.csv": "0" * 64}}
    assert Manifest.model_validate({**base, "data_files": [
        {"file": "data/a.csv", "format": "csv", "table": "a", "rows": 3}]}).data_files[0].rows == 3
    with pytest.raises(ValidationError, match="not in files"):
        Manifest.model_validate({**base, "data_files": [{"file": "data/b.sql", "format": "sql"}]})
    with pytest.raises(ValidationError, match="needs the table it loads"):
        Manifest.model_validate({**base, "data_files": [{"file": "data/a.csv", "format": "csv", "table": "a"}]})
    with pytest.raises(ValidationError):
        Manifest.model_validate({**base, "data_files": [{"file": "data/a.csv", "format": "csv", "table": "A;x",
                                                         "rows": 1}]})
    assert Manifest.model_validate(base).data_files == []  # older manifests load as before
