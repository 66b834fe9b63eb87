"""Environment files: the pydantic models for what a person writes in environments/<name>.toml.

`load_environment` is the only function here that reads a file. Every error it raises names the file,
the field and what was expected, and unknown keys are refused so a typo is never silently ignored.

No `from __future__ import annotations` here: pydantic would have to evaluate every annotation from its text
when each model is built, at the start of every command (~10 ms of a cold start, measured with bench/startup.py's
interpreter and a loop of imports).
"""

import re
import tomllib
from collections.abc import Mapping
from datetime import date
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Strict as StrictType,
                      Tag, ValidationError, field_validator, model_validator)

from releaser.errors import ConfigError

if TYPE_CHECKING:
    from releaser.calendar import Schedule

# Python `re` syntax, ending in `\Z` (the end of the text): with `$`, re.match(NAME_PATTERN, "web-1\n") would
# match, as `$` also matches before a trailing newline. uploads.py matches names with it too. pydantic's default
# Rust engine has no `\Z`, so fields take the compiled pattern, which pydantic runs with Python's `re`; the
# other Field(pattern="...$") strings run in the Rust engine, where `$` is already the end of the text.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z"
_NAME = re.compile(NAME_PATTERN)


class Strict(BaseModel):
    """Base for every model a person writes: unknown keys are an error, values are frozen, and types are strict.

    TOML has real integers, floats and booleans, so `port = "22"` or `allow_go_live_now = "yes"` is a mistake to
    report, not to convert (an integer is still accepted where a float is expected). Dates and paths stay lax: see
    `Day` and Environment.path.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# A calendar day, left lax under the strict base: a TOML date arrives as a date, and "2026-12-25" in quotes or a
# TOML datetime at midnight converts as it always has.
Day = Annotated[date, StrictType(False)]


# A login name as useradd takes it (no leading '-': it would read as an option); a host as DNS or an address.
# (directory logins such as jdoe@corp.example and svc$ included; '_' in host names, as internal DNS often has)
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@$-]{0,63}\Z")
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DNS_NAME = re.compile(rf"^(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*\.?\Z")
User = Annotated[str, AfterValidator(lambda user: _checked(user, _USER, "a login name (letters, digits, '_', '.', "
                                                                     "'@', '$', '-', not starting with '-')"))]


def _one_line(text: str) -> str:
    """Text a person reads (a title, a name, a contact): one line of printable characters, as a --reason is.

    It reaches the terminal, the breach report's Markdown table, the .ics and the dashboard: a newline breaks
    each of them, and an escape sequence drives the terminal that shows the report.
    """
    from releaser.free_text import control_character_problem

    problem = control_character_problem(text)
    if problem:
        raise ValueError(f"holds {problem}; it must be one line of plain text (no newline, tab, terminal codes or "
                         "direction overrides)")
    return text


OneLine = Annotated[str, AfterValidator(_one_line)]


def _checked(value: str, pattern: re.Pattern, expected: str) -> str:
    if not pattern.match(value):
        raise ValueError(f"expected {expected}, got {value!r}")
    return value


def _is_host(host: str) -> str:
    """A DNS name or an IP address, nothing a resolver or ssh could read as anything else."""
    import ipaddress

    try:
        ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
        return host.removeprefix("[").removesuffix("]")
    except ValueError:
        return _checked(host, _DNS_NAME, "a DNS name (letters, digits, '-', '_' and '.') or an IP address")


def _url_path(path: str) -> str:
    """A URL path: it starts with '/' and has no space or control character (HTTP clients refuse those, so a
    check or a verify would fail on every server at every switch instead of at load)."""
    if not re.match(r"^/[^\x00-\x20\x7f]*\Z", path):
        raise ValueError(f"expected a URL path starting with '/', without spaces or control characters, got {path!r} "
                         "(write a space as %20)")
    return path


class SshSettings(Strict):
    """How to reach servers over SSH; each server may override user, port and key_file."""

    user: User | None = None
    port: int = Field(22, ge=1, le=65535)
    key_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    check_host_keys: bool = True
    connect_timeout: float = Field(10.0, gt=0, le=300)


class Server(Strict):
    """One web server: its name, how to reach it, its app root and its two URLs."""

    name: str = Field(pattern=_NAME)
    host: Annotated[str, AfterValidator(_is_host)] | None = None  # required over SSH (checked by load_environment)
    port: int | None = Field(None, ge=1, le=65535)
    user: User | None = None
    key_file: str | None = None
    root: str
    live_url: str
    staging_url: str
    app_ports: list[Annotated[int, Field(ge=1, le=65535)]] | None = Field(None, min_length=3)  # else [application] ports

    @field_validator("root")
    @classmethod
    def _is_an_app_root(cls, root: str) -> str:
        parts = PurePosixPath(root).parts
        if not root.strip().strip("/"):
            raise ValueError(f"expected the app's own directory, got {root!r}: releaser writes releases/, live, "
                             "backup, staging and .releaser/ in it")
        if ".." in parts:
            raise ValueError(f"expected a path without '..', got {root!r}: write the app root in full")
        from releaser.free_text import control_character_problem

        problem = control_character_problem(root)
        if problem:  # every message that names the root would break its line there, or drive the terminal
            raise ValueError(f"expected a path of printable characters, got {root!r} ({problem})")
        return root

    @field_validator("live_url", "staging_url")
    @classmethod
    def _is_http(cls, url: str) -> str:
        from urllib.parse import urlsplit

        if not re.match(r"^https?://[^\x00-\x20\x7f/]+(/[^\x00-\x20\x7f]*)?\Z", url):
            raise ValueError(f"expected an http:// or https:// URL without spaces or control characters, got {url!r} "
                             "(write a space as %20)")
        try:
            urlsplit(url).port  # a port that is not a number in range
        except ValueError as error:
            raise ValueError(f"expected an http:// or https:// URL, got {url!r} ({error})") from None
        return url.rstrip("/")


class HealthCheck(Strict):
    """What a healthy live server answers, checked over HTTP after every switch."""

    path: Annotated[str, AfterValidator(_url_path)] = "/healthz"
    status: int = 200
    contains: str | None = None
    timeout: float = Field(5.0, gt=0)
    attempts: int = Field(3, ge=1)


class Hooks(Strict):
    """Shell commands run on every server at fixed points. Release id and slot arrive as
    RELEASER_RELEASE_ID and RELEASER_SLOT in the environment, never pasted into the command."""

    after_unpack: str | None = None
    after_switch: str | None = None


class Sandbox(Strict):
    """Local environment only: serve each server's live and staging slots over HTTP while a command runs."""

    serve: bool = True
    # With [staging_access] declared, the sandbox's staging servers answer only requests carrying the
    # credential. false rehearses the mistake the embargo check exists for: staging open to the public.
    protect_staging: bool = True


