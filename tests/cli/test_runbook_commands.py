"""Every `invoke ...` command in runbooks/ names a real task and real flags, and `invoke runbook` shows them.

The truth about tasks and flags comes from Invoke itself: the collection loaded from tasks.py and the
parser contexts Invoke builds from it, never a list written here. A runbook that names a task or flag
that does not exist fails here, not at 09:25 on release day.
"""

from __future__ import annotations

import importlib
import os
import shlex
import subprocess
import sys

import pytest
from invoke import Collection
from invoke.exceptions import ParseError
from invoke.parser import Parser

from conftest import PROJECT
from releaser.runbooks import invoke_commands, list_runbooks

RUNBOOKS = PROJECT / "runbooks"
SIX = ["config-drift", "escalation", "go-live", "late-data", "late-release", "rollback", "server-failure"]
SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&"}


def runbook_commands() -> list[tuple[str, str]]:
    """(file, command) for every invoke command in every runbook and the index, in order, without repeats."""
    found = []
    for path in sorted(RUNBOOKS.glob("*.md")):
        for command in dict.fromkeys(invoke_commands(path.read_text(encoding="utf-8"))):
            found.append((path.name, command))
    return found


COMMANDS = runbook_commands()
TO_RUN = {(path.name, command) for path in RUNBOOKS.glob("*.md")
          for command in invoke_commands(path.read_text(encoding="utf-8"), inline=False)}


@pytest.fixture(scope="module")
def contexts():
    """Invoke's own parser contexts for tasks.py: task name -> ParserContext (its flags, positionals)."""
    collection = Collection.from_module(importlib.import_module("tasks"))
    return {context.name: context for context in collection.to_contexts()}


def split(command: str) -> list[str]:
    """The argv after `invoke`, as a shell would split it, up to any shell operator."""
    tokens = shlex.split(command, comments=True)
    assert tokens[0] == "invoke", command
    argv = []
    for token in tokens[1:]:
        if token in SHELL_OPERATORS:
            break
        argv.append(token)
    return argv


def tasks_and_flags(argv: list[str], contexts: dict) -> list[tuple[str, list[str]]]:
    """Walk argv the way Invoke does: a task name, its flags (with values) and positionals, maybe another task.

    For a task that does not exist, its flags cannot be told from their values, so every `--x` up to the
    end is taken as a flag of that task.
    """
    found: list[tuple[str, list[str]]] = []
    index = 0
    while index < len(argv):
        name = argv[index]
        index += 1
        flags: list[str] = []
        found.append((name, flags))
        context = contexts.get(name)
        if context is None:
            flags.extend(t.split("=", 1)[0] for t in argv[index:] if t.startswith("-"))
            return found
        positionals = len(context.positional_args)
        while index < len(argv):
            token = argv[index]
            if token.startswith("-"):
                flag = token.split("=", 1)[0]
                flags.append(flag)
                index += 1
                argument = context.flags.get(flag)
                if argument is not None and argument.takes_value and "=" not in token:
                    index += 1  # its value
            elif positionals:
                positionals -= 1
                index += 1
            else:
                break  # the next task
    return found


@pytest.mark.parametrize(("file", "command"), COMMANDS, ids=[f"{f}: {c}" for f, c in COMMANDS])
def test_runbook_command_exists(file, command, contexts):
    """The task exists, each flag is one of its flags, Invoke parses the line, and --env is given where it applies."""
    argv = split(command)
    for task, flags in tasks_and_flags(argv, contexts):
        assert task in contexts, (f"runbooks/{file}: `{command}`: there is no task {task!r} "
                                  f"(tasks are: {', '.join(sorted(contexts))})")
        known = contexts[task].flags
        unknown = [flag for flag in flags if flag not in known and flag not in contexts[task].inverse_flags]
        assert not unknown, (f"runbooks/{file}: `{command}`: task {task!r} has no flag {', '.join(unknown)} "
                             f"(its flags are: {', '.join(sorted(f for f in known if f.startswith('--')))})")
        # A command to run (in a code block, or inline with arguments) must say where; prose may name a task bare.
        if "--env" in known and ((file, command) in TO_RUN or len(argv) > 1):
            assert "--env" in flags or "-e" in flags, (
                f"runbooks/{file}: `{command}`: without --env it would act on the local sandbox, not the real servers")
    try:
        Parser(contexts=list(contexts.values())).parse_argv(argv)
    except ParseError as error:
        pytest.fail(f"runbooks/{file}: `{command}`: Invoke cannot parse it: {error}")


def test_the_checker_catches_wrong_tasks_and_flags(contexts):
    """The walk above tells flags from values and positionals from the next task, as Invoke does."""
    assert tasks_and_flags(split('invoke rollback --yes --reason "x y" --nope'), contexts) == [
        ("rollback", ["--yes", "--reason", "--nope"])]
    assert tasks_and_flags(split("invoke runbook rollback status --json"), contexts) == [
        ("runbook", []), ("status", ["--json"])]
    assert tasks_and_flags(split("invoke nosuch --env x --bad | head"), contexts) == [("nosuch", ["--env", "--bad"])]
    assert "--nope" not in contexts["rollback"].flags and "nosuch" not in contexts


