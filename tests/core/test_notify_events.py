"""Notifications, the pure half: which journal events notify, what they say, and how channels are configured."""

import json
from email import message_from_bytes
from email.policy import default as default_policy

import pytest

from releaser.config import NOTIFICATION_EVENTS, EmailChannel, WebhookChannel, load_environment
from releaser.errors import ConfigError
from releaser.notify import compose_email, event_name, headline, next_steps, webhook_body

from conftest import ONE_SERVER_TOML, PROJECT

SERVERS = ONE_SERVER_TOML

WEBHOOK = """
[[notifications]]
kind = "webhook"
name = "ops-chat"
url = "https://hooks.example.org/releaser"
token_env = "RELEASER_WEBHOOK_TOKEN"
events = ["go-live-done", "go-live-failed", "rolled-back"]
"""

EMAIL = """
[[notifications]]
kind = "email"
name = "release-team"
host = "smtp.example.org"
port = 587
starttls = true
sender = "releaser@example.org"
to = ["releases@example.org", "oncall@example.org"]
username = "releaser"
password_env = "RELEASER_SMTP_PASSWORD"
events = ["go-live-failed", "rolled-back", "check-failed"]
timeout = 10
"""

FAILED_GO_LIVE = {
    "id": "4f1c", "at": "2026-12-01T09:30:02.123Z", "action": "go-live", "outcome": "reverted",
    "environment": "prod", "actor": "ana@build-01", "releases": {"live": "r6", "attempted": "r7"},
    "servers": ["web-1", "web-2", "web-3"], "detail": "web-3: GET /healthz -> 502",
}


def load(tmp_path, extra: str):
    """Load an environment made of one server plus `extra` TOML."""
    path = tmp_path / "env.toml"
    path.write_text(SERVERS + extra)
    return load_environment(str(path), PROJECT)


def config_error(tmp_path, extra: str) -> ConfigError:
    """Return the ConfigError an environment with `extra` TOML raises."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, extra)
    return caught.value


def shown(error: ConfigError, tmp_path) -> str:
    """The error's text as a user in the file's folder reads it."""
    return str(error).replace(f"{tmp_path}/", "")


@pytest.mark.parametrize(("action", "outcome", "expected"), [
    pytest.param("go-live", "done", "go-live-done", id="go-live-done"),
    pytest.param("go-live", "reverted", "go-live-failed", id="go-live-reverted"),
    pytest.param("go-live", "mixed", "go-live-failed", id="go-live-mixed"),
    pytest.param("go-live", "failed", "go-live-failed", id="go-live-failed"),
    pytest.param("go-live", "refused", "go-live-failed", id="go-live-refused"),
    pytest.param("rollback", "done", "rolled-back", id="rollback-done"),
    pytest.param("rollback", "unhealthy", "rolled-back", id="rollback-unhealthy"),
    pytest.param("notice", "done", "notice-published", id="notice-done"),
    pytest.param("check", "failed", "check-failed", id="check-failed"),
    pytest.param("check", "done", None, id="check-passed-is-quiet"),
    pytest.param("stage", "done", None, id="stage-is-quiet"),
    pytest.param("lock", "done", None, id="lock-is-quiet"),
    pytest.param(None, None, None, id="not-an-event"),
])
def test_event_name_maps_action_and_outcome(action, outcome, expected):
    """Each journal action/outcome pair maps to one notification event, or to none."""
    assert event_name({"action": action, "outcome": outcome}) == expected


def test_every_known_event_can_happen():
    """No event name a channel may subscribe to is unreachable from the journal."""
    pairs = [(a, o) for a in ("go-live", "rollback", "notice", "check")
             for o in ("done", "reverted", "mixed", "failed", "refused", "unhealthy")]
    assert {event_name({"action": a, "outcome": o}) for a, o in pairs} - {None} == set(NOTIFICATION_EVENTS)


def test_failed_go_live_says_where_every_server_is_and_what_to_run():
    """A reverted go-live names both releases and points at the status command and the go-live runbook."""
    assert headline(FAILED_GO_LIVE, "go-live-failed") == "prod: go-live of r7 FAILED; every server is back on r6"
    assert next_steps(FAILED_GO_LIVE, "go-live-failed")[:2] == [
        "See where each server stands: invoke status --env prod", "Follow: invoke runbook go-live"]


def test_mixed_fleet_is_loud():
    """A go-live that left servers on different releases says so first, and sends to the rollback runbook."""
    mixed = {**FAILED_GO_LIVE, "outcome": "mixed"}
    assert "MIXED" in headline(mixed, "go-live-failed")
    assert "invoke runbook rollback" in next_steps(mixed, "go-live-failed")[0]


def test_webhook_body_is_the_journal_event_plus_its_name_and_a_chat_line():
    """The JSON keeps every journal field and adds `event` and a human `text`."""
    body = json.loads(webhook_body(FAILED_GO_LIVE, "go-live-failed"))
    assert {key: body[key] for key in FAILED_GO_LIVE} == FAILED_GO_LIVE
    assert body["event"] == "go-live-failed"
    assert body["text"] == "prod: go-live of r7 FAILED; every server is back on r6\nweb-3: GET /healthz -> 502"


def test_email_a_person_can_act_on():
    """The e-mail carries subject, recipients, the event's own time, the releases, the detail and next steps."""
    channel = EmailChannel(kind="email", name="team", host="smtp.example.org", sender="releaser@example.org",
                           to=["a@example.org", "b@example.org"], events=["go-live-failed"])
    message = compose_email(channel, FAILED_GO_LIVE, "go-live-failed", timezone="Europe/London")
    parsed = message_from_bytes(message.as_bytes(), policy=default_policy)
    body = parsed.get_content()
    assert parsed["Subject"] == "[releaser] prod: go-live of r7 FAILED; every server is back on r6"
    assert parsed["To"] == "a@example.org, b@example.org"
    assert parsed["Date"] == "Tue, 01 Dec 2026 09:30:02 +0000"
    assert "When:        2026-12-01 09:30:02.123 Europe/London" in body
    assert "Releases:    live r6, attempted r7" in body
    assert "Detail:      web-3: GET /healthz -> 502" in body
    assert "What to do next:\n  1. See where each server stands: invoke status --env prod" in body


