"""Notifications against a real HTTP receiver and a real SMTP server on loopback: what arrives, and what never does."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timezone
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from releaser.config import EmailChannel, WebhookChannel
from releaser.journal import make_event
from releaser.notify import Delivery, Notifier

from conftest import free_ports

TOKEN = "tok-3f9a-SECRET-webhook"
PASSWORD = "pw-77c1-SECRET-smtp"
SECRETS = {"RELEASER_WEBHOOK_TOKEN": TOKEN, "RELEASER_SMTP_PASSWORD": PASSWORD}


class Receiver:
    """A webhook receiver: records each POST, and can hold its answer until the test releases it."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.received = threading.Event()
        self.release = threading.Event()
        self.answered = threading.Event()
        self.hold = False
        self.status = 204
        self.echo_authorization = False
        self.location: str | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                receiver.received.set()
                if receiver.hold:
                    receiver.release.wait(30)
                receiver.answered.set()  # set before answering, so it is set by the time the client has the answer
                answer = b""
                if receiver.echo_authorization:  # a careless receiver: the token comes back in the body
                    answer = f"bad credentials: {self.headers.get('Authorization')}".encode()
                self.send_response(receiver.status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # a client that gave up is not a test failure
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/releaser"

    def bodies(self) -> list[dict]:
        """The JSON bodies received, in order."""
        return [json.loads(request["body"]) for request in self.requests]


class Mailbox:
    """An SMTP handler and authenticator that keeps every message and login attempt."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.logins: list[tuple[str, bool]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"releaser"
              and auth_data.password == PASSWORD.encode())
        self.logins.append((auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?", ok))
        return AuthResult(success=ok, handled=False)  # handled=False: the server sends the 535 itself


@pytest.fixture
def receiver():
    """A real HTTP server on a free loopback port, stopped after the test."""
    made = Receiver()
    thread = threading.Thread(target=made.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield made
    made.release.set()
    made.server.shutdown()
    made.server.server_close()


@pytest.fixture
def other_receiver():
    """A second real HTTP receiver."""
    made = Receiver()
    threading.Thread(target=made.server.serve_forever, args=(0.05,), daemon=True).start()
    yield made
    made.release.set()
    made.server.shutdown()
    made.server.server_close()


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on a free loopback port, with login; TLS is not offered."""
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_ports(1)[0],
                            authenticator=mailbox.authenticate, auth_require_tls=False)
    controller.start()
    mailbox.port = controller.port
    yield mailbox
    controller.stop()


def webhook(url: str, *, events=("go-live-done", "go-live-failed"), name="ops-chat", timeout=5.0,
            token_env: str | None = "RELEASER_WEBHOOK_TOKEN") -> WebhookChannel:
    """A webhook channel to `url`."""
    return WebhookChannel(kind="webhook", name=name, url=url, events=list(events), token_env=token_env,
                          timeout=timeout)


def email(port: int, *, events=("go-live-failed", "rolled-back"), starttls=False, login=True) -> EmailChannel:
    """An e-mail channel to the loopback SMTP server on `port`."""
    credentials = {"username": "releaser", "password_env": "RELEASER_SMTP_PASSWORD"} if login else {}
    return EmailChannel(kind="email", name="release-team", host="127.0.0.1", port=port, starttls=starttls,
                        sender="releaser@example.org", to=["releases@example.org", "oncall@example.org"],
                        events=list(events), **credentials)


def event(action="go-live", outcome="done", **fields) -> dict:
    """A journal event as the fleet writes it."""
    releases = {"live": "r7", "backup": "r6"} if outcome == "done" else {"live": "r6", "attempted": "r7"}
    return make_event(action, event_id="e1f2", environment="prod", actor="ana@build-01",
                      now=datetime(2026, 12, 1, 9, 30, 2, 123000, tzinfo=timezone.utc), outcome=outcome,
                      releases=fields.pop("releases", releases), servers=["web-1", "web-2"],
                      detail=fields.pop("detail", "switched 2 servers"), **fields)