WEEKDAY_ABBREVIATIONS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_RELATIVE_FILE = re.compile(r"^[A-Za-z0-9._+@=-][A-Za-z0-9._+@=/ -]*\Z")  # \Z: no trailing newline


class Publication(Strict):
    """One publication's calendar: its release rule, upload deadline, time zone and holiday policy."""

    name: str = Field(pattern=_NAME)
    title: OneLine = ""
    rule: str
    deadline: str
    timezone: str = "Europe/London"
    on_holiday: Literal["next-working-day", "refuse"] = "next-working-day"
    extra_dates: list[Day] = []
    cancelled_dates: list[Day] = []

    @field_validator("rule")
    @classmethod
    def _rule_is_readable(cls, text: str) -> str:
        from releaser.calendar import CalendarError, parse_release_rule  # only for files that declare publications

        try:
            parse_release_rule(text)
        except CalendarError as error:
            raise ValueError(_calendar_message(error, text)) from error
        return text

    @field_validator("deadline")
    @classmethod
    def _deadline_is_readable(cls, text: str) -> str:
        from releaser.calendar import CalendarError, parse_deadline_rule

        try:
            parse_deadline_rule(text)
        except CalendarError as error:
            raise ValueError(_calendar_message(error, text)) from error
        return text

    @field_validator("timezone")
    @classmethod
    def _timezone_is_known(cls, name: str) -> str:
        from releaser.calendar import CalendarError, check_timezone

        try:
            return check_timezone(name)
        except CalendarError as error:
            raise ValueError(_calendar_message(error, name)) from error

    def schedule(self) -> "Schedule":
        """Return the calendar's Schedule for this publication (already validated, so it never raises)."""
        from releaser.calendar import Schedule, parse_deadline_rule, parse_release_rule

        return Schedule(self.name, parse_release_rule(self.rule), parse_deadline_rule(self.deadline),
                        timezone=self.timezone, on_holiday=self.on_holiday,
                        extra_dates=tuple(self.extra_dates), cancelled_dates=tuple(self.cancelled_dates))


class SmokeCheck(Strict):
    """An acceptance check run against every server's staging URL: a path and what it must answer."""

    name: str = ""
    path: Annotated[str, AfterValidator(_url_path)] = "/"
    status: int = Field(200, ge=100, le=599)
    contains: str | None = None
    json_field: str | None = None  # dotted path into a JSON body, e.g. "checks.database"
    json_equals: str | int | float | bool | None = None
    timeout: float = Field(5.0, gt=0)

    @property
    def label(self) -> str:
        """The name shown in tables: the given name, else the path."""
        return self.name or self.path


class ConfigParity(Strict):
    """Which configuration files must be equal in the staged and live release, and which keys may differ."""

    files: list[str] = ["config/app.toml"]
    slot_specific: list[str] = []  # dotted keys allowed to differ, e.g. "server.port"

    @field_validator("files")
    @classmethod
    def _files_are_relative(cls, files: list[str]) -> list[str]:
        for name in files:
            if not _RELATIVE_FILE.match(name) or ".." in PurePosixPath(name).parts:
                raise ValueError(f"expected a path inside the release (relative, no '..'), got {name!r}")
        return files


