"""Servers are listed as people count them, in every message and journal line (releaser.order)."""

from hypothesis import given, strategies as st

from releaser.group import summary
from releaser.order import counted, counting_key


def test_twenty_servers_are_listed_as_counted():
    names = [f"web-{n}" for n in range(20, 0, -1)]
    assert counted(names) == [f"web-{n}" for n in range(1, 21)]


def test_names_without_numbers_and_mixed_ones_still_sort():
    assert counted(["db", "web-10", "web-2", "app-1", "web"]) == ["app-1", "db", "web", "web-2", "web-10"]
    assert counted(["eu-west-10a", "eu-west-9b", "eu-west-9a"]) == ["eu-west-9a", "eu-west-9b", "eu-west-10a"]


def test_an_error_names_failed_servers_in_counted_order():
    assert summary({"web-10": "down", "web-2": "down"}) == "web-2 (down); web-10 (down)"


@given(st.lists(st.from_regex(r"[a-z]{1,3}(-[0-9]{1,3}){0,2}", fullmatch=True), max_size=12))
def test_any_server_names_sort_without_error_and_keep_every_name(names):
    ordered = counted(names)
    assert sorted(ordered) == sorted(names)
    assert all(counting_key(a) <= counting_key(b) for a, b in zip(ordered, ordered[1:]))
