"""smoke: the staged release passes the environment's acceptance checks where it runs before go-live.

Each [[smoke]] entry names a path, the status it must answer and, optionally, text the body must contain
or a JSON field and the value it must have. A static site is asked on every server's staging URL, with the
staging credential when one is declared. With [application] the staged release is a running instance on a
private address of each server, so the requests go from the server itself (curl over the server's
connection) to the staging instance's port: the process that will go live, with the live configuration.
The staging credential is not sent there: it guards the public staging URL, and the private port has none.

The GETs of a check go out HTTP_PARALLEL at a time across the fleet, at most PER_SERVER at a time to one
server, on threads of their own (fetch_each, which embargo uses too).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from pathlib import PurePosixPath

from releaser.checks import ALL, CheckResult, Limits, ReleaseView, Unreadable, gather_each, not_checked, unreachable
from releaser.config import Environment, SmokeCheck

NAME = "smoke"
USES_VIEW = False  # asks the staging URLs only: runs while the servers' facts are read
BODY_LIMIT = 256 * 1024
PER_SERVER = 4  # GETs in flight to one server at once
HTTP_PARALLEL = 16  # GETs in flight at once for one check, all servers together


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
    """Every smoke check's answer from one server's staging, whether the credential was known, and where it asked."""

    answers: tuple[tuple[SmokeCheck, Answer], ...]
    credential_missing: bool = False
    where: str = "staging"  # "staging", or "the staging instance on port N" with [application]


def gather(fleet, view: ReleaseView, limits: Limits) -> dict[str, object]:
    """GET every smoke path on every server's staging: its URL, or with [application] its staging instance."""
    environment = limits.environment
    if environment.application is not None:
        return gather_each(fleet, lambda name: ask_staging_instance(fleet.hosts[name], environment, fleet.root(name)))
    access = environment.staging_access
    headers = access.headers(os.environ) if access else {}
    missing = access is not None and not headers
    checks = tuple(environment.smoke)
    answers = fetch_each(fleet, {name: [(environment.server(name).staging_url + check.path, headers, check.timeout)
                                        for check in checks] for name in fleet.hosts})
    return {name: found if isinstance(found, Unreadable) else SmokeFacts(tuple(zip(checks, found)), missing)
            for name, found in answers.items()}


Ask = tuple[str, Mapping[str, str], float]  # a GET: its URL, its headers, its timeout in seconds


def fetch_each(fleet, asks: Mapping[str, Sequence[Ask]]) -> dict[str, list[Answer] | Unreadable]:
    """Send every server's GETs, HTTP_PARALLEL at a time and PER_SERVER at a time to one server; answers in order.

    A server the command could not reach is Unreadable, as in gather_each. The GETs run on threads of their own,
    not on the fleet's, so they never queue the servers' facts behind them.
    """
    found: dict[str, list[Answer] | Unreadable] = dict(unreachable(fleet, list(asks)))
    todo = [(name, index, ask) for name, server_asks in asks.items() if name not in found
            for index, ask in enumerate(server_asks)]
    todo.sort(key=lambda item: item[1])  # the first GET of every server before the second of any
    gates = {name: threading.BoundedSemaphore(PER_SERVER) for name in asks}

    def one(item: tuple[str, int, Ask]) -> Answer:
        name, _, (url, headers, timeout) = item
        with gates[name]:
            return fetch(url, headers=headers, timeout=timeout)

    answers: dict[str, list[Answer]] = {name: [None] * len(asks[name]) for name in asks if name not in found}
    if len(todo) == 1:
        answers[todo[0][0]][0] = one(todo[0])
    elif todo:
        with ThreadPoolExecutor(max_workers=min(HTTP_PARALLEL, len(todo)), thread_name_prefix="http") as pool:
            for (name, index, _), answer in zip(todo, pool.map(one, todo)):
                answers[name][index] = answer
    return {name: found[name] if name in found else answers[name] for name in asks}


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
        results.append(CheckResult(NAME, server, "PASS", f"{len(fact.answers)} passed on {fact.where}: {names}"))
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


