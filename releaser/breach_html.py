"""The breach report as a picture and as a page that prints: an SVG timeline, and HTML around the Markdown. Pure.

The words come from one place, `breach.render_breach_report`; this module only turns its Markdown (a small,
known subset: headings, paragraphs, bold, lists, tables) into HTML and puts the timeline picture beside the
timeline table. The SVG is drawn here from the facts, with no font, script or image from anywhere else,
so the report opens and prints on a machine with no network.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from releaser.breach import FAILED_OUTCOMES, BreachFacts
from releaser.free_text import escaped_text

WIDTH, LEFT, RIGHT = 900, 130, 30
LANES = ("go-live", "notices", "other")  # one row each: attempts (and rollbacks), public notices, everything else
LANE_OF = {"go-live": "go-live", "rollback": "go-live", "notice": "notices"}
LANE_TITLES = {"go-live": "go-live attempts", "notices": "notices", "other": "other actions"}
STEPS_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)
LOOK_BACK = timedelta(hours=12)  # events longer before the scheduled time are counted, not drawn
COLOURS = {"done": "#1a7f37", "failed": "#b42318", "notice": "#9a6700", "other": "#57606a", "scheduled": "#1f2328"}

PRINT_STYLE = """
@page { size: A4; margin: 18mm 16mm; }
body { font-family: Georgia, 'Times New Roman', serif; color: #111; max-width: 190mm; margin: 0 auto; line-height: 1.4; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 1.4rem; border-bottom: 1px solid #999; }
table { border-collapse: collapse; width: 100%; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #999; padding: 0.2rem 0.4rem; text-align: left; vertical-align: top; }
th { background: #eee; }
figure { margin: 0.8rem 0; } figure svg { width: 100%; height: auto; }
figcaption { font-size: 0.8rem; color: #444; }
table, figure, tr { break-inside: avoid; }
@media screen { body { margin: 2rem auto; padding: 0 1rem; } }
""".strip()


def render_timeline_svg(facts: BreachFacts) -> str:
    """Draw the release day: the scheduled time, each go-live attempt, notices, other actions and the publication.

    Time runs left to right in the scheduled time's zone. Events more than 12 hours before the scheduled
    time are counted in a note rather than drawn, so the day itself stays readable.
    """
    zone = facts.scheduled.tzinfo or ZoneInfo("UTC")
    events = [(_moment(e), e) for e in facts.timeline]
    drawn = [(m, e) for m, e in events if m >= facts.scheduled - LOOK_BACK]
    earlier = len(events) - len(drawn)
    moments = [facts.scheduled] + [m for m, _ in drawn] + ([facts.actual] if facts.actual else [])
    start, end = min(moments), max(moments)
    span = max((end - start).total_seconds(), 600.0)
    start, end = start - timedelta(seconds=span * 0.06), end + timedelta(seconds=span * 0.08)
    lane_y = {lane: 96 + 46 * i for i, lane in enumerate(LANES)}
    axis_y = lane_y[LANES[-1]] + 40
    height = axis_y + 60

    def x(moment: datetime) -> float:
        return round(LEFT + (WIDTH - LEFT - RIGHT) * (moment - start).total_seconds() / (end - start).total_seconds(), 1)

    late = facts.minutes_late
    title = (f"{facts.release_id}: not published (due {_clock(facts.scheduled, zone)})" if facts.actual is None else
             f"{facts.release_id}: published {_clock(facts.actual, zone)}, "
             f"{_how_late(late)} against {_clock(facts.scheduled, zone)}")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'role="img" aria-labelledby="timeline-title timeline-desc" font-family="sans-serif" font-size="12">',
        f'<title id="timeline-title">{_e(title)}</title>',
        f'<desc id="timeline-desc">Timeline of release {_e(facts.release_id)} on {facts.scheduled:%d %B %Y}, times in '
        f'{_e(str(zone))}: {len(drawn)} events drawn.</desc>',
        '<rect width="100%" height="100%" fill="#fff"/>',
        f'<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{_e(title)}</text>',
    ]
    if earlier:
        parts.append(f'<text x="{LEFT}" y="44" fill="{COLOURS["other"]}">{earlier} earlier event(s) not drawn '
                     f'(from {_clock(min(m for m, _ in events), zone, day=True)}); see the table</text>')
    for lane in LANES:
        y = lane_y[lane]
        parts.append(f'<text x="{LEFT - 10}" y="{y + 4}" text-anchor="end" fill="{COLOURS["other"]}">{LANE_TITLES[lane]}</text>')
        parts.append(f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" stroke="#d0d7de"/>')
    parts.append(f'<line x1="{LEFT}" y1="{axis_y}" x2="{WIDTH - RIGHT}" y2="{axis_y}" stroke="#57606a"/>')
    for tick in _ticks(start, end, zone):
        parts.append(f'<line x1="{x(tick)}" y1="{axis_y}" x2="{x(tick)}" y2="{axis_y + 5}" stroke="#57606a"/>')
        parts.append(f'<text x="{x(tick)}" y="{axis_y + 18}" text-anchor="middle">{tick.astimezone(zone):%H:%M}</text>')
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{axis_y + 36}" text-anchor="end" fill="{COLOURS["other"]}">'
                 f'{facts.scheduled.astimezone(zone):%a %d %b %Y}, {_e(str(zone))}</text>')
    top, bottom = lane_y[LANES[0]] - 30, axis_y

    def label(moment: datetime) -> str:  # labels right of their line, or left of it in the chart's right half
        middle = x(moment) > (LEFT + WIDTH - RIGHT) / 2
        return f'x="{x(moment) + (-5 if middle else 5)}" y="{top + 4}" text-anchor="{"end" if middle else "start"}"'

    parts.append(f'<g class="scheduled"><line x1="{x(facts.scheduled)}" y1="{top - 8}" x2="{x(facts.scheduled)}" '
                 f'y2="{bottom}" stroke="{COLOURS["scheduled"]}" stroke-dasharray="5 4"/>'
                 f'<text {label(facts.scheduled)}>scheduled {_clock(facts.scheduled, zone)}</text></g>')
    if facts.actual is not None:
        parts.append(f'<g class="published"><line x1="{x(facts.actual)}" y1="{top - 8}" x2="{x(facts.actual)}" y2="{bottom}" '
                     f'stroke="{COLOURS["done"]}" stroke-width="3"/><text {label(facts.actual)} '
                     f'fill="{COLOURS["done"]}" font-weight="bold">published {_clock(facts.actual, zone)}</text></g>')
    for moment, event in drawn:
        parts.append(_mark(event, x(moment), lane_y[LANE_OF.get(event.get("action", ""), "other")], moment, zone))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def render_breach_html(markdown: str, facts: BreachFacts) -> str:
    """A standalone HTML page of the Markdown report, with the timeline picture before the timeline table.

    Everything is inline (style and SVG): it prints on A4 as it is, with no network.
    """
    body = markdown_to_html(markdown)
    figure = ('<figure class="timeline">\n' + render_timeline_svg(facts) +
              f"<figcaption>Timeline of {_e(facts.release_id)}: dashed, the pre-announced time; green, the "
              "publication; circles, go-live attempts (red: failed); diamonds, notices.</figcaption>\n</figure>\n")
    anchor = "<p><strong>Timeline of events:</strong></p>"
    body = body.replace(anchor, anchor + "\n" + figure, 1) if anchor in body else body + figure
    return ("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>Breach report: {_e(facts.release_id)}</title>\n<style>\n{PRINT_STYLE}\n</style>\n</head>\n"
            f"<body>\n{body}</body>\n</html>\n")


def markdown_to_html(markdown: str) -> str:
    """HTML for the Markdown the breach report uses: # headings, paragraphs, **bold**, - lists and | tables."""
    out: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif heading := re.match(r"^(#{1,6}) (.*)$", line):
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            i += 1
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            out.append(_table(block))
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>\n" + "\n".join(items) + "\n</ul>")
        else:
            paragraph = []
            while i < len(lines) and lines[i].strip() and not re.match(r"^(#{1,6} |\||- )", lines[i]):
                paragraph.append(lines[i])
                i += 1
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
    return "\n".join(out) + "\n"


# ---- private helpers ----

def _mark(event: dict, x: float, y: int, moment: datetime, zone) -> str:
    action, outcome = event.get("action", ""), event.get("outcome", "")
    failed = outcome in FAILED_OUTCOMES
    colour = COLOURS["failed"] if failed else COLOURS["notice"] if action == "notice" else \
        COLOURS["done"] if action in ("go-live", "rollback") else COLOURS["other"]
    label = f"{action} {outcome}".strip()
    tip = f"{_clock(moment, zone)} {label} by {event.get('actor', '?')}: {event.get('detail') or event.get('reason') or ''}"
    if action == "notice":
        shape = f'<path d="M {x} {y - 7} L {x + 7} {y} L {x} {y + 7} L {x - 7} {y} Z" fill="{colour}"/>'
    elif action in ("go-live", "rollback"):
        shape = f'<circle cx="{x}" cy="{y}" r="6" fill="{colour if failed or outcome == "done" else "#fff"}" stroke="{colour}" stroke-width="2"/>'
    else:
        shape = f'<rect x="{x - 3}" y="{y - 7}" width="6" height="14" fill="{colour}"/>'
    text = f'<text x="{x}" y="{y - 11}" text-anchor="middle" font-size="10" fill="{colour}">{_e(label)}</text>'
    return f'<g class="event" data-action="{_e(action)}" data-outcome="{_e(outcome)}"><title>{_e(tip)}</title>{shape}{text}</g>'


def _ticks(start: datetime, end: datetime, zone) -> list[datetime]:
    minutes = (end - start).total_seconds() / 60
    step = next((s for s in STEPS_MINUTES if minutes / s <= 9), STEPS_MINUTES[-1])
    local = start.astimezone(zone)
    first = local.replace(second=0, microsecond=0, minute=0) if step >= 60 else local.replace(second=0, microsecond=0)
    ticks, moment = [], first
    while moment <= end:
        if moment >= start and (moment.hour * 60 + moment.minute) % step == 0:
            ticks.append(moment)
        moment += timedelta(minutes=1 if step < 60 else 60)
    return ticks


def _table(rows: list[str]) -> str:
    cells = [_cells(row) for row in rows if not re.match(r"^\|[\s\-|:]+\|$", row)]
    head, body = cells[0], cells[1:]
    parts = ["<table>", "<thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead>", "<tbody>"]
    parts += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in body]
    return "\n".join(parts + ["</tbody>", "</table>"])


def _cells(row: str) -> list[str]:
    inner = row.strip()[1:-1] if row.strip().endswith("|") else row.strip()[1:]
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", inner)]


def _inline(text: str) -> str:
    """A line of the report's Markdown as HTML: its **bold**, and what breach._md escaped shown as typed."""
    parts = re.split(r"(?<!\\)\*\*(.+?)(?<!\\)\*\*", text)  # odd parts were between ** and **
    return "".join(f"<strong>{_typed(part)}</strong>" if index % 2 else _typed(part) for index, part in enumerate(parts))


def _typed(text: str) -> str:
    return _e(re.sub(r"\\([\\<\[\]`*])", r"\1", text))


def _e(text: str) -> str:
    """Text for HTML and SVG: markup escaped, and a control character written as its escape (\\x1b), which XML
    does not allow at all (an SVG holding one does not open)."""
    return html.escape(escaped_text(str(text)), quote=True)


def _moment(event: dict) -> datetime:
    return datetime.fromisoformat((event.get("switched_at") if event.get("action") == "go-live" and event.get("outcome") == "done"
                                   and event.get("switched_at") else event["at"]).replace("Z", "+00:00"))


def _clock(moment: datetime, zone, *, day: bool = False) -> str:
    return moment.astimezone(zone).strftime("%a %d %b %H:%M" if day else "%H:%M:%S")


def _how_late(minutes: int) -> str:
    return f"{minutes} min late" if minutes > 0 else f"{-minutes} min early" if minutes < 0 else "on time"


FORMS = ("markdown", "html", "svg")


def choose_report_form(requested: str | None, out: str | None) -> str:
    """What `breach-report` writes: --format if given, else from --out's suffix (.html, .svg), else Markdown.

    Raises UsageError for a format it does not know.
    """
    from releaser.errors import UsageError

    if requested:
        form = {"md": "markdown"}.get(requested.lower(), requested.lower())
        if form not in FORMS:
            raise UsageError(f"--format {requested!r} is not one of {', '.join(FORMS)}", hint="e.g. --format html")
        return form
    suffix = (out or "").lower().rsplit(".", 1)[-1] if out and "." in out else ""
    return {"html": "html", "htm": "html", "svg": "svg"}.get(suffix, "markdown")
