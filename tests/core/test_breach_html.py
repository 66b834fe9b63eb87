"""The breach report's timeline picture and printable page: facts in, SVG and HTML text out."""

import re
import xml.etree.ElementTree as ET
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from releaser.breach import gather_breach_facts, render_breach_report
from releaser.breach_html import choose_report_form, markdown_to_html, render_breach_html, render_timeline_svg
from releaser.errors import UsageError

LONDON = ZoneInfo("Europe/London")
SCHEDULED = datetime(2014, 11, 4, 9, 30, tzinfo=LONDON)  # the 135-minute-late release, rebuilt as a journal
SVG = "{http://www.w3.org/2000/svg}"


def event(at: str, action: str, outcome: str, **fields) -> dict:
    return {"id": f"{action}-{at}", "at": at, "action": action, "outcome": outcome, "actor": "ana@stats",
            "releases": {"live": "r7"}, **fields}


EVENTS = [
    event("2014-11-03T16:00:00.000Z", "stage", "done", releases={"staging": "r7"}),
    event("2014-11-04T09:20:00.000Z", "check", "done", releases={"staging": "r7"}, detail="21 PASS"),
    event("2014-11-04T09:30:01.000Z", "go-live", "reverted", detail="GET /healthz -> 502 on web-2"),
    event("2014-11-04T09:50:00.000Z", "notice", "done", detail="Today's figures are delayed"),
    event("2014-11-04T10:40:00.000Z", "go-live", "failed", detail="config error on web-1"),
    event("2014-11-04T11:45:03.000Z", "go-live", "done", switched_at="2014-11-04T11:45:00.000Z"),
]
FACTS = gather_breach_facts("r7", SCHEDULED, EVENTS)


def marks(svg: str) -> list[tuple[str, str]]:
    """(action, outcome) of every event drawn, left to right as written."""
    root = ET.fromstring(svg)
    return [(g.get("data-action"), g.get("data-outcome")) for g in root.iter(f"{SVG}g") if g.get("class") == "event"]


def x_of(svg: str, group: str) -> float:
    root = ET.fromstring(svg)
    line = next(g for g in root.iter(f"{SVG}g") if g.get("class") == group).find(f"{SVG}line")
    return float(line.get("x1"))


def test_svg_shows_each_attempt_the_notice_and_the_publication_after_the_scheduled_time():
    """Three go-live attempts (two failed), the notice, the check; publication drawn right of the dashed 09:30."""
    svg = render_timeline_svg(FACTS)
    assert marks(svg) == [("check", "done"), ("go-live", "reverted"), ("notice", "done"), ("go-live", "failed"),
                          ("go-live", "done")]
    assert x_of(svg, "published") > x_of(svg, "scheduled")
    title = ET.fromstring(svg).find(f"{SVG}title").text
    assert title == "r7: published 11:45:00, 135 min late against 09:30:00"


def test_svg_counts_the_days_before_instead_of_squashing_the_release_day():
    """The stage the afternoon before is named in a note, not drawn."""
    assert "1 earlier event(s) not drawn (from Mon 03 Nov 16:00)" in render_timeline_svg(FACTS)


def test_svg_of_a_release_never_published_says_so():
    """No go-live done: the title says not published, and no publication line is drawn."""
    facts = gather_breach_facts("r7", SCHEDULED, EVENTS[:5])
    svg = render_timeline_svg(facts)
    assert ET.fromstring(svg).find(f"{SVG}title").text == "r7: not published (due 09:30:00)"
    assert 'class="published"' not in svg


def test_svg_and_html_need_no_network():
    """Nothing is fetched: no href, no src, no url(), no script; the only URL is the SVG namespace."""
    page = render_breach_html(render_breach_report(FACTS, metadata={}, publication="PHOF", today=date(2014, 11, 5)), FACTS)
    for text in (render_timeline_svg(FACTS), page):
        assert not any(word in text for word in ("href", "src=", "url(", "<script", "@import"))
        assert text.count("http") == text.count("http://www.w3.org/2000/svg")