# ---- with [application]: asked from the server, on the staging instance's private port ----

_ASK = r"""
cd "$1" 2>/dev/null || { echo noroot; exit 0; }
address=$2 port=$3 limit=$4; shift 4
body=$(mktemp) || exit 3
trap 'rm -f "$body"' EXIT
while [ $# -ge 2 ]; do
  seconds=$1 path=$2; shift 2
  : > "$body"
  # -g: a path's [ ] and { } are part of the URL, not curl's globs (many requests, or exit 3 "bad range")
  meta=$(curl -g -s -m "$seconds" -o "$body" -w '%{http_code} %{time_total}' "http://$address:$port$path" 2>/dev/null)
  rc=$?
  printf 'answer %s %s ' "$rc" "${meta:-000 0}"
  head -c "$limit" "$body" | base64 | tr -d '\n'
  echo
done
exit 0
"""

_CURL_ERRORS = {6: "could not resolve the address", 7: "connection refused", 28: "no answer in time",
                52: "empty reply", 56: "connection reset"}


def ask_argv(root: PurePosixPath, address: str, port: int, checks: tuple[SmokeCheck, ...]) -> list[str]:
    """GET each smoke path from the server on address:port; prints one 'answer RC STATUS SECONDS BODY64' line each."""
    pairs = [str(part) for check in checks for part in (f"{check.timeout:g}", check.path)]
    return ["sh", "-c", _ASK, "releaser-smoke", str(root), address, str(port), str(BODY_LIMIT), *pairs]


def parse_answers(stdout: str, base: str, checks: tuple[SmokeCheck, ...]) -> tuple[tuple[SmokeCheck, Answer], ...]:
    """Read what `ask_argv` printed into one Answer per check (a missing line is no answer)."""
    lines = [line.split(" ", 4) for line in stdout.splitlines() if line.startswith("answer ")]
    answers = []
    for i, check in enumerate(checks):
        url = base + check.path
        if i >= len(lines) or len(lines[i]) < 4:
            answers.append((check, Answer(url, None, error="the server printed no answer")))
            continue
        _, rc, status, seconds, *rest = lines[i]
        try:
            body = base64.b64decode(rest[0] if rest else "", validate=True).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            body = ""
        elapsed = float(seconds) if seconds.replace(".", "", 1).isdigit() else 0.0
        if rc != "0" or not status.isdigit() or status == "000":
            why = _CURL_ERRORS.get(int(rc) if rc.isdigit() else -1, f"curl exit {rc}")
            answers.append((check, Answer(url, None, error=why, seconds=elapsed)))
        else:
            answers.append((check, Answer(url, int(status), body, seconds=elapsed)))
    return tuple(answers)


def ask_staging_instance(host, environment: Environment, root: PurePosixPath) -> SmokeFacts | Unreadable:
    """Ask every smoke path of the staging slot's running instance, from its server (the port is private)."""
    from releaser.instances import read_instances

    application = environment.application
    found = read_instances(host, environment, root)
    staged = found.slots.get("staging")
    if staged is None:
        return Unreadable("nothing is staged, so there is no staging instance to ask")
    instance = found.of_release(staged)
    if instance is None or instance.pid is None:
        return Unreadable(f"no instance of the staged release {staged} runs; stage it again: invoke deploy --stage")
    checks = tuple(environment.smoke)
    deadline = sum(check.timeout for check in checks) + 10.0
    done = host.run(ask_argv(root, application.address, instance.port, checks), timeout=deadline)
    if not done.ok:
        return Unreadable(f"cannot ask the staging instance: {done.reason()}")
    answers = parse_answers(done.stdout, f"http://{application.address}:{instance.port}", checks)
    return SmokeFacts(answers, where=f"the staging instance of {staged} (port {instance.port})")


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
