"""The environment's hooks (after_unpack, after_switch): run on one server with the release in variables."""

from __future__ import annotations

from pathlib import PurePosixPath

from releaser.config import Environment
from releaser.transport import Host


def run_hook(host: Host, environment: Environment, hook: str, *, release: str | None, slot: str,
             root: PurePosixPath, timeout: float | None = None) -> str | None:
    """Run a configured hook on one server; return None on success (or no hook), else why it failed.

    The release id, slot and root reach the hook as RELEASER_* environment variables, never pasted into
    its command line.
    """
    command = getattr(environment.hooks, hook)
    if not command:
        return None
    done = host.run(["sh", "-c", command], env={
        "RELEASER_RELEASE_ID": release or "", "RELEASER_SLOT": slot, "RELEASER_ROOT": str(root),
    }, timeout=timeout)
    if done.ok:
        return None
    output = (done.stderr or done.stdout).strip().splitlines()
    return f"{hook.replace('_', '-')} hook exited {done.exit_code}: {' | '.join(output[-3:]) or 'no output'}"
