"""smoke: the staged release passes the environment's acceptance checks on every server's staging URL.

Each [[smoke]] entry names a path, the status it must answer and, optionally, text the body must contain
or a JSON field and the value it must have. Requests carry the staging credential when one is declared.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from releaser.checks import ALL, CheckResult, Limits, ReleaseView, Unreadable, gather_each, not_checked
from releaser.config import SmokeCheck

NAME = "smoke"
USES_VIEW = False  # asks the staging URLs only: runs while the servers' facts are read
BODY_LIMIT = 256 * 1024
PER_SERVER = 4  # smoke requests in flight to one server at once


@dataclass(frozen=True)
class Answer:
    """What one GET got: status (None: no answer), the body's text, why there was no answer, how long it took."""

    url: str
    status: int | None
    body: str = ""
    error: str = ""
    seconds: float = 0.0


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer in its own right (a login page is not the release)."""

    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


def fetch(url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> Answer:
    """GET `url` once without following redirects or proxies, and keep the status and the body's text."""
    request = urllib.request.Request(url, headers={"User-Agent": "releaser-check", **(headers or {})})
    started = time.perf_counter()
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status, body = response.status, response.read(BODY_LIMIT)
    except urllib.error.HTTPError as error:
        status, body = error.code, (error.read(BODY_LIMIT) if error.fp else b"")
    except (urllib.error.URLError, OSError) as error:
        return Answer(url, None, error=str(getattr(error, "reason", error)), seconds=time.perf_counter() - started)
    return Answer(url, status, body.decode("utf-8", errors="replace"), seconds=time.perf_counter() - started)


@dataclass(frozen=True)
class SmokeFacts:
    """Every smoke check's answer from one server's staging URL, and whether the credential was known."""

    answers: tuple[tuple[SmokeCheck, Answer], ...]
    credential_missing: bool = False


def gather(fleet, view: ReleaseView, limits: Limits) -> dict[str, object]:
    """GET every smoke path on every server's staging URL, with the staging credential when declared."""
    environment = limits.environment
    access = environment.staging_access
    headers = access.headers(os.environ) if access else {}
    missing = access is not None and not headers

    def read(name: str) -> object:
        base = environment.server(name).staging_url
        checks = list(environment.smoke)
        if len(checks) <= 1:
            return SmokeFacts(tuple((check, fetch(base + check.path, headers=headers, timeout=check.timeout))
                                    for check in checks), missing)
        # the same server's requests at once, a few at a time: one slow page does not queue the others behind it
        with ThreadPoolExecutor(max_workers=min(PER_SERVER, len(checks)), thread_name_prefix="smoke") as pool:
            answers = pool.map(lambda check: fetch(base + check.path, headers=headers, timeout=check.timeout), checks)
            return SmokeFacts(tuple(zip(checks, answers)), missing)
    return gather_each(fleet, read)


def judge(facts: Mapping[str, object], limits: Limits, now: datetime) -> list[CheckResult]:
    """FAIL a server where any smoke check fails; WARN when none is declared or one answers slowly."""
    environment = limits.environment
    if not environment.smoke:
        return [CheckResult(NAME, ALL, "WARN", "no smoke checks declared: add [[smoke]] entries (path, status, contains)")]
    results = []
    for server, fact in facts.items():
        if isinstance(fact, Unreadable):
            results.append(not_checked(NAME, server, fact))
            continue
        problems = [problem for check, answer in fact.answers if (problem := judge_answer(check, answer))]
        if problems:
            hint = (f" (is {environment.staging_access.token_env} set? staging needs its credential)"
                    if fact.credential_missing and environment.staging_access else "")
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            results.append(CheckResult(NAME, server, "FAIL", problems[0] + more + hint))
            continue
        slow = [(check, answer) for check, answer in fact.answers
                if answer.seconds > environment.thresholds.slow_smoke_seconds]
        if slow:
            check, answer = slow[0]
            results.append(CheckResult(NAME, server, "WARN", f"GET {check.path} took {answer.seconds:.1f} s "
                                                            f"(slow above {environment.thresholds.slow_smoke_seconds:g} s)"))
            continue
        names = ", ".join(check.label for check, _ in fact.answers)
        results.append(CheckResult(NAME, server, "PASS", f"{len(fact.answers)} passed on staging: {names}"))
    return results


def judge_answer(check: SmokeCheck, answer: Answer) -> str | None:
    """Return None if the answer meets the check, else a line naming the URL, what came back and the body's start."""
    said = f"GET {answer.url}"
    if answer.status is None:
        return f"{said} -> no answer ({answer.error})"
    head = _first_line(answer.body)
    if answer.status != check.status:
        return f"{said} -> {answer.status}, expected {check.status}" + (f": {head}" if head else "")
    if check.contains is not None and check.contains not in answer.body:
        return f"{said} -> {answer.status} but the body lacks {check.contains!r}" + (f": {head}" if head else "")
    if check.json_field is not None:
        try:
            value = _field(json.loads(answer.body), check.json_field)
        except ValueError:
            return f"{said} -> {answer.status} but the body is not JSON" + (f": {head}" if head else "")
        except LookupError:
            return f"{said} -> {answer.status} but the JSON has no {check.json_field!r}"
        if check.json_equals is not None and not _same(value, check.json_equals):
            return f"{said} -> {check.json_field} is {value!r}, expected {check.json_equals!r}"
    return None


def _field(data, dotted: str):
    for part in dotted.split("."):
        if isinstance(data, list) and part.isdigit():
            data = data[int(part)]
        elif isinstance(data, dict):
            data = data[part]
        else:
            raise KeyError(part)
    return data


def _same(value, expected) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return value is expected if isinstance(value, bool) else str(value).lower() == str(expected).lower()
    if isinstance(expected, str) and not isinstance(value, str):
        return str(value) == expected
    return value == expected


def _first_line(body: str) -> str:
    for line in body.strip().splitlines():
        if line.strip():
            return line.strip()[:100]
    return ""
