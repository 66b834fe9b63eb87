"""The notice to the public (a delay, a correction): written to or removed from every server's live site at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from releaser import remote

if TYPE_CHECKING:
    from releaser.fleet import Fleet


def publish_notice(fleet: Fleet, message: str, *, clear: bool = False) -> None:
    """Show (or with clear=True remove) a notice to the public on every server's live site.

    Every server or an error naming the ones that failed; the text reaches servers as an argument,
    never through a shell, and the web server shows it escaped.
    """
    group = fleet.group
    group.require_all_reachable("notice")
    path = lambda name: group.root(name) / fleet.environment.notice_file
    if clear:
        group.run_everywhere(lambda name: ["rm", "-f", str(path(name))], "remove the notice")
    else:
        group.run_everywhere(lambda name: remote.write_file_argv(path(name), message), "publish the notice")
    fleet.record("notice", "cleared" if clear else "done", detail=message if not clear else "")