class StagingAccess(Strict):
    """The private credential staging demands: a request header whose token comes from a variable on this machine."""

    header: str = Field("X-Releaser-Preview", pattern=r"^[A-Za-z0-9-]{1,64}$")
    token_env: str = Field("RELEASER_PREVIEW_TOKEN", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    # Local sandbox only (refused with transport = "ssh"): the token when the variable is unset.
    sandbox_token: str | None = None

    def token(self, environ: Mapping[str, str]) -> str | None:
        """Return the token from the named variable in `environ`, else the sandbox token, else None."""
        return environ.get(self.token_env) or self.sandbox_token

    def headers(self, environ: Mapping[str, str]) -> dict[str, str]:
        """Return the header that lets a request through to staging (empty when no token is known)."""
        token = self.token(environ)
        return {self.header: token} if token else {}


class Leave(Strict):
    """A period someone is away, both days included."""

    start: Day
    end: Day

    @model_validator(mode="after")
    def _ends_after_start(self) -> "Leave":
        if self.end < self.start:
            raise ValueError(f"leave ends ({self.end}) before it starts ({self.start})")
        return self


class Person(Strict):
    """Someone on the on-call rota: the days they are on duty, whether they can roll back, their leave."""

    name: OneLine = Field(min_length=1)
    contact: OneLine = ""
    can_rollback: bool = False
    days: list[Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]] = ["Mon", "Tue", "Wed", "Thu", "Fri"]
    leave: list[Leave] = []

    def is_on_duty(self, day: date) -> bool:
        """Say whether this person is on the rota that weekday and not on leave that day."""
        if WEEKDAY_ABBREVIATIONS[day.weekday()] not in self.days:
            return False
        return not any(period.start <= day <= period.end for period in self.leave)


class People(Strict):
    """Who runs a release and who answers when it goes wrong."""

    release_manager: OneLine | None = None
    on_call: list[Person] = []
    escalation: list[OneLine] = []  # the route, in order: "on-call: ben 07700 900123", "ICT service desk", ...


class Thresholds(Strict):
    """The limits the pre-release checks judge against."""

    max_clock_skew_seconds: float = Field(2.0, gt=0)
    warn_clock_skew_seconds: float = Field(0.5, ge=0)
    min_free_mib: int = Field(1024, ge=0)
    warn_free_mib: int | None = Field(None, ge=0)  # default: twice min_free_mib
    min_release_gap_days: float = Field(7.0, ge=0)
    min_on_call: int = Field(2, ge=0)
    slow_smoke_seconds: float = Field(2.0, gt=0)


# Notifications (issue 6). Kept here so an environment file is validated whole; sending lives in notify.py.
NOTIFICATION_EVENTS = ("go-live-done", "go-live-failed", "rolled-back", "notice-published", "check-failed")
_VARIABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z"  # for re.match: \Z, not $
# Keys a person might reach for to paste a secret; refused with a pointer to the *_env field instead.
_SECRET_KEYS = {"password": "password_env", "token": "token_env", "secret": "token_env",
                "api_key": "token_env", "bearer": "token_env", "smtp_password": "password_env"}


class _Channel(Strict):
    """What every notification channel has: a name, the events it wants and how long one send may take."""

    # A secret wrongly pasted into a channel must not come back in a validation error's text; an
    # Environment hides it beforehand (_hide_secret_values), a channel built on its own hides its input.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, hide_input_in_errors=True)

    name: str = Field(pattern=_NAME)
    events: list[str] = Field(min_length=1)
    timeout: float = Field(5.0, gt=0, le=60)

    @model_validator(mode="before")
    @classmethod
    def _no_secret_in_the_file(cls, data: object) -> object:
        if isinstance(data, dict):
            for key, instead in _SECRET_KEYS.items():
                if key in data:
                    raise ValueError(f"{key}: secrets never go in an environment file; put it in an environment "
                                     f"variable on this machine and name that variable in {instead}")
        return data

    @field_validator("events")
    @classmethod
    def _events_are_known(cls, events: list[str]) -> list[str]:
        unknown = [event for event in events if event not in NOTIFICATION_EVENTS]
        if unknown:
            raise ValueError(f"unknown event {unknown[0]!r}; known events are: {', '.join(NOTIFICATION_EVENTS)}")
        if len(set(events)) != len(events):
            raise ValueError(f"an event is listed twice in {events!r}")
        return events


