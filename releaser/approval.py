"""The user's say on a plan: shown the plan before anything changes, a no changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from releaser.errors import Cancelled
from releaser.slots import Plan

Approve = Callable[[str, Mapping[str, Plan]], bool]


def ask(approve: Approve | None, action: str, plans: Mapping[str, Plan]) -> None:
    """Let the caller see the plan and say no; a no raises Cancelled before anything changed."""
    if approve is not None and not approve(action, plans):
        raise Cancelled(f"{action} cancelled; nothing was changed", hint="pass --yes to go ahead without asking")
