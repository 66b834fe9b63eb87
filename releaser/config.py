"""Environment files: the pydantic models for what a person writes in environments/<name>.toml.

`load_environment` is the only function here that reads a file. Every error it raises names the file,
the field and what was expected, and unknown keys are refused so a typo is never silently ignored.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from releaser.errors import ConfigError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


class Strict(BaseModel):
    """Base for every model a person writes: unknown keys are an error, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SshSettings(Strict):
    """How to reach servers over SSH; each server may override user, port and key_file."""

    user: str | None = None
    port: int = Field(22, ge=1, le=65535)
    key_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    check_host_keys: bool = True
    connect_timeout: float = Field(10.0, gt=0)


class Server(Strict):
    """One web server: its name, how to reach it, its app root and its two URLs."""

    name: str = Field(pattern=NAME_PATTERN)
    host: str = "localhost"
    port: int | None = Field(None, ge=1, le=65535)
    user: str | None = None
    key_file: str | None = None
    root: str
    live_url: str
    staging_url: str

    @field_validator("live_url", "staging_url")
    @classmethod
    def _is_http(cls, url: str) -> str:
        if not re.match(r"^https?://[^\s/]+", url):
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        return url.rstrip("/")


class HealthCheck(Strict):
    """What a healthy live server answers, checked over HTTP after every switch."""

    path: str = "/healthz"
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


class Environment(Strict):
    """A whole environment file, validated."""

    description: str = ""
    transport: Literal["local", "ssh"] = "ssh"
    allow_go_live_now: bool = False
    keep_releases: int = Field(3, ge=0)
    parallel: int = Field(32, ge=1, le=256)
    ssh: SshSettings = SshSettings()
    servers: list[Server] = Field(min_length=1)
    health: HealthCheck = HealthCheck()
    hooks: Hooks = Hooks()
    sandbox: Sandbox | None = None

    # Filled in by load_environment, never written by a person.
    name: str = ""
    path: Path | None = None

    @model_validator(mode="after")
    def _servers_are_unique(self) -> "Environment":
        names = [server.name for server in self.servers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"server names must be unique; repeated: {', '.join(duplicates)}")
        return self

    def server(self, name: str) -> Server:
        """Return the server called `name`, or raise ConfigError listing the known ones."""
        for server in self.servers:
            if server.name == name:
                return server
        known = ", ".join(s.name for s in self.servers)
        raise ConfigError(f"no server named {name!r} in {self.name}", hint=f"servers are: {known}")

    def app_root(self, server: Server) -> PurePosixPath:
        """Return the server's app root as an absolute path (local relative roots resolve against the project)."""
        root = Path(server.root).expanduser()
        if not root.is_absolute() and self.path is not None:
            root = (self.path.parent.parent / root).resolve()
        return PurePosixPath(root.as_posix())


def load_environment(name: str, project_dir: Path) -> Environment:
    """Read and validate environments/<name>.toml (or a path to a .toml file).

    Raises ConfigError naming the file and field, or listing the environments that exist.
    """
    path = _environment_path(name, project_dir)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{_shown(path, project_dir)}: not valid TOML: {error}", hint="fix the line it names") from error
    except OSError as error:
        raise ConfigError(f"{_shown(path, project_dir)}: cannot read: {error.strerror}") from error
    for key in ("name", "path"):
        if key in data:
            raise ConfigError(f"{_shown(path, project_dir)}: {key}: unknown field", hint="remove it; the name comes from the file name")
    try:
        environment = Environment.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_first_problem(error, _shown(path, project_dir)), hint="fix the field and run again") from error
    return environment.model_copy(update={"name": path.stem, "path": path.resolve()})


def available_environments(project_dir: Path) -> list[str]:
    """Return the names of the environment files in environments/, sorted."""
    return sorted(p.stem for p in (project_dir / "environments").glob("*.toml"))


def _environment_path(name: str, project_dir: Path) -> Path:
    if name.endswith(".toml") or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"environment file {name} does not exist")
        return path
    if not re.match(NAME_PATTERN, name):
        raise ConfigError(f"bad environment name {name!r}", hint="use letters, digits, '-', '_' or '.'")
    path = project_dir / "environments" / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(available_environments(project_dir)) or "none"
        raise ConfigError(f"unknown environment {name!r}", hint=f"environments/ has: {known}")
    return path


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
