"""Text people typed (lock reasons, notices, check details naming [[smoke]] or [people]) prints as typed, not as markup."""

from datetime import datetime, timedelta, timezone
from io import StringIO
from types import SimpleNamespace

import pytest
from rich.console import Console

from releaser import ui
from releaser.checks import CheckResult
from releaser.fleet import FleetResult, HostResult, ServerReport
from releaser.locks import LockInfo
from releaser.slots import LinkChange, Plan, SlotState
from releaser.web import Probe

DATA = ("[/oops]", "[[smoke]]", "[people]", "[bold]x[/bold]")
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=timezone.utc)


@pytest.fixture
def shown(monkeypatch):
    """Point ui's consoles at StringIOs, one line per table row; returns a function giving (stdout, stderr)."""
    consoles = {}
    for name in ("out", "err"):
        consoles[name] = Console(file=StringIO(), width=250, highlight=False)
        monkeypatch.setattr(ui, name, consoles[name])
    return lambda: (consoles["out"].file.getvalue(), consoles["err"].file.getvalue())


def assert_all_shown(text: str, *expected: str) -> None:
    for piece in expected:
        assert piece in text, f"{piece!r} not in:\n{text}"


def test_history_shows_reasons_notices_and_details_as_typed(shown):
    events = [{"at": "2026-11-23T09:30:00+00:00", "action": "lock", "outcome": "done", "actor": "ann@[people]",
               "reason": f"hold: {text}"} for text in DATA]
    events.append({"at": "2026-11-23T09:31:00+00:00", "action": "notice", "outcome": "done", "actor": "bob",
                   "detail": "maintenance [/oops] at 10:00", "releases": {"live": "[[smoke]]"}})
    ui.show_history(events)
    out, _ = shown()
    assert_all_shown(out, *(f"hold: {text}" for text in DATA), "ann@[people]", "maintenance [/oops] at 10:00",
                     "live=[[smoke]]")


def test_history_shows_each_events_whole_date(shown):
    """QA: the time column dropped the year ('12-04 03:44:00'): a journal kept across years must not leave the
    reader guessing which December a go-live was in."""
    ui.show_history([{"at": "2025-12-04T09:30:00+00:00", "action": "go-live", "outcome": "done", "actor": "ann"},
                     {"at": "2026-12-04T09:30:00+00:00", "action": "go-live", "outcome": "done", "actor": "ann"}])
    out, _ = shown()
    assert_all_shown(out, "2025-12-04 09:30:00", "2026-12-04 09:30:00")


def test_checks_show_toml_section_names_in_their_details(shown):
    results = [CheckResult("smoke", "web-1", "FAIL", "no smoke test declared: add [[smoke]] entries"),
               CheckResult("people", "all", "WARN", "no [people] declared"),
               CheckResult("[/oops]", "[bold]x[/bold]", "PASS", "")]
    ui.show_checks(results, environment="[people]", release="[[smoke]]")
    out, err = shown()
    assert_all_shown(out, "add [[smoke]] entries", "no [people] declared", "[/oops]", "[bold]x[/bold]",
                     "releaser check: [people], release [[smoke]]")
    assert_all_shown(err, "FAIL", "smoke on web-1")


def test_checks_brief_shows_details_as_typed(shown):
    ui.show_checks_brief("fast", [CheckResult("smoke", "web-1", "FAIL", "add [[smoke]] entries [/oops]")])
    _, err = shown()
    assert_all_shown(err, "fast checks: 0 PASS, 1 not PASS", "FAIL smoke on web-1: add [[smoke]] entries [/oops]")


def test_result_shows_details_and_notes_as_typed_and_its_figures(shown):
    result = FleetResult("go-live", "[[smoke]]", "[people]",
                         tuple(HostResult(f"web-{i}", i % 2 == 0, text) for i, text in enumerate(DATA)),
                         notes=("notice says [/oops]",), seconds={"prepare": 0.25, "switch": 0.01}, skew=0.002)
    ui.show_result(result)
    out, err = shown()
    assert_all_shown(out, "go-live: [people] -> [[smoke]]", *DATA)
    assert_all_shown(err, "prepare 0.25s, switch 0.01s, rename skew 2 ms", "WARNING: notice says [/oops]")
    assert "[dim]" not in err