class WebhookChannel(_Channel):
    """POST each wanted event as JSON to a URL, with an optional bearer token read from a variable."""

    kind: Literal["webhook"]
    url: str
    token_env: str | None = None

    @field_validator("token_env")
    @classmethod
    def _token_env_is_a_name(cls, name: str | None) -> str | None:
        return _variable_name(name)

    @field_validator("url")
    @classmethod
    def _is_http_without_credentials(cls, url: str) -> str:
        if not re.match(r"^https?://[^\s/]+", url):
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        if "@" in url.split("/")[2]:
            raise ValueError("the URL holds credentials; put the token in a variable and name it in token_env")
        return url

    @model_validator(mode="after")
    def _token_only_over_https(self) -> "WebhookChannel":
        """A bearer token over plain http can be read on the way; only this machine's loopback is exempt."""
        if self.token_env and self.url.startswith("http://") and not _is_loopback_url(self.url):
            raise ValueError("a token_env is sent as a bearer token, and this URL is plain http to another host; "
                             "use https:// (or drop token_env)")
        return self


class EmailChannel(_Channel):
    """Send each wanted event as a plain-text e-mail over SMTP; the password is read from a variable."""

    kind: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(25, ge=1, le=65535)
    starttls: bool = False
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[str] = Field(min_length=1)
    username: str | None = None
    password_env: str | None = None

    @field_validator("password_env")
    @classmethod
    def _password_env_is_a_name(cls, name: str | None) -> str | None:
        return _variable_name(name)

    @field_validator("to")
    @classmethod
    def _addresses(cls, addresses: list[str]) -> list[str]:
        for address in addresses:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+", address):
                raise ValueError(f"expected an e-mail address, got {address!r}")
        return addresses

    @model_validator(mode="after")
    def _login_is_whole(self) -> "EmailChannel":
        if (self.username is None) != (self.password_env is None):
            raise ValueError("username and password_env go together: set both to log in, or neither")
        return self


def _variable_name(name: str | None) -> str | None:
    if name is not None and not re.match(_VARIABLE_NAME, name):
        raise ValueError("expected the name of an environment variable (letters, digits, '_'), not its value")
    return name


def _hide_secret_values(channels: object) -> object:
    """Blank out whatever may be a secret pasted into the file, so no error message can echo it."""
    if not isinstance(channels, list):
        return channels
    hidden = []
    for channel in channels:
        if isinstance(channel, dict):
            channel = {key: "(not shown)" if key in _SECRET_KEYS else value for key, value in channel.items()}
            for key in ("token_env", "password_env"):
                if isinstance(channel.get(key), str) and not re.match(_VARIABLE_NAME, channel[key]):
                    channel[key] = "(not shown)"
            if isinstance(channel.get("url"), str):
                channel["url"] = re.sub(r"(?i)^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1(not shown)@", channel["url"])
        hidden.append(channel)
    return hidden


def _channel_kind(channel: object) -> str | None:
    return channel.get("kind") if isinstance(channel, dict) else getattr(channel, "kind", None)


def _unique_channel_names(channels: list) -> list:
    names = [channel.name for channel in channels]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"notification channel names must be unique; repeated: {', '.join(duplicates)}")
    return channels


NotificationChannel = Annotated[
    Annotated[WebhookChannel, Tag("webhook")] | Annotated[EmailChannel, Tag("email")],
    Discriminator(_channel_kind, custom_error_type="channel_kind",
                  custom_error_message='expected kind = "webhook" or kind = "email"'),
]
NotificationChannels = Annotated[list[NotificationChannel], BeforeValidator(_hide_secret_values),
                                 AfterValidator(_unique_channel_names)]


class Deadlines(Strict):
    """Seconds each step with a server may take before that server counts as lost (see README, Deadlines).

    `step` bounds every round trip that is not a phase of a switch (lock, status, journal, unpack);
    `upload_stall` ends an upload that has not moved for that long. The SSH connection also sends
    keepalives and tells the kernel to give up on unacknowledged data after `step`, so a silent network
    drop (packets vanish, nothing is closed) costs at most one deadline, never a hang.
    """

    step: float = Field(20.0, gt=0, le=3600)  # an hour at most: a deadline must end (not inf, not 1e300)
    prepare: float = Field(60.0, gt=0, le=3600)  # checks every file's sha256 on the server: a big release needs time
    commit: float = Field(10.0, gt=0, le=3600)
    verify: float = Field(30.0, gt=0, le=3600)
    revert: float = Field(20.0, gt=0, le=3600)
    upload_stall: float = Field(30.0, gt=0, le=3600)
    keepalive: float = Field(5.0, gt=0, le=3600)


class GoLiveSettings(Strict):
    """How a scheduled go-live runs: when the checks run, when servers are prepared, what it requires."""

    lead_minutes: float = Field(10.0, ge=0)
    prepare_seconds: float = Field(60.0, ge=1)
    rehearsal_max_age_days: float = Field(7.0, ge=0)  # 0: a rehearsal is not required

    @property
    def rehearsal_required(self) -> bool:
        """Whether a go-live needs a recent rehearsal on record (the rehearsal check, go-live's warning)."""
        return self.rehearsal_max_age_days > 0


