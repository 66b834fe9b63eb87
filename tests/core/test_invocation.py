"""The commands messages suggest, written as the person ran releaser (releaser/invocation.py)."""

from releaser.invocation import Invocation, program_name, suggested

HINT = "run: invoke status, then follow: invoke runbook rollback (section MIXED)"


def test_plain_invoke_on_the_default_environment_is_left_as_written():
    assert suggested(HINT, Invocation("invoke", None)) == HINT
    assert suggested(HINT, Invocation("invoke", "local")) == HINT


def test_another_environment_is_added_to_the_tasks_that_read_one():
    assert suggested(HINT, Invocation("invoke", "production")) == (
        "run: invoke status --env production, then follow: invoke runbook rollback (section MIXED)")


def test_the_installed_command_names_itself_and_quotes_a_path():
    got = suggested("free it with: invoke unlock --reason TEXT", Invocation("releaser", "/home/on call/prod.toml"))
    assert got == "free it with: releaser unlock --env '/home/on call/prod.toml' --reason TEXT"


def test_a_command_with_its_own_env_keeps_it():
    text = "See: invoke status --env staging; then invoke history"
    assert suggested(text, Invocation("invoke", "production")) == (
        "See: invoke status --env staging; then invoke history --env production")


def test_words_that_are_not_tasks_stay():
    text = "Invoke's parser; invoke --dry would not stop it; invoke statuses"
    assert suggested(text, Invocation("releaser", "production")) == text


def test_the_program_is_read_from_the_script_name():
    assert program_name("/usr/local/bin/releaser") == "releaser"
    assert program_name(".venv/bin/invoke") == "invoke"
    assert program_name("/usr/bin/inv") == "invoke"


def test_the_tasks_said_to_read_an_environment_are_those_with_an_env_flag():
    """ENV_TASKS is written out (invocation imports no task code); it must stay the tasks that take --env."""
    import inspect

    from invoke import Collection

    from releaser import cli_tasks
    from releaser.invocation import ENV_TASKS, OTHER_TASKS

    tasks = Collection.from_module(cli_tasks)
    with_env = {name for name in tasks.task_names if "env" in inspect.signature(tasks[name].body).parameters}
    assert set(ENV_TASKS) == with_env
    assert set(OTHER_TASKS) == set(tasks.task_names) - with_env


def test_status_of_a_server_that_is_down_suggests_the_command_as_it_was_run(capsys, monkeypatch):
    """The DOWN row's error cell names the program and --env too, like the warnings under the table."""
    from releaser import invocation, ui
    from releaser.fleet import ServerReport

    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal: the table prints as a list, nothing cut
    monkeypatch.setattr(invocation, "_current", [Invocation("releaser", "/srv/prod.toml")])
    ui.show_status("prod", [ServerReport("web-1", None, error="web-1: ssh failed; see: invoke runbook server-failure")])
    out = capsys.readouterr().out
    assert "see: releaser runbook server-failure" in out and "invoke runbook" not in out


def test_an_env_path_with_a_control_character_is_suggested_as_bash_reads_it_back():
    """QA: --env $'/tmp/p\\e[2J.toml' was suggested as --env '/tmp/p\\x1b[2J.toml' once the ESC was escaped for the
    terminal, which in single quotes names another file: it is now written with bash's $'...' escapes."""
    got = suggested("free it with: invoke unlock --reason TEXT", Invocation("invoke", "/tmp/it's\x1b[2J.toml"))
    assert got == "free it with: invoke unlock --env $'/tmp/it\\'s\\x1b[2J.toml' --reason TEXT"