def test_status_shows_servers_locks_health_and_errors_as_typed(shown):
    lock = LockInfo(owner="ann [/oops]", reason="[[smoke]] fix", since=NOW, expires=None, token="t", kind="manual")
    reports = [ServerReport("[people]", SlotState("r2", "r1", "[[smoke]]", frozenset({"r1", "r2"})), free_bytes=2048,
                            lock=lock, locked=True, health=Probe("http://x/", False, 500, "[bold]x[/bold]")),
               ServerReport("web-2", None, error="ssh said [/oops]")]
    ui.show_status("[people]", reports, host_keys_checked=False)
    out, err = shown()
    assert_all_shown(out, "releaser status: [people]", "[people]", "[[smoke]]", "LOCKED ann [/oops]",
                     "FAIL [bold]x[/bold]", "DOWN", "ssh said [/oops]")
    assert_all_shown(err, "([ssh] check_host_keys = false)")


def test_plan_shows_servers_releases_and_notes_as_typed(shown):
    before = SlotState("[people]", None, "[[smoke]]")
    after = SlotState("[[smoke]]", "[people]", None)
    links = (LinkChange("live", "[people]", "[[smoke]]"), LinkChange("backup", None, "[people]"))
    ui.show_plan("go-live plan", {"[/oops]": Plan("go-live", before, after, links, notes=("[bold]x[/bold] note",))})
    _, err = shown()
    assert_all_shown(err, "[/oops]", "[people]", "[[smoke]]", "WARNING: [bold]x[/bold] note")


def test_runbooks_calendar_and_data_changes_show_titles_notes_and_names_as_typed(shown, tmp_path):
    ui.show_runbooks([SimpleNamespace(name="smoke", title="add [[smoke]] entries [/oops]")])
    release = SimpleNamespace(publication="[people]", at=NOW + timedelta(days=2), upload_deadline=NOW + timedelta(days=1),
                              moved=False, refused=False, note="[bold]x[/bold]", deadline_note="")
    ui.show_calendar([release], now=NOW)
    ui.show_data_change(SimpleNamespace(action="upload", dataset="[[smoke]]", file="[people].csv", sha256="ab" * 32,
                                        release="r1", by="ann [/oops]", at=NOW, servers=["web-1"]))
    ui.write_text("hello\n", str(tmp_path / "[people].txt"))
    out, err = shown()
    assert_all_shown(out, "add [[smoke]] entries [/oops]", "[people]", "[bold]x[/bold]")
    assert_all_shown(err, "upload of [[smoke]] ([people].csv, sha256 abababababab) in r1 by ann [/oops]",
                     "[people].txt")


def test_the_demo_story_and_go_live_announcement_show_text_as_typed(shown):
    ui.narrate("1. [people]", "invoke lock --reason '[/oops]'")
    rehearsal = {"at": "2026-11-22T09:30:00+00:00", "timings": {"prepare": 1.5}}
    ui.announce_go_live(NOW, rehearsal, NOW - timedelta(minutes=5))
    _, err = shown()
    assert_all_shown(err, "1. [people]", "invoke lock --reason '[/oops]'", "go-live at 09:30:00 UTC",
                     "last rehearsal 2026-11-22 09:30 UTC: prepare 1.50 s")
    assert "[bold]" not in err


