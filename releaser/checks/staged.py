"""staged: staging points at the same release, with the same checksums, intact, on every server."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from releaser.checks import CheckResult, Limits, ReleaseView, ServerView, Unreadable, not_checked, sums_digest
from releaser.facts import Verified
from releaser.order import counted

NAME = "staged"
VERIFY = ("staged",)  # the facts' round trip checks the staged release's files against its sums


@dataclass(frozen=True)
class StagedFacts:
    """One server's slots and the sums of its staged release, and whether its files match them."""

    view: ServerView
    verified: Verified | None


def gather(fleet, view: ReleaseView, limits: Limits) -> dict[str, object]:
    """Each server's staged release, and what `sha256sum -c` of its files said (read with the server's facts)."""
    found: dict[str, object] = {}
    for name in fleet.hosts:
        server = view.servers.get(name)
        if server is None or server.error:
            found[name] = Unreadable(server.error if server else "not read")
        elif not server.release or not server.on_disk:
            found[name] = StagedFacts(server, None)
        else:
            found[name] = StagedFacts(server, server.facts.staged if server.facts else None)
    return found


def judge(facts: Mapping[str, object], limits: Limits, now: datetime) -> list[CheckResult]:
    """FAIL unless every server stages the same (expected) release with the same sums, intact, and not the live one."""
    readable = {s: f for s, f in facts.items() if isinstance(f, StagedFacts)}
    common = Counter((f.view.release, sums_digest(f.view.sums)) for f in readable.values() if f.view.release)
    reference_release, reference_sums = common.most_common(1)[0][0] if common else (None, "")
    everywhere = len(readable) == len(facts) and all(
        (f.view.release, sums_digest(f.view.sums)) == (reference_release, reference_sums) for f in readable.values())
    results = []
    for server, fact in facts.items():
        if isinstance(fact, Unreadable):
            results.append(not_checked(NAME, server, fact))
            continue
        status, detail = _judge_one(fact, limits.release, reference_release, reference_sums, readable)
        if status == "PASS" and everywhere:
            detail += ", same on every server"
        results.append(CheckResult(NAME, server, status, detail))
    return results


def _judge_one(fact: StagedFacts, expected: str | None, reference: str | None, reference_sums: str,
               others: Mapping[str, StagedFacts]) -> tuple[str, str]:
    view = fact.view
    release = view.release
    if expected is not None and view.staging != expected:
        return "FAIL", (f"staging is {view.staging or 'empty'}, expected {expected}; "
                        f"run: invoke deploy --stage --release PATH")
    if release is None:
        return "FAIL", "nothing is staged; run: invoke deploy --stage --release PATH"
    if not view.on_disk:
        return "FAIL", f"staging points at {release}, which is not on this server"
    if release != reference:
        elsewhere = ", ".join(counted(s for s, f in others.items() if f.view.release == reference))
        return "FAIL", f"staging is {release} here but {reference} on {elsewhere}: stage one release everywhere"
    digest = sums_digest(view.sums)
    if not digest:
        return "FAIL", f"{release} has no checksums file here: stage it again"
    if digest != reference_sums:
        elsewhere = ", ".join(counted(s for s, f in others.items() if sums_digest(f.view.sums) == reference_sums))
        return "FAIL", f"{release} has different files here (sums {digest[:8]}) than on {elsewhere} ({reference_sums[:8]})"
    verified = fact.verified
    if verified is None or verified.outcome != "intact":
        why = verified.detail if verified and verified.detail else (verified.outcome if verified else "not verified")
        return "FAIL", f"files of {release} do not match their checksums: {why}"
    if release == view.live:
        return "FAIL", f"staging is the live release {release}: there is nothing new to go live"
    files = f"{verified.files} files" if verified.files is not None else "files"
    if release == view.backup:
        return "WARN", f"staging is the backup release {release}: going live would republish an older release"
    note = verified.read_note()
    return "PASS", f"{release}: {files} intact, sums {digest[:8]}" + (f" ({note})" if note else "")