class BreachMetadata(Strict):
    """What `invoke breach-report` fills in at the top of the report, as the regulator asks for it."""

    producer: OneLine = ""
    lead_official: OneLine = ""
    lead_official_contact: OneLine = ""
    output_name: OneLine = ""
    output_url: OneLine = ""
    practice: OneLine = "Principle T3 (Orderly release), practice T3.2: release at the pre-announced time"


# Issue 13: slots that run a web application, one instance per slot behind an nginx front.
_UNIT = re.compile(r"^[A-Za-z0-9_.:-]+@\.service\Z")
_ADDRESS = re.compile(r"^[A-Za-z0-9.-]{1,253}\Z")  # an IPv4 address or a host name: it goes into nginx's `server` line


class Front(Strict):
    """The nginx in front of the instances, and how releaser moves it from one instance to another.

    Give one of the two ways. `socket` (no reload, so no request is lost): the site's `upstream` names
    `server unix:SOCKET;`, a symbolic link releaser keeps pointing at the live instance's own unix socket
    (instance-PORT.sock in the same directory, RELEASER_SOCKET to the instance); the switch renames that link.
    `include`: the site's `upstream` block includes a file holding a single `server ADDRESS:PORT;` line that
    releaser replaces by rename and a graceful reload; `nginx` is the argv releaser appends `-t` and
    `-s reload` to (add `-p`/`-c` when nginx does not use its default files). Relative paths are taken from
    the server's app root.
    """

    include: str | None = Field(None, min_length=1)
    socket: str | None = Field(None, min_length=1)
    nginx: list[str] = Field(["nginx"], min_length=1)

    @field_validator("include", "socket")
    @classmethod
    def _is_a_file_path(cls, path: str | None) -> str | None:
        from releaser.free_text import is_unprintable

        if path is not None and (path.endswith("/") or not path.strip() or any(is_unprintable(c) for c in path)):
            raise ValueError(f"expected the path of a file, got {path!r}")
        if path is not None and path.startswith("-"):
            raise ValueError(f"a path starting with '-' reads as an option to the commands that use it: write "
                             f"./{path} or the full path, got {path!r}")
        parts = path.split("/") if path is not None else []
        inside = "/".join(parts[:2]) if parts[:2] == [".releaser", "instances"] else \
            parts[0] if parts and parts[0] in ("live", "backup", "staging", "releases") else None
        if inside is not None and len(parts) > 1:
            raise ValueError(f"{path!r} is inside {inside}/, which releaser moves or fills itself: choose a directory "
                             "of its own (e.g. .releaser/front/live.sock)")
        return path

    @model_validator(mode="after")
    def _one_way_to_move(self) -> "Front":
        if (self.include is None) == (self.socket is None):
            raise ValueError("give either socket (a link to the live instance's unix socket, no reload) or include "
                             "(a file naming the live upstream, replaced and reloaded), not both or neither")
        return self


class Application(Strict):
    """How to run one instance of a release on a server: each slot is an instance on a port of its own.

    Either `start` and `stop` (shell commands) or `unit` (a systemd template unit such as "phof@.service",
    started as phof@PORT.service) starts and stops an instance. The release directory, port, slot, address
    and pid file reach them as RELEASER_RELEASE_DIR, RELEASER_PORT, RELEASER_SLOT, RELEASER_ADDRESS and
    RELEASER_PID_FILE in the environment (a unit reads them from EnvironmentFile=<root>/.releaser/instances/%i.env),
    never pasted into the command. An instance keeps its port for its life, from staging to live to backup:
    moving traffic never restarts a process.
    """

    start: str | None = None
    stop: str | None = None
    unit: str | None = None
    address: str = "127.0.0.1"  # private: only the front and the smoke checks on the server reach an instance
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(min_length=3)
    health_path: Annotated[str, AfterValidator(_url_path)] = "/healthz"
    start_timeout: float = Field(30.0, gt=0, le=600)
    stop_timeout: float = Field(30.0, gt=0, le=600)
    release_header: str | None = Field("X-Release-Id", pattern=r"^[A-Za-z0-9-]{1,64}$")
    front: Front | None = None

    @field_validator("address")
    @classmethod
    def _address_is_plain(cls, address: str) -> str:
        if not _ADDRESS.match(address):
            raise ValueError(f"expected an IPv4 address or a host name, got {address!r}")
        return address

    @field_validator("ports")
    @classmethod
    def _ports_are_distinct(cls, ports: list[int]) -> list[int]:
        if len(set(ports)) != len(ports):
            raise ValueError(f"each slot needs a port of its own; repeated in {ports!r}")
        return ports

    @field_validator("unit")
    @classmethod
    def _unit_is_a_template(cls, unit: str | None) -> str | None:
        if unit is not None and not _UNIT.match(unit):
            raise ValueError(f"expected a systemd template unit such as \"phof@.service\", got {unit!r}")
        return unit

    @model_validator(mode="after")
    def _one_way_to_start(self) -> "Application":
        commands = (self.start is not None, self.stop is not None)
        if self.unit is not None and any(commands):
            raise ValueError("give either unit or start and stop, not both")
        if self.unit is None and not all(commands):
            raise ValueError("give unit (a systemd template unit), or both start and stop commands")
        return self


