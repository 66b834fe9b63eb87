"""Runbooks: listing with titles, finding one by name, and pulling `invoke ...` commands out of Markdown."""

import textwrap

import pytest

from conftest import PROJECT
from releaser.errors import ReleaserError
from releaser.runbooks import find_runbook, invoke_commands, list_runbooks, title_of

RUNBOOKS = PROJECT / "runbooks"
SIX = ["config-drift", "escalation", "go-live", "late-data", "late-release", "rollback", "server-failure"]


@pytest.fixture
def shelf(tmp_path):
    """A runbooks directory with two runbooks, an index and a file that is not Markdown."""
    (tmp_path / "rollback.md").write_text("# Rollback: put it back\n\nSteps.\n")
    (tmp_path / "alpha.md").write_text("```bash\n# not a heading\n```\n\nintro\n\n## Alpha runbook ##\n")
    (tmp_path / "README.md").write_text("# Runbooks index\n")
    (tmp_path / "notes.txt").write_text("# not a runbook\n")
    return tmp_path


def test_lists_markdown_runbooks_sorted_with_their_first_heading(shelf):
    """Each *.md but README is a runbook; its title is the first heading outside code."""
    assert [(r.name, r.title) for r in list_runbooks(shelf)] == [("alpha", "Alpha runbook"), ("rollback", "Rollback: put it back")]


def test_a_runbook_without_a_heading_is_titled_by_its_name(tmp_path):
    (tmp_path / "bare.md").write_text("just text\n")
    assert [r.title for r in list_runbooks(tmp_path)] == ["bare"]


def test_missing_directory_lists_nothing(tmp_path):
    assert list_runbooks(tmp_path / "nowhere") == []


def test_finds_a_runbook_by_name_with_or_without_md(shelf):
    assert find_runbook(shelf, "rollback").read().startswith("# Rollback")
    assert find_runbook(shelf, "rollback.md").name == "rollback"


@pytest.mark.parametrize("name", ["nosuch", "README", "../rollback", "notes"])
def test_an_unknown_name_lists_the_known_runbooks(shelf, name):
    """A typo (or a path, or the index) is refused with the names that exist."""
    with pytest.raises(ReleaserError) as caught:
        find_runbook(shelf, name)
    assert type(caught.value) is ReleaserError and caught.value.exit_code == 1
    assert caught.value.what == f"no runbook named {name!r}"
    assert caught.value.hint == "runbooks are: alpha, rollback"


def test_an_empty_directory_says_so(tmp_path):
    with pytest.raises(ReleaserError, match="runbooks are: none"):
        find_runbook(tmp_path, "rollback")


def test_title_ignores_headings_in_code_blocks():
    assert title_of("~~~\n# comment\n~~~\n# Real\n") == "Real"
    assert title_of("no heading", default="x") == "x"


def test_extracts_commands_from_fenced_blocks_and_inline_code():
    markdown = textwrap.dedent("""\
        # Title

        Run `invoke status --env production` first, then ``invoke check --only deadline``.
        Not a command: `invoker`, `echo invoke`, or invoke status in plain text.

        1. Roll back:

           ```bash
           invoke rollback --env production --yes --reason "wrong figures"
           $ invoke history --env production
           .venv/bin/invoke status --json
           echo done
           ```

        10. Deep in a list, indented four:

            ~~~
            invoke go-live --env production \\
              --now --force --reason "late"
            ~~~

        ```text
        releaser: see: invoke runbook rollback
        `invoke notice --clear` in a code block is not inline code
        ```
        """)
    assert invoke_commands(markdown) == [
        "invoke status --env production",
        "invoke check --only deadline",
        'invoke rollback --env production --yes --reason "wrong figures"',
        "invoke history --env production",
        "invoke status --json",
        'invoke go-live --env production --now --force --reason "late"',
    ]


def test_commands_to_run_only_from_code_blocks():
    markdown = "See `invoke status`.\n\n```bash\ninvoke status --env production\n```\n"
    assert invoke_commands(markdown, inline=False) == ["invoke status --env production"]
    assert invoke_commands(markdown) == ["invoke status", "invoke status --env production"]


def test_no_commands_in_plain_text():
    assert invoke_commands("nothing to run here\n\n    indented text\n") == []


# ---- the shipped runbooks ----


def test_the_six_runbooks_are_shipped():
    assert [r.name for r in list_runbooks(RUNBOOKS)] == SIX
    index = (RUNBOOKS / "README.md").read_text()
    assert all(f"]({name}.md)" in index for name in SIX)


@pytest.mark.parametrize("name", SIX)
def test_each_runbook_can_be_followed_under_stress(name):
    """A one-line 'when to use this', numbered steps, commands, who to call, when to notify and report."""
    text = find_runbook(RUNBOOKS, name).read()
    commands = invoke_commands(text)
    assert "**When to use this:**" in text.split("\n## ")[0]
    assert "\n1. " in text and "\n2. " in text
    assert any(c.startswith("invoke status") for c in commands) or name == "late-data"
    assert any(c.startswith("invoke notice") and "--message" in c for c in commands), "when to publish a delay notice"
    assert any(c.startswith("invoke breach-report") for c in commands), "when to write a breach report"
    assert "[people]" in text or "invoke runbook escalation" in text, "who to call"


def test_server_failure_gives_a_decision_rule_tied_to_the_code_of_practice():
    text = find_runbook(RUNBOOKS, "server-failure").read()
    assert "## The decision rule" in text
    assert "Publish from the rest" in text and "Delay and notify" in text
    assert "early" in text and "late" in text.lower() and "pre-announced time" in text


def test_rollback_explains_no_backup_and_mixed():
    text = find_runbook(RUNBOOKS, "rollback").read()
    assert "## NO BACKUP" in text and "## MIXED" in text
    assert "every `backup` agrees" in text
