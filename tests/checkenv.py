"""Builders for the pure check tests: an environment with the issue-5 settings, and the limits a run judges by."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from conftest import free_ports
from releaser.checks import Limits
from releaser.config import Environment

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)  # Monday; phof is due Tue 1 Dec 09:30 GMT
ACTOR = "ana@stats"


def environment(**changes) -> Environment:
    """A two-server environment with publications, people, smoke checks and thresholds; `changes` replace sections."""
    data = {
        "transport": "local",
        "servers": [
            {"name": "web-1", "root": "/srv/web-1", "live_url": "http://127.0.0.1:1", "staging_url": "http://127.0.0.1:2"},
            {"name": "web-2", "root": "/srv/web-2", "live_url": "http://127.0.0.1:3", "staging_url": "http://127.0.0.1:4"},
        ],
        "publications": [
            {"name": "phof", "rule": "first Tuesday of every month at 09:30", "deadline": "Wednesday before at 17:00"},
            {"name": "excess-mortality", "rule": "third Thursday of every month at 14:00",
             "deadline": "3 working days before at 17:00"},
        ],
        "smoke": [{"path": "/healthz", "contains": "ok"}],
        "staging_access": {"sandbox_token": "t"},
        "people": {
            "release_manager": "ana",
            "escalation": ["on call", "development lead"],
            "on_call": [
                {"name": "ben", "contact": "07700 900001", "can_rollback": True},
                {"name": "cleo", "contact": "07700 900002", "can_rollback": True},
            ],
        },
        "thresholds": {"min_free_mib": 100, "warn_free_mib": 500, "max_clock_skew_seconds": 2.0,
                       "warn_clock_skew_seconds": 0.5, "min_release_gap_days": 7},
    }
    data.update(changes)
    return Environment.model_validate(data)


def limits(**changes) -> Limits:
    """Limits over `environment(**changes)`, run by ana."""
    return Limits(environment(**changes), actor=ACTOR)


def statuses(results) -> dict[str, str]:
    """{server: status} of a check's results."""
    return {result.server: result.status for result in results}


# ---- environment files for the shell and CLI tests ----

# Everything the checks read, for a local sandbox that passes them all on a good release.
SETTINGS = """
[[publications]]
name = "phof"
rule = "first Tuesday of every month at 09:30"
deadline = "Wednesday before at 17:00"

[[publications]]
name = "excess-mortality"
rule = "third Thursday of every month at 14:00"
deadline = "3 working days before at 17:00"

[[smoke]]
path = "/healthz"
contains = "ok"

[[smoke]]
path = "/"
contains = "Public Health Outcomes Framework"

[config_parity]
files = ["config/app.toml"]
slot_specific = ["cache_seconds"]

[staging_access]
token_env = "RELEASER_TEST_PREVIEW_TOKEN_UNSET"
sandbox_token = "test-preview-token"

[people]
release_manager = "ana"
escalation = ["on call", "development lead"]

[[people.on_call]]
name = "ben"
contact = "ben@stats"
can_rollback = true

[[people.on_call]]
name = "cleo"
contact = "cleo@stats"
can_rollback = true

[thresholds]
min_free_mib = 1
warn_free_mib = 1

[go_live]
rehearsal_max_age_days = 0   # the rehearsal check has tests of its own
"""


def write_environment(directory: Path, *, servers: int = 2, settings: str = SETTINGS, sandbox: str = "") -> Path:
    """Write a local sandbox environment with its own roots and free ports, plus the issue-5 settings."""
    ports = free_ports(2 * servers)
    blocks = ['transport = "local"', "allow_go_live_now = true"]
    for index in range(servers):
        blocks.append(f'[[servers]]\nname = "web-{index + 1}"\nroot = "{directory / f"web-{index + 1}"}"\n'
                      f'live_url = "http://127.0.0.1:{ports[2 * index]}"\nstaging_url = "http://127.0.0.1:{ports[2 * index + 1]}"')
    blocks.append('[health]\npath = "/healthz"\ncontains = "ok"\ntimeout = 2.0\nattempts = 1')
    blocks.append("[sandbox]\nserve = true\n" + sandbox)
    path = directory / "env.toml"
    path.write_text("\n\n".join(blocks) + "\n" + settings)
    return path
