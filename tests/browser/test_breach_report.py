"""`releaser breach-report` as a printable page and a picture, opened and printed by a real headless chromium."""

import base64
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from browserfarm import ARTIFACTS, browser, sandbox  # noqa: F401 (fixtures)


def scheduled_an_hour_ago() -> str:
    """A --scheduled moment an hour before now in Europe/London, so r1's go-live reads as about 60 minutes late."""
    return (datetime.now(ZoneInfo("Europe/London")) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")


def test_breach_report_html_shows_the_timeline_and_prints(sandbox, browser):
    """--out report.html: the page holds the picture under 'Timeline of events' and prints to a PDF of a few pages."""
    out = sandbox.elsewhere / "report.html"
    sandbox.run("breach-report", "--release", "r1", "--scheduled", scheduled_an_hour_ago(), "--out", str(out))
    browser.get(out.as_uri())
    width = browser.execute_script("return document.querySelector('figure svg').getBoundingClientRect().width")
    assert width > 500
    title = browser.execute_script("return document.querySelector('figure svg title').textContent")
    assert re.match(r"^r1: published \d\d:\d\d:\d\d, (59|60|61) min late against \d\d:\d\d:00$", title), title
    pdf = base64.b64decode(browser.print_page())
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "breach-report.pdf").write_bytes(pdf)
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pdf.startswith(b"%PDF") and 1 <= pages <= 4, pages


def test_breach_report_svg_is_the_picture_alone(sandbox):
    """--out timeline.svg writes a standalone SVG: the scheduled line, the go-live and the publication."""
    out = sandbox.elsewhere / "timeline.svg"
    sandbox.run("breach-report", "--release", "r1", "--scheduled", scheduled_an_hour_ago(), "--out", str(out))
    root = ET.fromstring(out.read_text())
    groups = {g.get("class") for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert {"scheduled", "published", "event"} <= groups
