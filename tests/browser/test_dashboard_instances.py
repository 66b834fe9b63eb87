"""The dashboard of an environment whose slots run application instances behind nginx, over real sshd, in chromium."""


import pytest

from browserfarm import browser, wait_for  # noqa: F401 (fixture)
from conftest import ACTOR
from releaser.clock import SystemClock
from releaser.dashboard import serving_dashboard
from releaser.fleet import Fleet

pytestmark = pytest.mark.ssh


def test_page_lists_each_servers_live_and_staging_instance(app_farm, browser, tmp_path):
    """Every server's row names its live r1 and staging r2 instances with their ports, both answering."""
    # Fleet itself, not connected(): the farm's nginx holds the live ports the sandbox would otherwise serve
    with Fleet(app_farm.environment, actor=ACTOR, clock=SystemClock(), journal_path=tmp_path / "j.jsonl") as fleet:
        with serving_dashboard(fleet, port=0, every=0.5) as url:
            browser.get(url)
            wait_for(lambda: browser.execute_script("return Number(document.body.dataset.rendered || 0)") >= 1,
                     seconds=15, what="the first board to render")
            rows = browser.execute_script(
                "return [...document.querySelectorAll('#servers tbody tr')].map(row => "
                "[row.dataset.server, row.querySelector(\"td[data-slot='instances']\").textContent])")
            heading_shown = browser.execute_script("return !document.getElementById('instances-head').hidden")
    assert heading_shown and [name for name, _ in rows] == ["web-1", "web-2", "web-3"]
    for name, text in rows:
        assert text.startswith("live r1 :") and ", staging r2 :" in text and text.count("PASS") >= 2, (name, text)
