"""`releaser dashboard` in a real headless chromium: the sandbox's state, a ticking countdown, live updates."""

import json
import re
import time
import urllib.error
import urllib.request

import pytest

from browserfarm import ARTIFACTS, browser, dashboard, go_live_now, sandbox, wait_for  # noqa: F401 (fixtures)
from conftest import PROJECT, read_slots
from releaser.config import load_environment

COUNTDOWN = re.compile(r"^go-live at \w{3} \d\d \w{3} \d{4} \d\d:\d\d:\d\d Europe/London, in (\d+ days? )?\d\d:\d\d:\d\d$")


def open_page(driver, url: str) -> float:
    """Open the dashboard and wait for its first board to render; return the seconds that took."""
    started = time.perf_counter()
    driver.get(url)
    wait_for(lambda: driver.execute_script("return Number(document.body.dataset.rendered || 0)") >= 1,
             seconds=15, what="the first board to render")
    return time.perf_counter() - started


def cells(driver, slot: str) -> dict[str, str]:
    """{server: text} of one slot's column in the servers table, read in one go (the page may redraw meanwhile)."""
    return driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#servers tbody tr')].map("
        "row => [row.dataset.server, row.querySelector(`td[data-slot='${arguments[0]}']`).textContent]))", slot)


def text_of(driver, css: str) -> str:
    """The text of the element `css` selects, as a reader sees it."""
    return driver.execute_script("return document.querySelector(arguments[0]).innerText", css)


def timeline(driver) -> list[tuple[str, str]]:
    """(action, row text) of every row of today's journal, newest first, read in one go."""
    return [tuple(row) for row in driver.execute_script(
        "return [...document.querySelectorAll('#timeline tbody tr')].map(row => [row.dataset.action, row.innerText])")]


def save_figure(name: str, value) -> None:
    """Keep a measured figure with the run's artefacts (test-artifacts/figures.json)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "figures.json"
    figures = json.loads(path.read_text()) if path.is_file() else {}
    figures[name] = value
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


def test_page_shows_every_servers_slots_lock_notice_checks_and_journal(sandbox, dashboard, browser):
    """r1 live and r2 staged on both servers, the lock, the notice, the last check and today's journal, all on the page."""
    sandbox.run("check", check=False)  # its verdict depends on the day; the page must show whichever it is
    sandbox.run("notice", "--message", "Today's figures are delayed; next update 11:00")
    sandbox.run("lock", "--reason", "release day", "--minutes", "30")
    wait_for(lambda: dashboard.board()["lock"], seconds=15, what="the dashboard to read the lock")
    seconds = open_page(browser, dashboard.url)
    save_figure("dashboard_first_render_seconds", round(seconds, 3))
    save_figure("dashboard_process_ready_seconds", round(dashboard.started_seconds, 3))

    assert cells(browser, "live") == {"web-1": "r1", "web-2": "r1"}
    assert cells(browser, "staging") == {"web-1": "r2", "web-2": "r2"}
    assert cells(browser, "backup") == {"web-1": "NO BACKUP", "web-2": "NO BACKUP"}
    assert 'LOCKED on web-1 by ana@browser-tests' in text_of(browser, "#lock") and 'reason: "release day"' in text_of(browser, "#lock")
    assert "web-2: Today's figures are delayed; next update 11:00" in text_of(browser, "#notices")
    assert re.match(r"^(PASS|FAIL) at \w{3} \d\d \w{3} \d\d:\d\d:\d\d by ana@browser-tests on r2: ", text_of(browser, "#checks"))
    actions = [action for action, _ in timeline(browser)]
    assert actions[:3] == ["lock", "notice", "check"] and "go-live" in actions and "stage" in actions
    assert text_of(browser, "#connection") == "live: updates as the servers change"


def test_page_loads_nothing_from_another_origin(sandbox, dashboard, browser):
    """Every request the page made went to the dashboard itself (no CDN), under a same-origin-only policy."""
    open_page(browser, dashboard.url)
    requested = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert requested and all(url.startswith(dashboard.url) for url in requested), requested
    with urllib.request.urlopen(dashboard.url, timeout=5) as response:
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_countdown_ticks_every_second(sandbox, dashboard, browser):
    """The countdown to the next release shows its moment and zone, and moves on by itself."""
    open_page(browser, dashboard.url)
    first = text_of(browser, "#countdown")
    assert COUNTDOWN.match(first), first
    later = wait_for(lambda: (t := text_of(browser, "#countdown")) != first and t, seconds=5, what="the countdown to tick")
    assert COUNTDOWN.match(later) and later < first  # fewer seconds left (same width, so the text sorts by time)


def test_go_live_by_another_process_shows_without_a_reload(sandbox, dashboard, browser):
    """A go-live run in another terminal appears on the open page: live r2, backup r1, on top of the journal."""
    sandbox.run("check", check=False)  # so the page, and its screenshot, show a check run too
    open_page(browser, dashboard.url)
    browser.execute_script("window.releaserNotReloaded = true")
    started = time.perf_counter()
    go_live_now(sandbox.env_file, sandbox.elsewhere)
    done = time.perf_counter()
    wait_for(lambda: cells(browser, "live") == {"web-1": "r2", "web-2": "r2"}, seconds=15, what="r2 to show as live")
    save_figure("dashboard_update_after_go_live_seconds", round(time.perf_counter() - done, 3))
    save_figure("go_live_command_seconds", round(done - started, 3))

    assert browser.execute_script("return window.releaserNotReloaded === true"), "the page was reloaded"
    assert cells(browser, "backup") == {"web-1": "r1", "web-2": "r1"}
    assert cells(browser, "staging") == {"web-1": "-", "web-2": "-"}
    action, row = timeline(browser)[0]
    assert action == "go-live" and "\tr2\t" in row, row
    assert {s.live for s in read_slots(load_environment(str(sandbox.env_file), PROJECT)).values()} == {"r2"}
    ARTIFACTS.mkdir(exist_ok=True)
    browser.set_window_size(1100, browser.execute_script("return document.documentElement.scrollHeight") + 140)
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))  # the README's docs/dashboard.png comes from here


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_dashboard_refuses_every_change(sandbox, dashboard, method):
    """The page's server has no way to change anything: any method but GET and HEAD is 405, and no slot moved."""
    request = urllib.request.Request(dashboard.url + "board.json", data=b"{}", method=method)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 405 and refused.value.headers["Allow"] == "GET, HEAD"
    assert {s.live for s in read_slots(load_environment(str(sandbox.env_file), PROJECT)).values()} == {"r1"}


def test_dashboard_listens_on_loopback_only(dashboard):
    """Bound to 127.0.0.1 by default: the URL it prints and answers on is loopback."""
    assert dashboard.url.startswith("http://127.0.0.1:")
    assert dashboard.board()["environment"] == "release-day"


def test_a_request_naming_another_site_is_refused(dashboard):
    """A page of another site whose name points at 127.0.0.1 (DNS rebinding) gets 421, not the board."""
    request = urllib.request.Request(dashboard.url + "board.json", headers={"Host": "evil.example:80"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 421
    port = dashboard.url.rsplit(":", 1)[1].rstrip("/")
    by_name = urllib.request.Request(dashboard.url + "board.json", headers={"Host": f"localhost:{port}"})
    with urllib.request.urlopen(by_name, timeout=5) as response:
        assert json.load(response)["environment"] == "release-day"
