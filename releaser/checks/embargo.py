"""embargo: the staging URL does not answer the public, so nobody sees the numbers before release time.

With [staging_access] declared, a request without the credential must not get a 2xx answer. Without it
releaser cannot tell a private port from a public one, so the check warns and says what to declare.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from releaser.checks import CheckResult, Limits, ReleaseView, Unreadable, not_checked
from releaser.checks.smoke import Answer, fetch_each

NAME = "embargo"
USES_VIEW = False  # asks the staging URLs only: runs while the servers' facts are read


def gather(fleet, view: ReleaseView, limits: Limits) -> dict[str, object]:
    """GET each server's staging URL (the first smoke path, else /) the way the public would: no credential."""
    environment = limits.environment
    path = environment.smoke[0].path if environment.smoke else "/"

    found = fetch_each(fleet, {name: [(environment.server(name).staging_url + path, {}, 5.0)] for name in fleet.hosts})
    return {name: answers if isinstance(answers, Unreadable) else answers[0] for name, answers in found.items()}


def judge(facts: Mapping[str, object], limits: Limits, now: datetime) -> list[CheckResult]:
    """FAIL a server whose staging answers 2xx without the credential; WARN when no credential is declared."""
    declared = limits.environment.staging_access is not None
    results = []
    for server, answer in facts.items():
        if isinstance(answer, Unreadable):
            results.append(not_checked(NAME, server, answer))
            continue
        assert isinstance(answer, Answer)
        got = "no answer" if answer.status is None else str(answer.status)
        said = f"GET {answer.url} without the credential -> {got}"
        public = answer.status is not None and 200 <= answer.status < 300
        if not declared:
            results.append(CheckResult(NAME, server, "WARN", f"{said}; no [staging_access] declared, so releaser "
                                                            "cannot tell staging is private: declare its credential"))
        elif public:
            results.append(CheckResult(NAME, server, "FAIL", f"{said}: the public can see the release before release "
                                                            "time; protect staging (see environments/nginx-staging.conf.sample)"))
        else:
            results.append(CheckResult(NAME, server, "PASS", f"{said} (private)"))
    return results