class DataSmoke(Strict):
    """A query run against a data slot: against staging after a load, against live after a switch.

    It passes when it returns a row and, with `expect`, when the first value of that row equals it.
    """

    name: str = ""
    sql: str = Field(min_length=1)
    expect: str | int | float | bool | None = None

    @property
    def label(self) -> str:
        """The name shown in tables: the given name, else the query."""
        return self.name or self.sql


# The schema the application reads. Lower case, so it never needs quoting in the application's SQL, and
# without "__", which releaser uses to name the slots beside it (phof__backup, phof__staging, phof__old_1).
_SCHEMA = re.compile(r"^(?!pg_)[a-z_][a-z0-9_]{0,39}\Z")


class Database(Strict):
    """The PostgreSQL database whose schemas hold each release's data, one schema per slot (DESIGN, Data slots).

    The connection string comes from the environment variable named in `dsn_env`, never from the file,
    since it usually carries a password.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True, hide_input_in_errors=True)

    dsn_env: str = "RELEASER_DATABASE_URL"
    schema_name: str = Field(alias="schema")
    connect_timeout: float = Field(5.0, gt=0)
    # At the second, the switch waits at most this long for queries still reading the old live data, so that
    # no query sees half old and half new tables; past it, the switch goes ahead without waiting.
    fence_timeout: float = Field(2.0, ge=0)
    load_timeout: float = Field(3600.0, gt=0)  # one staging load, all its tables
    smoke: list[DataSmoke] = []

    @model_validator(mode="before")
    @classmethod
    def _no_dsn_in_the_file(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in ("dsn", "url", "password", "conninfo"):
                if key in data:
                    raise ValueError(f"{key}: the connection string never goes in an environment file; put it in "
                                     "an environment variable on this machine and name that variable in dsn_env")
        return data

    @field_validator("dsn_env")
    @classmethod
    def _dsn_env_is_a_name(cls, name: str) -> str:
        if not re.match(_VARIABLE_NAME, name):
            raise ValueError("expected the name of an environment variable (letters, digits, '_'), not its value")
        return name

    @field_validator("schema_name")
    @classmethod
    def _schema_is_plain(cls, name: str) -> str:
        if not _SCHEMA.match(name) or "__" in name:
            raise ValueError("expected a lower-case schema name (letters, digits, '_', at most 40, no '__', "
                             f"not starting with 'pg_'), got {name!r}")
        return name

    def dsn(self, environ: Mapping[str, str]) -> str:
        """Return the connection string from the named variable, or raise ConfigError saying which to set."""
        value = environ.get(self.dsn_env)
        if not value:
            raise ConfigError(f"[database] reads its connection string from ${self.dsn_env}, which is not set",
                              hint=f"export {self.dsn_env}=postgresql://USER@HOST/DB (the password in ~/.pgpass)")
        return value


class Environment(Strict):
    """A whole environment file, validated."""

    description: OneLine = ""
    transport: Literal["local", "ssh"] = "ssh"
    allow_go_live_now: bool = False
    keep_releases: int = Field(3, ge=0)
    parallel: int = Field(32, ge=1, le=256)
    ssh: SshSettings = SshSettings()
    servers: list[Server] = Field(min_length=1)
    health: HealthCheck = HealthCheck()
    hooks: Hooks = Hooks()
    sandbox: Sandbox | None = None
    notice_file: str = Field(".releaser/notice.txt", pattern=r"^[A-Za-z0-9._-][A-Za-z0-9._/-]*$")
    # Issue 5: calendar, pre-release checks, people. All optional so older environment files still load.
    publications: list[Publication] = []
    smoke: list[SmokeCheck] = []
    config_parity: ConfigParity = ConfigParity()
    staging_access: StagingAccess | None = None
    people: People = People()
    thresholds: Thresholds = Thresholds()
    notifications: NotificationChannels = []  # issue 6: webhooks and e-mail, see notify.py
    go_live: GoLiveSettings = GoLiveSettings()
    breach: BreachMetadata = BreachMetadata()
    database: Database | None = None  # issue 14: data slots in PostgreSQL, see dataslots.py
    application: Application | None = None  # issue 13: slots that run instances; see instances.py
    deadlines: Deadlines = Deadlines()

    # Filled in by load_environment, never written by a person.
    name: str = ""
    path: Annotated[Path, StrictType(False)] | None = None
    project: Annotated[Path, StrictType(False)] | None = None  # the project directory it was loaded for

    @field_validator("notice_file")
    @classmethod
    def _notice_inside_root(cls, value: str) -> str:
        if ".." in value.split("/"):
            raise ValueError(f"must stay inside the app root (no '..'), got {value!r}")
        return value

    @model_validator(mode="after")
    def _servers_are_unique(self) -> "Environment":
        names = [server.name for server in self.servers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"server names must be unique; repeated: {', '.join(duplicates)}")
        return self

    @model_validator(mode="after")
    def _publications_are_unique(self) -> "Environment":
        names = [publication.name for publication in self.publications]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"publication names must be unique; repeated: {', '.join(duplicates)}")
        return self

    @model_validator(mode="after")
    def _sandbox_token_only_in_the_sandbox(self) -> "Environment":
        if self.staging_access and self.staging_access.sandbox_token and self.transport != "local":
            raise ValueError("staging_access.sandbox_token is for the local sandbox only; "
                             "put the token in the variable named by token_env")
        return self

    def publication(self, name: str) -> Publication:
        """Return the publication called `name`, or raise ConfigError listing the declared ones."""
        for publication in self.publications:
            if publication.name == name:
                return publication
        known = ", ".join(p.name for p in self.publications) or "none"
        raise ConfigError(f"no publication named {name!r} in {self.name}", hint=f"[[publications]] declares: {known}")

    def server(self, name: str) -> Server:
        """Return the server called `name`, or raise ConfigError listing the known ones."""
        for server in self.servers:
            if server.name == name:
                return server
        known = ", ".join(s.name for s in self.servers)
        raise ConfigError(f"no server named {name!r} in {self.name}", hint=f"servers are: {known}")

    def instance_ports(self, server: Server) -> list[int]:
        """The ports this server's application instances take: its own app_ports, else [application] ports."""
        if self.application is None:
            return []
        return list(server.app_ports or self.application.ports)

    def front_socket(self, server: Server) -> PurePosixPath | None:
        """The unix socket nginx connects to on this server ([application.front] socket), as an absolute path."""
        front = self.application.front if self.application is not None else None
        if front is None or front.socket is None:
            return None
        return self.app_root(server) / front.socket  # an absolute socket stays as it is

    def instance_socket(self, server: Server, port: int) -> PurePosixPath | None:
        """The unix socket the instance on `port` listens on beside the front's socket (None without one)."""
        socket = self.front_socket(server)
        return socket.parent / instance_socket_name(port) if socket is not None else None

    def app_root(self, server: Server) -> PurePosixPath:
        """Return the server's app root as an absolute path (local relative roots resolve against the project).

        The project is the directory load_environment was given (where environments/ is), wherever the file
        itself sits: `--env ~/prod.toml` must not put a relative root under the home directory's parent.
        """
        root = Path(server.root).expanduser()
        if not root.is_absolute() and self.project is not None:
            root = (self.project / root).resolve()
        return PurePosixPath(root.as_posix())


