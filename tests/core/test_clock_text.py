"""How messages say a number of seconds: a deadline computed as 10.1553 s is said as 10.2 s."""

import pytest

from releaser.clock import seconds_text


@pytest.mark.parametrize("seconds, said", [(10.1553, "10.2"), (10, "10"), (600.0, "600"), (2.5, "2.5"),
                                           (0.05, "0.05"), (0.25, "0.25"), (0.3, "0.3")])
def test_seconds_are_said_to_a_tenth_or_two_digits_under_a_second(seconds, said):
    assert seconds_text(seconds) == said
