"""Pure judges of the checks that look at staging: smoke, embargo and config-parity."""

from __future__ import annotations

import pytest

from checkenv import NOW, environment, limits, statuses
from releaser.checks import Limits, Unreadable, config_parity, embargo, smoke
from releaser.checks.config_parity import ConfigPair, ParityFacts, diff_config
from releaser.checks.smoke import Answer, SmokeFacts, judge_answer
from releaser.config import SmokeCheck

URL = "http://127.0.0.1:2/healthz"


@pytest.mark.parametrize(
    "check, answer, expected",
    [
        pytest.param(SmokeCheck(path="/healthz", contains="ok"), Answer(URL, 200, "ok\n"), None, id="pass"),
        pytest.param(SmokeCheck(path="/healthz"), Answer(URL, 502, "Bad Gateway\nmore"), f"GET {URL} -> 502, expected 200: Bad Gateway",
                     id="status"),
        pytest.param(SmokeCheck(path="/healthz", contains="ok"), Answer(URL, 200, "degraded"),
                     f"GET {URL} -> 200 but the body lacks 'ok': degraded", id="text"),
        pytest.param(SmokeCheck(path="/healthz"), Answer(URL, None, error="Connection refused"),
                     f"GET {URL} -> no answer (Connection refused)", id="no-answer"),
        pytest.param(SmokeCheck(path="/healthz", json_field="checks.database", json_equals="ok"),
                     Answer(URL, 200, '{"checks": {"database": "ok"}}'), None, id="json-pass"),
        pytest.param(SmokeCheck(path="/healthz", json_field="checks.database", json_equals="ok"),
                     Answer(URL, 200, '{"checks": {"database": "down"}}'),
                     f"GET {URL} -> checks.database is 'down', expected 'ok'", id="json-value"),
        pytest.param(SmokeCheck(path="/healthz", json_field="rows", json_equals=3), Answer(URL, 200, '{"rows": 3}'), None,
                     id="json-number"),
        pytest.param(SmokeCheck(path="/healthz", json_field="checks.cache"), Answer(URL, 200, '{"checks": {}}'),
                     f"GET {URL} -> 200 but the JSON has no 'checks.cache'", id="json-missing"),
        pytest.param(SmokeCheck(path="/healthz", json_field="ok"), Answer(URL, 200, "<html>"),
                     f"GET {URL} -> 200 but the body is not JSON: <html>", id="not-json"),
    ],
)
def test_smoke_judges_one_answer(check, answer, expected):
    """An answer meets a smoke check by status, text and JSON field, or the problem is named with the URL."""
    assert judge_answer(check, answer) == expected


def smoke_facts(*answers, missing=False):
    checks = [SmokeCheck(path="/healthz", contains="ok")] * len(answers)
    return SmokeFacts(tuple(zip(checks, answers)), missing)


@pytest.mark.parametrize(
    "facts, expected",
    [
        pytest.param({"web-1": smoke_facts(Answer(URL, 200, "ok", seconds=0.01))}, {"web-1": "PASS"}, id="pass"),
        pytest.param({"web-1": smoke_facts(Answer(URL, 200, "ok", seconds=3.5))}, {"web-1": "WARN"}, id="slow"),
        pytest.param({"web-1": smoke_facts(Answer(URL, 404, "Not Found"))}, {"web-1": "FAIL"}, id="broken"),
        pytest.param({"web-1": Unreadable("server down")}, {"web-1": "FAIL"}, id="unreadable"),
    ],
)
def test_smoke_judges_each_server(facts, expected):
    """Every smoke check must pass on a server's staging URL; a slow answer warns."""
    assert statuses(smoke.judge(facts, limits(), NOW)) == expected


def test_smoke_without_declared_checks_warns():
    """No [[smoke]] entries means staging is untested: one WARN for the environment."""
    [result] = smoke.judge({"web-1": smoke_facts()}, limits(smoke=[]), NOW)
    assert (result.server, result.status) == ("all", "WARN")


