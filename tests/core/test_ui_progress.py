"""The upload progress lines: one line per server, whatever the terminal's width, with bytes and time left."""

from io import StringIO

from rich.console import Console

from releaser import ui
from releaser.shipping import Transfer


def rendered(lines: dict, width: int, now: float = 12.0) -> list[str]:
    console = Console(file=StringIO(), width=width, color_system=None)
    console.print(ui.progress_table(lines, now, width))
    return console.file.getvalue().splitlines()


def test_an_upload_line_fits_an_80_column_terminal_with_its_rate_and_time_left():
    """QA: at 80 columns every server's line wrapped in two, and 20 servers overflowed a 25-row terminal."""
    lines = {f"web-{i}": Transfer("uploading r3", 149_200_000, 200_100_000, started=10.0) for i in range(1, 21)}
    shown = rendered(lines, 80)
    assert len(shown) == 20
    assert all(line.rstrip().endswith("MB/s, 1 s left") and len(line.rstrip()) <= 80 for line in shown), shown
    assert all("149.2 MB of 200.1 MB" in line for line in shown)


def test_a_wide_terminal_keeps_the_full_bar_and_a_narrow_one_drops_it_before_the_words():
    lines = {"web-1": Transfer("uploading r3", 100_000_000, 200_000_000, started=10.0), "web-2": "waiting"}
    wide, narrow = rendered(lines, 120), rendered(lines, 60)
    assert wide[0].index("uploading") == len("web-1  ") + ui.BAR_WIDTH + 1 and wide[1].split() == ["web-2", "waiting"]
    assert "━" not in narrow[0] and narrow[0].split()[0] == "web-1" and narrow[0].rstrip().endswith("s left")