def test_html_puts_the_picture_before_the_timeline_table_and_prints_on_a4():
    """The printable page keeps every section of the Markdown, with the figure under 'Timeline of events'."""
    markdown = render_breach_report(FACTS, metadata={"producer": "Public Health England"}, publication="PHOF",
                                    today=date(2014, 11, 5))
    page = render_breach_html(markdown, FACTS)
    assert "@page { size: A4;" in page and "break-inside: avoid" in page
    assert page.index("<p><strong>Timeline of events:</strong></p>") < page.index("<figure") < page.index("<th>time</th>")
    assert "<td>Public Health England</td>" in page and "<h2>4. Corrective actions taken to prevent reoccurrence</h2>" in page
    assert "a delay of 135 minutes" in page


@pytest.mark.parametrize("markdown, expected", [
    pytest.param("# Title", "<h1>Title</h1>\n", id="heading"),
    pytest.param("a **b** <c>\nd", "<p>a <strong>b</strong> &lt;c&gt; d</p>\n", id="paragraph-escaped"),
    pytest.param("- x\n- y", "<ul>\n<li>x</li>\n<li>y</li>\n</ul>\n", id="list"),
    pytest.param("| a | b |\n| --- | --- |\n| 1 \\| 2 | 3 |",
                 "<table>\n<thead><tr><th>a</th><th>b</th></tr></thead>\n<tbody>\n<tr><td>1 | 2</td><td>3</td></tr>\n"
                 "</tbody>\n</table>\n", id="table-with-an-escaped-bar"),
])
def test_markdown_to_html(markdown, expected):
    assert markdown_to_html(markdown) == expected


@pytest.mark.parametrize("requested, out, form", [
    pytest.param(None, None, "markdown", id="printed"),
    pytest.param(None, "report.HTML", "html", id="html-suffix"),
    pytest.param(None, "timeline.svg", "svg", id="svg-suffix"),
    pytest.param("md", "x.html", "markdown", id="format-wins"),
])
def test_choose_report_form(requested, out, form):
    assert choose_report_form(requested, out) == form


def test_an_unknown_format_is_a_usage_error():
    with pytest.raises(UsageError, match="--format 'pdf' is not one of markdown, html, svg"):
        choose_report_form("pdf", None)


def test_journal_text_is_neither_markup_in_the_markdown_nor_in_the_page():
    """QA: a reason with <script>, a javascript: link and **bold** went into the .md raw (a viewer would render
    them); the .md now escapes them and the printable page shows them as typed."""
    typed = "wrong <script>alert(1)</script> [see](javascript:alert(1)) **now**"
    events = [*EVENTS[:2], event("2014-11-04T09:30:01.000Z", "go-live", "reverted", detail=typed), *EVENTS[3:]]
    facts = gather_breach_facts("r7", SCHEDULED, events)
    markdown = render_breach_report(facts, metadata={}, publication="PHOF", today=date(2014, 11, 5))
    assert re.search(r"(?<!\\)<", markdown) is None  # every '<' escaped: no HTML tag starts anywhere
    assert "[see](" not in markdown and " **now**" not in markdown
    assert "wrong \\<script>alert(1)\\</script> \\[see\\](javascript:alert(1)) \\*\\*now\\*\\*" in markdown
    page = render_breach_html(markdown, facts)
    assert "<script>" not in page and "<strong>now</strong>" not in page
    assert "wrong &lt;script&gt;alert(1)&lt;/script&gt; [see](javascript:alert(1)) **now**" in page


def test_journal_text_with_control_characters_is_written_escaped():
    """QA: a server's journal line whose actor held ESC c (a terminal reset) and whose detail held a newline and
    '## ...' went raw into the report: `invoke breach-report` on a terminal reset it, and the line became a heading."""
    typed = "bad figures\n## Injected heading\x1bc"
    events = [*EVENTS[:2], event("2014-11-04T09:30:01.000Z", "go-live", "reverted", detail=typed, actor="ev\x1bcil"),
              *EVENTS[3:]]
    facts = gather_breach_facts("r7", SCHEDULED, events)
    markdown = render_breach_report(facts, metadata={}, publication="PHOF", today=date(2014, 11, 5))
    assert "\x1b" not in markdown and "\n## Injected" not in markdown
    assert "bad figures\\n## Injected heading\\x1bc" in markdown and "ev\\x1bcil" in markdown
    page = render_breach_html(markdown, facts)
    assert "\x1b" not in page and "bad figures\\n## Injected heading\\x1bc" in page
    ET.fromstring(render_timeline_svg(facts))  # well-formed: XML allows no ESC, so an SVG holding one did not open