def test_webhook_receives_the_event_as_json_with_the_bearer_token(receiver):
    """The receiver gets the journal event, its event name and the token from the named variable."""
    notifier = Notifier([webhook(receiver.url)], SECRETS)
    notifier.send(event())
    [delivery] = notifier.wait()
    port = receiver.server.server_address[1]
    assert delivery == Delivery("ops-chat", "go-live-done", True, f"POST to 127.0.0.1:{port}: HTTP 204")
    [request] = receiver.requests
    assert request["path"] == "/hooks/releaser"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["Content-Type"] == "application/json"
    body = receiver.bodies()[0]
    assert {key: body[key] for key in ("action", "outcome", "environment", "releases", "detail", "at", "event")} == {
        "action": "go-live", "outcome": "done", "environment": "prod", "releases": {"live": "r7", "backup": "r6"},
        "detail": "switched 2 servers", "at": "2026-12-01T09:30:02.123Z", "event": "go-live-done"}
    assert body["text"] == "prod: r7 is live\nswitched 2 servers"


def test_email_arrives_with_subject_body_and_recipients(smtp_server):
    """A failed go-live is mailed to every recipient after logging in with the password from the variable."""
    notifier = Notifier([email(smtp_server.port)], SECRETS, timezone="Europe/London")
    notifier.send(event(outcome="reverted", detail="web-2: GET /healthz -> 502"))
    [delivery] = notifier.wait()
    assert delivery.ok, delivery.detail
    assert smtp_server.logins == [("releaser", True)]
    [(sender, recipients, content)] = smtp_server.messages
    assert (sender, recipients) == ("releaser@example.org", ["releases@example.org", "oncall@example.org"])
    message = message_from_bytes(content, policy=default_policy)
    assert message["Subject"] == "[releaser] prod: go-live of r7 FAILED; every server is back on r6"
    body = message.get_content()
    assert "Releases:    live r6, attempted r7" in body
    assert "Detail:      web-2: GET /healthz -> 502" in body
    assert "  2. Follow: invoke runbook go-live" in body


def test_only_subscribed_channels_and_events_are_sent(receiver, other_receiver, smtp_server):
    """Each channel gets only the events it lists; an action no channel wants sends nothing at all."""
    notifier = Notifier([webhook(receiver.url, events=["go-live-done"]),
                         webhook(other_receiver.url, name="pager", events=["go-live-failed"]),
                         email(smtp_server.port, events=["rolled-back"])], SECRETS)
    notifier.send(event(outcome="done"))
    notifier.send(event(action="stage", outcome="done"))
    deliveries = notifier.wait()
    assert [(d.channel, d.event_name, d.ok) for d in deliveries] == [("ops-chat", "go-live-done", True)]
    assert [body["event"] for body in receiver.bodies()] == ["go-live-done"]
    assert other_receiver.requests == [] and smtp_server.messages == []


def test_send_returns_before_a_slow_receiver_answers(receiver):
    """send() hands the event to the background: it is back while the receiver still holds its answer."""
    receiver.hold = True
    notifier = Notifier([webhook(receiver.url, timeout=10.0)], SECRETS)
    notifier.send(event())
    assert not receiver.answered.is_set()  # the receiver cannot answer before the test releases it, below
    assert receiver.received.wait(10)
    receiver.release.set()
    [delivery] = notifier.wait(timeout=10)
    assert delivery.ok and receiver.answered.is_set()


def test_a_channel_that_is_down_is_reported_not_raised(smtp_server):
    """A closed port gives ok=False with a one-line reason, for a webhook and for e-mail alike."""
    closed = free_ports(1)[0]
    notifier = Notifier([webhook(f"http://127.0.0.1:{closed}/hook"), email(closed)], SECRETS)
    notifier.send(event(outcome="reverted"))
    deliveries = notifier.wait()
    assert [(d.channel, d.ok) for d in deliveries] == [("ops-chat", False), ("release-team", False)]
    assert deliveries[0].detail == f"POST to 127.0.0.1:{closed}: connection refused (is it running?)"
    assert deliveries[1].detail == f"SMTP 127.0.0.1:{closed}: connection refused (is it running?)"


def test_a_receiver_that_never_answers_times_out(receiver):
    """A receiver holding the request past the channel's timeout is reported as not answering."""
    receiver.hold = True
    notifier = Notifier([webhook(receiver.url, timeout=0.3)], SECRETS)
    notifier.send(event())
    [delivery] = notifier.wait(timeout=10)
    assert delivery == Delivery("ops-chat", "go-live-done", False,
                                f"POST to 127.0.0.1:{receiver.server.server_address[1]}: no answer within 0.3 s")


