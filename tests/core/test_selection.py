"""`--hosts`: which servers a read-only task reads, and the refusal on a switch."""

import pytest

from checkenv import environment
from releaser.errors import ConfigError, PlanRefused
from releaser.selection import events_on, parse_hosts, refuse_hosts, select_servers


@pytest.mark.parametrize("text, names", [
    pytest.param(None, (), id="no-flag"),
    pytest.param("web-2,web-1", ("web-2", "web-1"), id="order-kept"),
    pytest.param(" web-1 , web-1,", ("web-1",), id="spaces-repeats-and-a-trailing-comma"),
])
def test_parse_hosts(text, names):
    assert parse_hosts(text) == names


def test_an_empty_hosts_value_is_refused():
    """--hosts ',' names nothing: a usage error, not every server."""
    with pytest.raises(ConfigError, match="names no server"):
        parse_hosts(" , ")


def test_select_servers_keeps_the_files_order_and_the_rest_of_the_environment():
    """--hosts web-2,web-1 reads web-1 then web-2, as the file lists them; nothing else changes."""
    env = environment()
    chosen = select_servers(env, "web-2,web-1")
    assert [s.name for s in chosen.servers] == ["web-1", "web-2"]
    assert [s.name for s in select_servers(env, "web-2").servers] == ["web-2"]
    assert select_servers(env, None) is env and chosen.publications == env.publications


def test_an_unknown_server_names_the_known_ones():
    """A typo in --hosts says which servers the environment has (exit 2)."""
    with pytest.raises(ConfigError) as error:
        select_servers(environment(), "web-1,web-9")
    assert "has no server 'web-9'" in str(error.value) and "its servers are: web-1, web-2" in str(error.value)
    assert error.value.exit_code == 2


def test_a_switch_refuses_hosts_and_says_why():
    """go-live --hosts is refused (exit 3) because a switch is all or none."""
    refuse_hosts("go-live", None)
    with pytest.raises(PlanRefused, match="go-live does not take --hosts: a switch moves every server or none") as error:
        refuse_hosts("go-live", "web-1")
    assert error.value.exit_code == 3


def test_events_on_keeps_what_the_named_servers_hold_or_name():
    """An event counts for web-1 when web-1's journal holds it or the event lists web-1."""
    events = [{"id": "a", "seen_on": ["web-1", "web-2"]}, {"id": "b", "seen_on": ["web-2"]},
              {"id": "c", "seen_on": [], "servers": ["web-1"]}, {"id": "d", "seen_on": []}]
    assert [e["id"] for e in events_on(events, "web-1")] == ["a", "c"]
    assert events_on(events, None) == events