def load_environment(name: str, project_dir: Path) -> Environment:
    """Read and validate environments/<name>.toml (or a path to a .toml file) for the project `project_dir`.

    A relative server root is taken from `project_dir`, wherever the file is (Environment.app_root).

    Raises ConfigError naming the file and field, or listing the environments that exist.
    """
    path = _environment_path(name, project_dir)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{_shown(path, project_dir)}: not valid TOML: {error}", hint="fix the line it names") from error
    except OSError as error:
        raise ConfigError(f"{_shown(path, project_dir)}: cannot read: {error.strerror}") from error
    for key in ("name", "path", "project"):
        if key in data:
            raise ConfigError(f"{_shown(path, project_dir)}: {key}: unknown field", hint="remove it; the name comes from the file name")
    try:
        environment = Environment.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_first_problem(error, _shown(path, project_dir)), hint="fix the field and run again") from error
    _require_ssh_fields(environment, _shown(path, project_dir))
    environment = environment.model_copy(update={"name": path.stem, "path": path.resolve(),
                                                 "project": project_dir.resolve()})
    _require_short_sockets(environment, _shown(path, project_dir))
    return environment


def instance_socket_name(port: int) -> str:
    """The file name of the unix socket the instance on `port` listens on, beside the front's link (which names it)."""
    return f"instance-{port}.sock"


# A unix socket's path holds at most 107 bytes (sun_path): a longer one cannot be bound or connected to.
UNIX_PATH_MAX = 107


def _require_short_sockets(environment: Environment, where: str) -> None:
    """The instances' sockets sit beside [application.front] socket: each path must fit a unix socket address,
    or the instance could not listen there and the switch would find out only at go-live."""
    application = environment.application
    if application is None or application.front is None or application.front.socket is None:
        return
    for server in environment.servers:
        longest = environment.instance_socket(server, 65535)
        link = environment.front_socket(server)
        if len(str(link).encode()) > UNIX_PATH_MAX:
            raise ConfigError(f"{where}: application.front.socket: on {server.name} it would be {link}, over the "
                              f"{UNIX_PATH_MAX} bytes a unix socket path may have (nginx refuses it)",
                              hint="choose a socket in a directory with a shorter path")
        if len(str(longest).encode()) > UNIX_PATH_MAX:
            raise ConfigError(f"{where}: application.front.socket: on {server.name} the instances' sockets would be "
                              f"{longest.parent}/instance-PORT.sock, over the {UNIX_PATH_MAX} bytes a unix socket path "
                              "may have", hint="choose a socket in a directory with a shorter path")