def test_wait_gives_up_on_a_send_still_under_way_and_reports_it_once(receiver):
    """wait(timeout) never blocks longer than asked; the send it gave up on is not reported again."""
    receiver.hold = True
    notifier = Notifier([webhook(receiver.url, timeout=10.0)], SECRETS)
    notifier.send(event())
    assert receiver.received.wait(10)
    [delivery] = notifier.wait(timeout=0.1)
    assert delivery == Delivery("ops-chat", "go-live-done", False,
                                "no result within 0.1 s; still sending in the background")
    receiver.release.set()
    assert notifier.wait(timeout=0.1) == []


def test_a_missing_secret_variable_is_named_and_nothing_is_sent(receiver, smtp_server):
    """Without the variable the file names, the channel reports which variable to set and sends nothing."""
    notifier = Notifier([webhook(receiver.url), email(smtp_server.port)], secrets={})
    notifier.send(event(outcome="reverted"))
    assert [(d.ok, d.detail) for d in notifier.wait()] == [
        (False, "webhook token variable RELEASER_WEBHOOK_TOKEN is not set"),
        (False, "SMTP password variable RELEASER_SMTP_PASSWORD is not set")]
    assert receiver.requests == [] and smtp_server.messages == [] and smtp_server.logins == []


def test_secrets_never_appear_in_deliveries_errors_or_logs(receiver, smtp_server, caplog, capfd):
    """A receiver echoing the token and a server refusing the login leave no secret in any text we produce."""
    receiver.status, receiver.echo_authorization = 401, True
    wrong_password = "pw-wrong-SECRET-0042"
    secrets = {"RELEASER_WEBHOOK_TOKEN": TOKEN, "RELEASER_SMTP_PASSWORD": wrong_password}
    caplog.set_level(logging.DEBUG)
    notifier = Notifier([webhook(receiver.url), email(smtp_server.port)], secrets)
    notifier.send(event(outcome="reverted"))
    deliveries = notifier.wait()
    assert [d.ok for d in deliveries] == [False, False]
    assert deliveries[0].detail.endswith("HTTP 401 Unauthorized: bad credentials: Bearer ***")
    assert deliveries[1].detail == f"SMTP 127.0.0.1:{smtp_server.port}: login as releaser refused (535)"
    captured = capfd.readouterr()
    # The test's own SMTP server logs the wire under "mail.log"; only what releaser and the stdlib produce counts.
    logged = [record.getMessage() for record in caplog.records if not record.name.startswith("mail.log")]
    texts = [repr(d) for d in deliveries] + [repr(notifier), captured.out, captured.err, *logged]
    for secret in (TOKEN, wrong_password):
        assert not [text for text in texts if secret in text]


def test_starttls_against_a_server_without_it_is_refused_before_the_password(smtp_server):
    """Asking for STARTTLS from a server that does not offer it fails, and no login is attempted."""
    notifier = Notifier([email(smtp_server.port, starttls=True)], SECRETS)
    notifier.send(event(outcome="reverted"))
    [delivery] = notifier.wait()
    assert not delivery.ok and "STARTTLS extension not supported by server" in delivery.detail
    assert smtp_server.logins == [] and smtp_server.messages == []


def test_no_password_in_clear_text_to_a_remote_server():
    """A login without STARTTLS to a server that is not this machine is refused before connecting."""
    channel = email(25).model_copy(update={"host": "smtp.example.org"})
    notifier = Notifier([channel], SECRETS)
    notifier.send(event(outcome="reverted"))
    [delivery] = notifier.wait()
    assert delivery.detail == "SMTP smtp.example.org:25: refusing to send the password unencrypted; set starttls = true"


def test_a_redirect_is_not_followed_so_the_token_stays_with_the_named_url(receiver, other_receiver):
    """A 302 is a failed delivery; the event and the token never reach the URL it points to."""
    receiver.status, receiver.location = 302, other_receiver.url
    notifier = Notifier([webhook(receiver.url)], SECRETS)
    notifier.send(event())
    [delivery] = notifier.wait()
    assert not delivery.ok and "HTTP 302" in delivery.detail
    assert other_receiver.requests == []
