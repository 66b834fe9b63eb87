"""Notifications: tell people what happened, by webhook and e-mail, without ever holding up a switch.

The reports show people told by hand (the project team at 09:30, regional teams when servers failed). An
environment lists channels (config.WebhookChannel, config.EmailChannel), each with the events it wants.

`event_name`, `headline`, `next_steps`, `webhook_body` and `compose_email` are pure: a journal event in, text
out. `Notifier.send` hands each wanted event to a daemon thread and returns at once, so a channel that is down
never delays a go-live or a rollback; `Notifier.wait` collects one `Delivery` per channel and event for the
command to show and journal at its end. A token or password is read from the variable the environment file
names, only when sending, and is scrubbed from every text this module produces.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import smtplib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from releaser import __version__
from releaser.clock import seconds_text
from releaser.config import EmailChannel, WebhookChannel

Channel = WebhookChannel | EmailChannel

# (action, outcome) -> the event name a channel subscribes to. Anything else is not notified.
_EVENT_NAMES = {
    ("go-live", "done"): "go-live-done",
    ("go-live", "reverted"): "go-live-failed",
    ("go-live", "mixed"): "go-live-failed",
    ("go-live", "failed"): "go-live-failed",
    ("go-live", "refused"): "go-live-failed",
    ("rollback", "done"): "rolled-back",
    ("rollback", "unhealthy"): "rolled-back",
    ("rollback", "reverted"): "rolled-back",  # a rollback that failed is the most urgent news of all
    ("rollback", "mixed"): "rolled-back",
    ("go-live", "stopped"): "check-failed",  # a check failing at T-10 min stopped the go-live
    ("notice", "done"): "notice-published",
    ("check", "failed"): "check-failed",
}
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
_MAX_DETAIL = 300


@dataclass(frozen=True)
class Delivery:
    """What became of one event on one channel: sent or not, and a line saying where or why not."""

    channel: str
    event_name: str
    ok: bool
    detail: str


def event_name(event: Mapping) -> str | None:
    """Return the notification event a journal event is (e.g. "go-live-failed"), or None when none is."""
    return _EVENT_NAMES.get((event.get("action"), event.get("outcome")))


def headline(event: Mapping, name: str) -> str:
    """Return one line saying what happened, in the words an e-mail subject or a chat message needs."""
    where = event.get("environment") or "?"
    releases = event.get("releases") or {}
    live, outcome = releases.get("live"), event.get("outcome")
    attempted = releases.get("attempted") or live or "the staged release"
    if name == "go-live-done":
        return f"{where}: {live} is live"
    if name == "go-live-failed":
        if outcome == "mixed":
            return f"{where}: go-live of {attempted} FAILED and servers are MIXED; act now"
        if outcome == "reverted":
            return f"{where}: go-live of {attempted} FAILED; every server is back on {live}"
        if outcome == "refused":
            return f"{where}: go-live of {attempted} refused before any switch; nothing changed"
        return f"{where}: go-live FAILED"
    if name == "rolled-back":
        if outcome in ("reverted", "mixed"):
            return f"{where}: rollback to {live} FAILED ({outcome}); act now: invoke status --env {where}"
        if outcome == "unhealthy":
            return f"{where}: rolled back to {live}, but the health check FAILS"
        return f"{where}: rolled back; {live} is live again (was {releases.get('rolled_back')})"
    if name == "notice-published":
        return f"{where}: a notice is now shown on the live site"
    if name == "check-failed":
        return f"{where}: a pre-release check FAILED; go-live will not switch"
    return f"{where}: {event.get('action')} {outcome}"


def next_steps(event: Mapping, name: str) -> list[str]:
    """Return what the person reading should do next: the exact commands, most urgent first."""
    env = f"--env {event.get('environment') or 'ENV'}"
    outcome = event.get("outcome")
    failed_release = (event.get("releases") or {}).get("rolled_back") or "ID"
    if name == "go-live-done":
        return ["Look at the live site.", f"If it is wrong, put the previous release back: invoke rollback {env}"]
    if name == "go-live-failed" and outcome == "mixed":
        return ["Servers now serve DIFFERENT releases. Follow: invoke runbook rollback",
                f"See where each server stands: invoke status {env}",
                "If you cannot make every server equal within minutes, escalate: invoke runbook escalation"]
    if name == "go-live-failed":
        return [f"See where each server stands: invoke status {env}", "Follow: invoke runbook go-live",
                f"If the publication will be late, tell users: invoke notice {env} --message TEXT"]
    if name == "rolled-back" and outcome == "unhealthy":
        return [f"See which server fails: invoke status {env}", "Follow: invoke runbook server-failure",
                "Escalate if it is not fixed within minutes: invoke runbook escalation"]
    if name == "rolled-back":
        return [f"Check every server is equal: invoke status {env}", f"Find out why: invoke history {env}",
                "If the publication is late, write the breach report: "
                f"invoke breach-report {env} --release {failed_release}"]
    if name == "notice-published":
        return ["Users now see the notice.", f"When the problem is over, remove it: invoke notice {env} --clear"]
    if name == "check-failed":
        return [f"See which check fails and why: invoke check {env}",
                "If a data set missed its deadline, follow: invoke runbook late-data",
                f"If the publication will be late, tell users: invoke notice {env} --message TEXT"]
    return [f"invoke history {env}"]


def webhook_body(event: Mapping, name: str) -> bytes:
    """Return the JSON a webhook receives: the journal event, its event name, and a `text` line for chat tools."""
    text = headline(event, name) + (f"\n{event['detail']}" if event.get("detail") else "")
    return json.dumps({**event, "event": name, "text": text}, sort_keys=True, default=str).encode("utf-8")


def compose_email(channel: EmailChannel, event: Mapping, name: str, *, timezone: str = "UTC") -> EmailMessage:
    """Return the plain-text e-mail for one event: what happened, releases, detail, and what to do next."""
    message = EmailMessage()
    message["Subject"] = f"[releaser] {headline(event, name)}"
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    when = _parse_at(event.get("at"))
    if when is not None:
        message["Date"] = format_datetime(when)
    if event.get("id"):
        message["Message-ID"] = f"<{event['id']}.{channel.name}@{channel.sender.rsplit('@', 1)[1]}>"
    message.set_content(_email_text(channel, event, name, when, timezone))
    return message


class Notifier:
    """Send journal events to an environment's notification channels in the background.

    `send` never blocks and never raises for a channel; `wait` returns what became of each send.
    Secrets are looked up in `secrets` (default: this process's environment) only when sending.
    """

    def __init__(self, channels: Iterable[Channel], secrets: Mapping[str, str] = os.environ, *,
                 timezone: str = "UTC") -> None:
        self._channels = tuple(channels)
        self._secrets = secrets
        self._timezone = ZoneInfo(timezone).key  # an unknown zone fails here, not later in a thread
        self._lock = threading.Lock()
        self._jobs: list[_Job] = []

    def __repr__(self) -> str:
        return f"Notifier(channels={[channel.name for channel in self._channels]!r})"

    def send(self, event: Mapping) -> None:
        """Start sending `event` to every channel that wants it, and return at once."""
        name = event_name(event)
        if name is None:
            return
        snapshot = json.loads(json.dumps(dict(event), default=str))  # the caller may change its dict later
        for channel in self._channels:
            if name not in channel.events:
                continue
            job = _Job(channel.name, name)
            job.thread = threading.Thread(target=self._run, args=(job, channel, snapshot), daemon=True,
                                          name=f"releaser-notify-{channel.name}")
            with self._lock:
                self._jobs.append(job)
            try:
                job.thread.start()
            except RuntimeError as error:  # no thread to be had: report it, never raise into a switch
                job.delivery = Delivery(channel.name, name, False, f"could not start sending: {error}")

    def wait(self, timeout: float | None = None) -> list[Delivery]:
        """Wait at most `timeout` seconds in all (default: the longest channel timeout) for the sends so far.

        Returns one Delivery per channel and event, in the order sent; a send still under way is reported
        as not delivered (it goes on in the background). Each send is reported by one `wait` only.
        """
        with self._lock:
            jobs, self._jobs = self._jobs, []
        if timeout is None:
            timeout = max((c.timeout for c in self._channels), default=0.0)
        deadline = time.monotonic() + timeout
        for job in jobs:
            if job.thread.ident is not None:  # started (a thread that failed to start has its Delivery)
                job.thread.join(max(0.0, deadline - time.monotonic()))
        return [job.delivery or Delivery(job.channel, job.event_name, False,
                                         f"no result within {seconds_text(timeout)} s; still sending in the background")
                for job in jobs]

    def _run(self, job: "_Job", channel: Channel, event: dict) -> None:
        try:
            delivery = self._deliver(channel, event, job.event_name)
        except Exception as error:  # a bug here must still give a Delivery, and never a traceback on stderr
            delivery = Delivery(channel.name, job.event_name, False, f"unexpected {type(error).__name__}: {error}")
        # One assignment, already scrubbed: a `wait` reading it from another thread never sees a secret.
        job.delivery = Delivery(delivery.channel, delivery.event_name, delivery.ok,
                                _scrub(delivery.detail, _secret_forms(channel, self._secrets)))

    def _deliver(self, channel: Channel, event: dict, name: str) -> Delivery:
        if isinstance(channel, WebhookChannel):
            token, missing = _secret(self._secrets, channel.token_env, "webhook token")
            if missing:
                return Delivery(channel.name, name, False, missing)
            return _post(channel, webhook_body(event, name), token, name)
        password, missing = _secret(self._secrets, channel.password_env, "SMTP password")
        if missing:
            return Delivery(channel.name, name, False, missing)
        message = compose_email(channel, event, name, timezone=self._timezone)
        return _mail(channel, message, password, name)


@dataclass
class _Job:
    channel: str
    event_name: str
    thread: threading.Thread | None = None
    delivery: Delivery | None = field(default=None)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirected POST turns into a GET without the event, and could carry the token to another host.
    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _post(channel: WebhookChannel, body: bytes, token: str | None, name: str) -> Delivery:
    where = urlsplit(channel.url).netloc
    request = urllib.request.Request(channel.url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": f"releaser/{__version__}"})
    if token:
        request.add_unredirected_header("Authorization", f"Bearer {token}")
    try:
        with _OPENER.open(request, timeout=channel.timeout) as response:
            response.read(65536)
            return Delivery(channel.name, name, True, f"POST to {where}: HTTP {response.status}")
    except urllib.error.HTTPError as error:
        answer = _first_line(error.read(2048))
        error.close()
        return Delivery(channel.name, name, False,
                        f"POST to {where}: HTTP {error.code} {error.reason}" + (f": {answer}" if answer else ""))
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        return Delivery(channel.name, name, False, f"POST to {where}: {_failure(error, channel.timeout)}")


def _mail(channel: EmailChannel, message: EmailMessage, password: str | None, name: str) -> Delivery:
    where = f"SMTP {channel.host}:{channel.port}"
    if channel.username and not channel.starttls and channel.host not in _LOOPBACK:
        return Delivery(channel.name, name, False,
                        f"{where}: refusing to send the password unencrypted; set starttls = true")
    try:
        with smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout) as smtp:
            if channel.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if channel.username:
                smtp.login(channel.username, password or "")
            refused = smtp.send_message(message, from_addr=channel.sender, to_addrs=list(channel.to))
    except smtplib.SMTPAuthenticationError as error:
        return Delivery(channel.name, name, False, f"{where}: login as {channel.username} refused ({error.smtp_code})")
    except smtplib.SMTPRecipientsRefused as error:
        return Delivery(channel.name, name, False, f"{where}: every recipient refused: {_refusals(error.recipients)}")
    except smtplib.SMTPResponseException as error:
        return Delivery(channel.name, name, False, f"{where}: {error.smtp_code} {_first_line(error.smtp_error)}")
    except smtplib.SMTPNotSupportedError as error:
        return Delivery(channel.name, name, False, f"{where}: {error}")
    except smtplib.SMTPServerDisconnected:
        return Delivery(channel.name, name, False, f"{where}: the server closed the connection")
    except (smtplib.SMTPException, OSError) as error:
        return Delivery(channel.name, name, False, f"{where}: {_failure(error, channel.timeout)}")
    if refused:
        return Delivery(channel.name, name, False, f"{where}: some recipients refused: {_refusals(refused)}")
    return Delivery(channel.name, name, True, f"{where}: accepted for {len(channel.to)} recipient(s)")


def _email_text(channel: EmailChannel, event: Mapping, name: str, when: datetime | None, timezone: str) -> str:
    releases = event.get("releases") or {}
    rows = [
        ("Environment", event.get("environment")),
        ("What", f"{event.get('action')} ({event.get('outcome')})"),
        ("When", _shown_time(when, timezone) if when else event.get("at")),
        ("By", event.get("actor")),
        ("Releases", ", ".join(f"{slot} {release}" for slot, release in releases.items() if release)),
        ("Servers", ", ".join(event.get("servers") or [])),
        ("Reason", event.get("reason")),
        ("Detail", event.get("detail")),
    ]
    lines = [headline(event, name), ""]
    lines += [f"{label + ':':<13}{value}" for label, value in rows if value]
    lines += ["", "What to do next:"]
    lines += [f"  {number}. {step}" for number, step in enumerate(next_steps(event, name), start=1)]
    lines += ["", f"The whole timeline: invoke history --env {event.get('environment') or 'ENV'}",
              "", "-- ", f"Sent by releaser to the {channel.name!r} channel for the {name!r} event."]
    return "\n".join(lines) + "\n"


def _parse_at(at: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(at).replace("Z", "+00:00"))
    except ValueError:
        return None


def _shown_time(when: datetime, timezone: str) -> str:
    shown = when.astimezone(ZoneInfo(timezone))
    return shown.strftime("%Y-%m-%d %H:%M:%S.") + f"{shown.microsecond // 1000:03d} {timezone}"


def _secret(secrets: Mapping[str, str], variable: str | None, what: str) -> tuple[str | None, str | None]:
    """Return (value, None), or (None, a line saying the variable is not set); never the value in that line."""
    if variable is None:
        return None, None
    value = secrets.get(variable)
    if not value:
        return None, f"{what} variable {variable} is not set"
    return value, None


def _secret_forms(channel: Channel, secrets: Mapping[str, str]) -> list[str]:
    """Every form a channel's secret could take on the wire: itself, and SMTP's base64 login strings."""
    variable = channel.token_env if isinstance(channel, WebhookChannel) else channel.password_env
    value = secrets.get(variable) if variable else None
    if not value:
        return []
    forms = [value, base64.b64encode(value.encode()).decode()]
    if isinstance(channel, EmailChannel) and channel.username:
        forms.append(base64.b64encode(f"\0{channel.username}\0{value}".encode()).decode())
    return forms


def _scrub(text: str, secrets: Sequence[str]) -> str:
    """Return `text` on one line, at most a few hundred characters, with every secret replaced by ***."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def _failure(error: BaseException, timeout: float) -> str:
    """Say in a few words why a connection failed."""
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"no answer within {seconds_text(timeout)} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is it running?)"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve the host name ({reason.strerror})"
    if isinstance(reason, ssl.SSLError):
        return f"TLS failed: {reason.reason or reason}"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[0].lower() + reason.strerror[1:]
    return str(reason) or type(reason).__name__


def _first_line(data: bytes | str) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    return text.strip().splitlines()[0][:200] if text.strip() else ""


def _refusals(recipients: Mapping[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address} ({code} {_first_line(answer)})" for address, (code, answer) in recipients.items())