def test_the_runbooks_name_commands_at_all():
    assert len(COMMANDS) > 30
    assert {f for f, _ in COMMANDS} >= {f"{name}.md" for name in SIX}


# ---- `invoke runbook` as a user meets it ----


def invoke(*args):
    environ = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "RELEASER_ACTOR": "cli@tests"}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=PROJECT, capture_output=True, text=True,
                          timeout=60, env=environ, stdin=subprocess.DEVNULL)


def test_runbook_list_lists_all_six_with_titles():
    done = invoke("runbook", "list")
    assert done.returncode == 0, done.stderr
    for runbook in list_runbooks(RUNBOOKS):
        assert runbook.name in done.stdout and runbook.title in done.stdout
        assert f"invoke runbook {runbook.name}" in done.stdout
    assert sorted(r.name for r in list_runbooks(RUNBOOKS)) == SIX


@pytest.mark.xfail(strict=True, reason="Invoke 2.2 makes a positional argument required even with default None, "
                                       "so bare `invoke runbook` is a parse error; the list is `invoke runbook list`")
def test_bare_runbook_lists_them():
    done = invoke("runbook")
    assert done.returncode == 0 and all(name in done.stdout for name in SIX)


def test_runbook_help_shows_usage_and_the_list():
    done = invoke("runbook", "--help")
    assert done.returncode == 0
    assert "invoke runbook NAME" in done.stderr and "invoke runbook list" in done.stderr
    assert all(name in done.stdout for name in SIX)


def test_runbook_rollback_prints_its_steps():
    done = invoke("runbook", "rollback")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Rollback: put the previous release back live on every server" in out
    assert "When to use this:" in out
    assert "invoke status --env production" in out
    assert 'invoke rollback --env production --yes --reason "live health check failing after go-live"' in out
    assert "NO BACKUP" in out and "MIXED" in out
    assert "```" not in out and "**" not in out  # rendered, not raw Markdown


def test_runbook_with_an_unknown_name_names_the_known_ones():
    done = invoke("runbook", "nosuch")
    assert done.returncode == 1
    assert f"releaser: no runbook named 'nosuch'; runbooks are: {', '.join(SIX)}" in done.stderr
    assert done.stdout == ""


def test_a_runbook_name_never_runs_a_task():
    """`invoke runbook rollback` shows the runbook; the name is not taken as the rollback task."""
    done = invoke("runbook", "go-live")
    assert done.returncode == 0 and "Go-live: publish a staged release" in done.stdout
    assert "go-live at" not in done.stderr and "plan" not in done.stderr


# ---- the late-release runbook, and one answer to "who decides a delay notice" ----

WHO_DECIDES = ("**Who decides a delay notice:** the release manager. If they cannot be reached within 5 minutes, the next\n"
               "person on the escalation route decides (`invoke runbook escalation`); whoever publishes it tells the release\n"
               "manager.")


def test_late_release_runbook_goes_notice_fix_rehearse_publish_clear_report(contexts):
    """Its commands come in the order a late morning needs, the fix under a new id, the publication forced."""
    commands = invoke_commands((RUNBOOKS / "late-release.md").read_text(encoding="utf-8"), inline=False)
    steps = [
        lambda c: c.startswith("invoke notice") and "--message" in c,
        lambda c: c.startswith("invoke build") and "--release-id 2026-12-phof-fix1" in c,
        lambda c: c.startswith("invoke deploy --stage") and "2026-12-phof-fix1" in c,
        lambda c: c.startswith("invoke rehearse"),
        lambda c: c.startswith("invoke go-live") and "--now" in c and "--force" in c and "--reason" in c,
        lambda c: c.startswith("invoke notice") and "--clear" in c,
        lambda c: c.startswith("invoke breach-report") and "--scheduled" in c,
    ]
    positions = [next((i for i, c in enumerate(commands) if step(c)), None) for step in steps]
    assert None not in positions, (positions, commands)
    assert positions == sorted(positions), commands
    force = [flag for _, flags in tasks_and_flags(split(commands[positions[4]]), contexts) for flag in flags]
    assert {"--now", "--force", "--reason", "--env"} <= set(force)


@pytest.mark.parametrize("name", ["go-live", "rollback", "escalation", "server-failure", "late-release"])
def test_every_runbook_that_publishes_a_notice_says_the_same_who_decides(name):
    """After a rollback, at T, with a server down: one rule for who decides the delay notice, word for word."""
    text = (RUNBOOKS / f"{name}.md").read_text(encoding="utf-8")
    assert WHO_DECIDES in text
    assert "invoke runbook late-release" in text or name == "late-release"


def test_the_escalation_table_agrees_on_the_notice():
    text = (RUNBOOKS / "escalation.md").read_text(encoding="utf-8")
    [row] = [line for line in text.splitlines() if line.startswith("| delay the publication")]
    assert "also after a rollback" in row and "the release manager" in row and "next person on the route" in row