def test_channels_load_from_an_environment_file(tmp_path):
    """A webhook and an e-mail channel load with their defaults; only variable names are kept, never values."""
    environment = load(tmp_path, WEBHOOK + EMAIL)
    webhook, email = environment.notifications
    assert isinstance(webhook, WebhookChannel) and webhook.token_env == "RELEASER_WEBHOOK_TOKEN"
    assert webhook.timeout == 5.0
    assert isinstance(email, EmailChannel) and (email.port, email.starttls, email.timeout) == (587, True, 10.0)


def test_an_environment_without_channels_notifies_nobody(tmp_path):
    """notifications is optional; older environment files still load."""
    assert load(tmp_path, "").notifications == []


@pytest.mark.parametrize(("extra", "message"), [
    pytest.param(WEBHOOK.replace('"rolled-back"', '"rollback"'),
                 "env.toml: notifications[0].webhook.events: unknown event 'rollback'; known events are: "
                 "go-live-done, go-live-failed, rolled-back, notice-published, check-failed", id="unknown-event"),
    pytest.param(WEBHOOK.replace('kind = "webhook"', 'kind = "slack"'),
                 'env.toml: notifications[0]: expected kind = "webhook" or kind = "email"', id="unknown-kind"),
    pytest.param(EMAIL.replace("starttls", "start_tls"),
                 "env.toml: notifications[0].email.start_tls: unknown field (a typo?)", id="typo"),
    pytest.param(EMAIL.replace('password_env = "RELEASER_SMTP_PASSWORD"\n', ""),
                 "env.toml: notifications[0].email: username and password_env go together", id="login-half-set"),
    pytest.param(WEBHOOK + WEBHOOK, "env.toml: notifications: notification channel names must be unique; "
                 "repeated: ops-chat", id="duplicate-name"),
    pytest.param(WEBHOOK.replace("events = [", "events = []\n# ["), "env.toml: notifications[0].webhook.events: "
                 "list should have at least 1 item", id="no-events"),
])
def test_bad_channel_names_file_field_and_fix(tmp_path, extra, message):
    """A bad channel is refused with the file, the field and what is expected."""
    assert shown(config_error(tmp_path, extra), tmp_path).startswith(message)


@pytest.mark.parametrize("extra", [
    pytest.param(EMAIL + 'password = "hunter2-in-the-file"\n', id="password-field"),
    pytest.param(WEBHOOK + 'token = "hunter2-in-the-file"\n', id="token-field"),
    pytest.param(WEBHOOK.replace('"RELEASER_WEBHOOK_TOKEN"', '"hunter2-in-the-file"'), id="value-in-token_env"),
    pytest.param(WEBHOOK.replace("https://hooks", "https://ops:hunter2-in-the-file@hooks"), id="url-credentials"),
])
def test_a_secret_in_the_file_is_refused_and_never_echoed(tmp_path, extra):
    """Secrets belong in variables: the file is refused, and neither the message nor its cause repeats the value."""
    error = config_error(tmp_path, extra)
    assert "_env" in str(error)
    assert "hunter2" not in str(error) and "hunter2" not in str(error.__cause__)


def test_password_field_points_at_password_env(tmp_path):
    """`password = ...` in an e-mail channel is refused with a pointer to password_env."""
    error = config_error(tmp_path, EMAIL + 'password = "hunter2"\n')
    assert shown(error, tmp_path).startswith(
        "env.toml: notifications[0].email: password: secrets never go in an environment file; "
        "put it in an environment variable on this machine and name that variable in password_env")


@pytest.mark.parametrize("outcome", ["reverted", "mixed"])
def test_a_failed_rollback_is_never_announced_as_done(outcome):
    """A rollback that was reverted or left servers mixed is told as a failure, not as 'live again'."""
    from releaser.notify import event_name, headline

    event = {"action": "rollback", "outcome": outcome, "environment": "prod", "releases": {"live": "r1"}}
    assert event_name(event) == "rolled-back"
    text = headline(event, "rolled-back")
    assert "FAILED" in text and "live again" not in text