def _require_ssh_fields(environment: Environment, where: str) -> None:
    """Over SSH a relative root would be taken from wherever the login lands: every server would look empty.

    And a server without `host` would quietly be this machine (paramiko's default is localhost).
    """
    if environment.transport != "ssh":
        return  # the local sandbox takes relative roots from the project directory
    for i, server in enumerate(environment.servers):
        if not server.host or not server.host.strip():
            raise ConfigError(f"{where}: servers[{i}].host: required over SSH, and missing or empty",
                              hint="give the server's DNS name or address, e.g. host = \"web-1.example.org\"")
        if not server.root.startswith("/"):
            raise ConfigError(f"{where}: servers[{i}].root: must be an absolute path on the server, got {server.root!r}",
                              hint="write the app root in full, e.g. root = \"/srv/app\"")


def available_environments(project_dir: Path) -> list[str]:
    """Return the names of the environment files in environments/, sorted."""
    return sorted(p.stem for p in (project_dir / "environments").glob("*.toml"))


def _environment_path(name: str, project_dir: Path) -> Path:
    if name.endswith(".toml") or "/" in name:
        path = Path(name)
        if path.is_dir():
            raise ConfigError(f"--env {name} is a directory, not an environment file",
                              hint="name the .toml file itself, e.g. --env environments/production.toml")
        if path.exists() and not path.is_file():
            raise ConfigError(f"--env {name} is not a regular file (a device, a FIFO or a socket)",
                              hint="name the .toml file itself, e.g. --env environments/production.toml")
        if not path.is_file():
            raise ConfigError(f"environment file {name} does not exist", hint=how_to_make_environment(project_dir, path))
        return path
    if not re.match(NAME_PATTERN, name):
        raise ConfigError(f"bad environment name {name!r}", hint="use letters, digits, '-', '_' or '.'")
    path = project_dir / "environments" / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(available_environments(project_dir)) or "none"
        raise ConfigError(f"unknown environment {name!r}",
                          hint=f"environments/ has: {known}; {how_to_make_environment(project_dir, path)}")
    return path


EXAMPLE = "production.toml.example"


def how_to_make_environment(project_dir: Path, target: Path) -> str:
    """Say how to make a missing environment file: copy the commented example, when this project has it.

    Paths are shown relative to the current directory when they are under it, so the command can be pasted.
    """
    example = project_dir / "environments" / EXAMPLE
    if example.is_file():
        return f"to make one: cp {_pasteable(example)} {_pasteable(target)} and change the values marked CHANGE"
    return (f"to make one, copy {EXAMPLE} from the environments/ directory of releaser's source to "
            f"{_pasteable(target)} and change the values marked CHANGE")


def _pasteable(path: Path) -> str:
    """The path as a shell word to paste: quoted, and written with bash's $'...' escapes when it holds a control
    character (printed raw it would drive the terminal; escaped in plain quotes it would name another path)."""
    from releaser.free_text import shell_word

    absolute = path.resolve()
    try:
        shown = str(absolute.relative_to(Path.cwd().resolve()))
    except ValueError:
        shown = str(absolute)
    return shell_word(shown)


def _shown(path: Path, project_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(project_dir.resolve()))
    except ValueError:
        return str(path)


def _first_problem(error: ValidationError, where: str) -> str:
    problem = error.errors()[0]
    field = _dotted(problem["loc"]) or "(top level)"
    if problem["type"] == "extra_forbidden":
        return f"{where}: {field}: unknown field (a typo?)"
    if problem["type"] == "missing":
        return f"{where}: {field}: required field is missing"
    message = problem["msg"].removeprefix("Value error, ")
    message = message[0].lower() + message[1:]
    shown_input = problem.get("input")
    got = f", got {shown_input!r}" if isinstance(shown_input, (str, int, float, bool)) and "got" not in message else ""
    more = f" (and {len(error.errors()) - 1} more problem(s))" if len(error.errors()) > 1 else ""
    return f"{where}: {field}: {message}{got}{more}"


def _dotted(location: tuple) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _calendar_message(error: Exception, text: str) -> str:
    """Reword a calendar error for "file: field: message", naming what was written once, at the end."""
    message = str(error)
    if "got" in message:
        return message
    return message.replace(f" {text!r}", "", 1) + f", got {text!r}"


def _is_loopback_url(url: str) -> bool:
    """True when the URL's host is this machine (localhost, 127.0.0.0/8 or ::1)."""
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