def test_our_own_markup_still_styles_and_data_is_never_styled(monkeypatch):
    err = Console(file=StringIO(), width=250, highlight=False, force_terminal=True, color_system="standard")
    monkeypatch.setattr(ui, "err", err)
    monkeypatch.setattr(ui, "out", err)
    ui.say(ui.plain("ours", style="bold"))
    ui.say("wrote /srv/[old]/report.md")
    ui.show_result(FleetResult("go-live", "r2", "r1", (HostResult("web-1", False, "[bold]x[/bold]"),),
                               seconds={"switch": 0.5}))
    text = err.file.getvalue()
    assert "\x1b[1mours\x1b[0m" in text  # styled with Text
    assert "wrote /srv/[old]/report.md" in text  # a str given to say() is never read as markup
    assert "[bold]x[/bold]" in text  # data keeps its brackets
    assert "\x1b[2mswitch 0.50s\x1b[0m" in text  # the figures are still dim
    assert "\x1b[1;31mFAIL" in text  # and status words still coloured


def test_status_warns_about_a_server_short_of_disk(shown):
    """0 B free reads as a warning naming the server and the check, not a silent figure in the table."""
    full = ServerReport("web-1", SlotState("r2", "r1", None, frozenset({"r1", "r2"})), free_bytes=0)
    roomy = ServerReport("web-2", SlotState("r2", "r1", None, frozenset({"r1", "r2"})), free_bytes=5 * 1024 ** 3)
    ui.show_status("production", [full, roomy], min_free_bytes=1024 ** 3)
    _, err = shown()
    assert_all_shown(" ".join(err.split()), "web-1 has less than 1.0 GiB free: a stage or go-live there may fail",
                     "invoke check --only disk")
    assert "web-2" not in err


def test_a_message_is_never_broken_into_lines_so_its_command_pastes_whole(monkeypatch):
    """QA: at 80 columns (any pipe) rich broke `--env '/release team shared/.../prod.toml'` inside the quotes."""
    import io

    from rich.console import Console

    from releaser import ui

    screen = io.StringIO()
    monkeypatch.setattr(ui, "err", Console(file=screen, width=40, highlight=False))
    command = "run: invoke status --env '/srv/release team shared/environments for production/prod.toml'"
    ui.say(command)
    ui.warn(command)
    assert screen.getvalue() == f"{command}\nWARNING: {command}\n"


def test_the_announcement_names_the_zone_as_the_countdown_lines_do(shown):
    """QA: the plan said '15:10:22 Europe/London' and the next line 'waiting until 15:09:22 GMT'."""
    from zoneinfo import ZoneInfo

    ui.announce_go_live(datetime(2026, 12, 1, 9, 30, tzinfo=ZoneInfo("Europe/London")), None)
    _, err = shown()
    assert "go-live at 09:30:00 GMT (Europe/London) on Tue 01 Dec 2026" in err


def announced(shown, switch_at: datetime, now: datetime) -> str:
    """What go-live's announcement and its countdown's first line print for phof's slot at switch_at, seen at now."""
    ui.announce_go_live(switch_at, None, slot_of="phof", now=now)
    with ui.countdown() as tick:
        tick("checks", now, switch_at - timedelta(minutes=10))
    return shown()[1]


def test_a_go_live_waiting_days_for_the_next_slot_says_so_and_what_to_run_instead(shown):
    """QA: after 09:30 a plain go-live waited for next Thursday, and the runbook said it would refuse."""
    from zoneinfo import ZoneInfo

    london = ZoneInfo("Europe/London")
    err = announced(shown, datetime(2026, 12, 10, 9, 30, tzinfo=london), datetime(2026, 12, 3, 18, 53, tzinfo=london))
    assert_all_shown(" ".join(err.split()), "that is phof's next slot, in 6 days 14 h: this command waits until then",
                     "invoke go-live --now --force --reason TEXT", "waiting until 09:20:00 GMT on Thu 10 Dec")


def test_a_go_live_later_today_names_no_day_and_gives_no_advice(shown):
    """The usual morning: the switch is today, so nothing about a next slot or a late publication."""
    from zoneinfo import ZoneInfo

    london = ZoneInfo("Europe/London")
    err = announced(shown, datetime(2026, 12, 1, 9, 30, tzinfo=london), datetime(2026, 12, 1, 9, 10, tzinfo=london))
    assert "next slot" not in err and "--now" not in err
    assert "waiting until 09:20:00 GMT, when every check runs" in err
