"""The notice to the public (a delay, a correction): written to or removed from every server's live site at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from releaser import remote
from releaser.errors import ReleaserError
from releaser.order import counted

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
        outcomes = group.run(lambda name: ["rm", "-f", str(path(name))])
    else:
        outcomes = group.run(lambda name: remote.write_file_argv(path(name), message))
    doing = "remove the notice" if clear else "publish the notice"
    if outcomes.failed:  # the others do show (or no longer show) it: journaled and said, for the breach report
        done = counted(set(group.hosts) - set(outcomes.failed))
        fleet.record("notice", "failed", detail=f"{message if not clear else '(clear)'}; done on "
                     f"{', '.join(done) or 'no server'}; failed on {outcomes.summary()}")
        where = (f"; {', '.join(done)} {'no longer show' if clear else 'show'} it now, so the servers differ"
                 if done else "")
        raise ReleaserError(f"could not {doing} on {outcomes.summary()}{where}",
                            hint="fix that server (disk, permissions) and run the same command again; "
                                 "see: invoke runbook server-failure")
    fleet.record("notice", "cleared" if clear else "done", detail=message if not clear else "")