def test_smoke_failure_with_unknown_credential_points_at_the_variable():
    """A 403 while the token's variable is unset says which variable to set."""
    [result] = smoke.judge({"web-1": smoke_facts(Answer(URL, 403, "Forbidden"), missing=True)}, limits(), NOW)
    assert result.status == "FAIL" and "is RELEASER_PREVIEW_TOKEN set?" in result.detail


@pytest.mark.parametrize(
    "answer, declared, expected",
    [
        pytest.param(Answer(URL, 403, "Forbidden"), True, "PASS", id="private"),
        pytest.param(Answer(URL, None, error="refused"), True, "PASS", id="no-public-answer"),
        pytest.param(Answer(URL, 302, ""), True, "PASS", id="redirect-to-login"),
        pytest.param(Answer(URL, 200, "ok"), True, "FAIL", id="public"),
        pytest.param(Answer(URL, 200, "ok"), False, "WARN", id="nothing-declared"),
    ],
)
def test_embargo_judges_a_request_without_the_credential(answer, declared, expected):
    """Staging answering 2xx without the credential fails; without a declared credential releaser can only warn."""
    environment_limits = limits() if declared else limits(staging_access=None)
    [result] = embargo.judge({"web-1": answer}, environment_limits, NOW)
    assert result.status == expected


def test_embargo_failure_says_the_public_can_see_the_release():
    """The FAIL names the URL and what it means."""
    [result] = embargo.judge({"web-1": Answer(URL, 200, "ok")}, limits(), NOW)
    assert result.detail.startswith(f"GET {URL} without the credential -> 200: the public can see the release")


LIVE = 'site_name = "PHOF"\ncache_seconds = 300\ndatabase = "phof-live"\n[server]\nport = 8080\n'


def parity(staged, live="r1", ignored=("cache_seconds",)):
    environment_limits = Limits(environment(config_parity={"files": ["config/app.toml"], "slot_specific": list(ignored)}))
    facts = {"web-1": ParityFacts(live, (ConfigPair("config/app.toml", staged, LIVE),))}
    return config_parity.judge(facts, environment_limits, NOW)[0]


@pytest.mark.parametrize(
    "staged, live, expected",
    [
        pytest.param(LIVE, "r1", "PASS", id="same"),
        pytest.param(LIVE.replace("300", "60"), "r1", "PASS", id="slot-specific-key-differs"),
        pytest.param(LIVE.replace("phof-live", "phof-live-2"), "r1", "FAIL", id="database-differs"),
        pytest.param(None, "r1", "FAIL", id="missing-from-staged"),
        pytest.param("database = [", "r1", "FAIL", id="not-toml"),
        pytest.param(LIVE, None, "WARN", id="no-live-release"),
    ],
)
def test_config_parity_judges_staged_against_live(staged, live, expected):
    """The staged configuration must equal live's apart from slot-specific keys."""
    assert parity(staged, live).status == expected


def test_config_parity_shows_the_diff_and_the_ignored_keys():
    """A difference is shown as key: live value, staged value; ignored keys are named on a pass."""
    assert parity(LIVE.replace("phof-live", "phof-live-2")).detail == \
        "config/app.toml differs from live: database: live 'phof-live', staged 'phof-live-2'"
    assert parity(LIVE.replace("300", "60")).detail == "same as live: config/app.toml (ignoring slot-specific cache_seconds)"


def test_config_parity_ignores_a_whole_table_and_reports_added_keys():
    """A slot-specific table name covers its keys; a key only in staging is a difference."""
    differences, skipped = diff_config("app.toml", "new_flag = true\n" + LIVE.replace("8080", "8081"), LIVE, ("server",))
    assert differences == ["new_flag: only in staged (True)"] and skipped == ["server.port"]


def test_config_parity_compares_other_files_line_by_line():
    """A file that is neither TOML nor JSON is compared as text, the changed lines shown."""
    differences, _ = diff_config("nginx.conf", "listen 80;\nroot /a;\n", "listen 80;\nroot /b;\n")
    assert differences == ["-root /b;", "+root /a;"]
