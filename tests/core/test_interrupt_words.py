"""The line a caught Ctrl-C prints says how far the command had come (releaser.interrupts). Pure state, no signals."""

import pytest

from releaser import interrupts


@pytest.fixture
def state():
    saved = dict(interrupts._state)
    yield interrupts._state
    interrupts._state.clear()
    interrupts._state.update(saved)


def test_a_ctrl_c_after_the_switch_ended_says_how_it_ended(state):
    """QA: Ctrl-C as a rollback closed its connections said 'outside any switch' though r1 was live on all 20."""
    interrupts.work_started()
    assert interrupts.interrupted_message() == interrupts.WHILE_WORKING
    interrupts.note_finished("r1 is live again on every server")
    assert interrupts.interrupted_message() == (
        "releaser: interrupted (Ctrl-C) after the switch had ended (r1 is live again on every server), while the "
        "command was closing; to see where every server stands, run: invoke status")


def test_a_ctrl_c_during_a_command_that_only_reads_says_nothing_was_changed(state):
    """`invoke check` interrupted while it reads the servers: no 'outside any switch, run status' worry for on-call;
    once it writes its journal line, that it changed no slot; a later task that writes gets the plain working line."""
    interrupts.task_started(reading="check")
    interrupts.work_started()
    assert interrupts.interrupted_message() == (
        "releaser: interrupted (Ctrl-C) during check, which only reads the servers; nothing was changed")
    interrupts.note_writing()
    assert interrupts.interrupted_message() == (
        "releaser: interrupted (Ctrl-C) while check was writing its journal line; it changed no slot, and some "
        "servers' journals may lack this run")
    interrupts.task_started()  # a later task of the same run, one that writes
    interrupts.work_started()
    assert interrupts.interrupted_message() == interrupts.WHILE_WORKING


def test_a_ctrl_c_while_working_on_this_machine_only_says_no_server_was_asked(state):
    """QA: Ctrl-C while deploy read its bundle (before connecting) said 'outside any switch; to see where every
    server stands, run status', as did one during `build`, which never talks to a server."""
    interrupts.task_started()
    interrupts.work_started()
    with interrupts.working_locally("reading the bundle"):
        assert interrupts.interrupted_message() == (
            "releaser: interrupted (Ctrl-C) while reading the bundle, before any server was asked anything; nothing "
            "was changed")
    assert interrupts.interrupted_message() == interrupts.WHILE_WORKING  # then it connects and works on the servers
    with pytest.raises(KeyboardInterrupt), interrupts.working_locally("reading the bundle"):
        raise KeyboardInterrupt  # the press lands in the block; the task prints its line after the block is left
    assert interrupts.interrupted_message().startswith("releaser: interrupted (Ctrl-C) while reading the bundle, before")
    interrupts.task_started(local="building the bundle")
    interrupts.work_started()
    assert interrupts.interrupted_message().startswith("releaser: interrupted (Ctrl-C) while building the bundle, before")
