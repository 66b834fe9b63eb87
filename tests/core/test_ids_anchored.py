"""Names and ids end where the text ends: a trailing newline is refused, never let through by a `$` anchor.

Python's `re.match(r"^...$", text)` lets `$` match just before a final "\\n", so `--release-id $'r6\\n'` used
to build a bundle. Each validated name below is tried with a trailing newline and must be refused with the
usual one-line error.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from releaser.bundle import (
    FILE_NAME_RULE, MANIFEST, RELEASE_ID_PATTERN, SAFE_FILE_NAME, build_bundle, read_bundle, seal_directory, validate_release_id,
)
from releaser.config import NAME_PATTERN, load_environment
from releaser.errors import BundleInvalid, ConfigError
from releaser.uploads import _is_name

from conftest import ONE_SERVER_TOML, PROJECT

SERVERS = ONE_SERVER_TOML

PUBLICATION = """
[[publications]]
name = "phof"
rule = "first Tuesday of every month at 09:30"
deadline = "Wednesday before at 17:00"
"""

WEBHOOK = """
[[notifications]]
kind = "webhook"
name = "ops-chat"
url = "https://hooks.example.org/releaser"
token_env = "RELEASER_WEBHOOK_TOKEN"
events = ["go-live-done"]
"""

EMAIL = """
[[notifications]]
kind = "email"
name = "release-team"
host = "smtp.example.org"
sender = "releaser@example.org"
to = ["releases@example.org"]
username = "releaser"
password_env = "RELEASER_SMTP_PASSWORD"
events = ["go-live-done"]
"""

STAGING_ACCESS = """
[staging_access]
header = "X-Releaser-Preview"
token_env = "RELEASER_PREVIEW_TOKEN"
"""


def one_line(error: Exception) -> str:
    """The error as the user reads it, checked to be a single line (the newline shows as \\n, escaped)."""
    text = str(error)
    assert "\n" not in text, text
    return text


def manifest_dir(tmp_path, *, release_id: str = "r6", files: dict[str, bytes] | None = None, **extra):
    """A bundle directory with the given files and a manifest.json written by hand (so nothing is checked first)."""
    files = {"index.html": b"<p>hello</p>\n"} if files is None else files
    directory = tmp_path / "bundle"
    directory.mkdir()
    for name, data in files.items():
        (directory / name).write_bytes(data)
    manifest = {"release_id": release_id, "files": {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}, **extra}
    (directory / MANIFEST).write_text(json.dumps(manifest))
    return directory


# ---- release ids and bundle file names (bundle.py) ----

@pytest.mark.parametrize("release_id", ["r6\n", "2026-12-phof\n", "r6\n\n", "\nr6"])
def test_release_id_with_a_newline_is_refused(release_id):
    """validate_release_id, the check behind `invoke build --release-id`, refuses any newline."""
    with pytest.raises(BundleInvalid) as caught:
        validate_release_id(release_id)
    assert one_line(caught.value) == (
        f"bad release id {release_id!r}: use letters, digits, '.', '_' or '-' (at most 64, the first a letter or digit); "
        "pick an id like 2026-12-phof (--release-id for invoke build, release_id in a manifest.json)")


def test_release_id_without_a_newline_still_passes():
    """The usual ids are unchanged."""
    assert validate_release_id("r6") == "r6"
    assert validate_release_id("2026-12-phof_v1.2") == "2026-12-phof_v1.2"
    assert validate_release_id("a" * 64) == "a" * 64


def test_build_refuses_a_release_id_ending_in_a_newline(tmp_path):
    """`invoke build --source DIR --release-id $'r6\\n'` builds nothing."""
    source = tmp_path / "site"
    source.mkdir()
    (source / "index.html").write_text("<p>hello</p>\n")
    out = tmp_path / "dist" / "r6.tar.gz"
    with pytest.raises(BundleInvalid, match=re.escape("bad release id 'r6\\n'")):
        build_bundle(source, "r6\n", out)
    assert not out.exists()


def test_manifest_release_id_ending_in_a_newline_is_refused(tmp_path):
    """A manifest.json written elsewhere with "r6\\n" as its id is refused when the bundle is read."""
    with pytest.raises(BundleInvalid) as caught:
        read_bundle(manifest_dir(tmp_path, release_id="r6\n"))
    assert one_line(caught.value).startswith("bad release id 'r6\\n': ")


def test_bundle_file_name_ending_in_a_newline_is_refused(tmp_path):
    """A file whose name ends in a newline would break the sha256sums file's lines; it is refused."""
    source = tmp_path / "site"
    source.mkdir()
    (source / "data.csv\n").write_text("a,b\n")
    with pytest.raises(BundleInvalid) as caught:
        seal_directory(source, "r6")
    assert one_line(caught.value) == (
        f"{source}: unsafe file name 'data.csv\\n': it holds '\\n', which is not allowed in file names; {FILE_NAME_RULE}")


def test_manifest_file_name_ending_in_a_newline_is_refused(tmp_path):
    """A manifest listing "data.csv\\n" is refused before any checksum is compared."""
    directory = manifest_dir(tmp_path, files={"data.csv\n": b"a,b\n"})
    with pytest.raises(BundleInvalid) as caught:
        read_bundle(directory)
    assert one_line(caught.value).startswith(f"{directory}/{MANIFEST}: unsafe file name 'data.csv\\n'")


def test_data_set_name_ending_in_a_newline_is_refused(tmp_path):
    """A data set's name in manifest.json is anchored too (pydantic's pattern: `$` is the end of the text)."""
    dataset = {"name": "phof-indicators\n", "publication": "phof", "file": "index.html"}
    directory = manifest_dir(tmp_path, datasets=[dataset])
    with pytest.raises(BundleInvalid) as caught:
        read_bundle(directory)
    assert one_line(caught.value).startswith(f"{directory}/{MANIFEST}: datasets.0.name: String should match pattern")


def test_shared_patterns_end_at_the_end_of_the_text():
    """fleet.py and uploads.py match with these patterns; none lets a trailing newline through."""
    assert RELEASE_ID_PATTERN.match("r6") and not RELEASE_ID_PATTERN.match("r6\n")
    assert SAFE_FILE_NAME.match("public/data/a.csv") and not SAFE_FILE_NAME.match("public/data/a.csv\n")
    assert re.match(NAME_PATTERN, "web-1") and not re.match(NAME_PATTERN, "web-1\n")


def test_data_set_name_given_to_data_upload_is_anchored():
    """`invoke data-upload --dataset $'phof-indicators\\n'` is a bad data set name, not an unknown one."""
    assert _is_name("phof-indicators")
    assert not _is_name("phof-indicators\n")


# ---- names in an environment file (config.py) ----

def config_error(tmp_path, text: str) -> str:
    """The one-line ConfigError an environment of SERVERS plus `text` raises, as read beside the file."""
    path = tmp_path / "env.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_environment(str(path), PROJECT)
    return one_line(caught.value).replace(f"{tmp_path}/", "")


@pytest.mark.parametrize(("text", "message"), [
    pytest.param(SERVERS.replace('name = "web-1"', 'name = "web-1\\n"'),
                 "env.toml: servers[0].name: string should match pattern", id="server-name"),
    pytest.param(SERVERS + PUBLICATION.replace('name = "phof"', 'name = "phof\\n"'),
                 "env.toml: publications[0].name: string should match pattern", id="publication-name"),
    pytest.param(SERVERS + WEBHOOK.replace('name = "ops-chat"', 'name = "ops-chat\\n"'),
                 "env.toml: notifications[0].webhook.name: string should match pattern", id="channel-name"),
    pytest.param(SERVERS + WEBHOOK.replace('"RELEASER_WEBHOOK_TOKEN"', '"RELEASER_WEBHOOK_TOKEN\\n"'),
                 "env.toml: notifications[0].webhook.token_env: expected the name of an environment variable", id="token_env"),
    pytest.param(SERVERS + EMAIL.replace('"RELEASER_SMTP_PASSWORD"', '"RELEASER_SMTP_PASSWORD\\n"'),
                 "env.toml: notifications[0].email.password_env: expected the name of an environment variable",
                 id="password_env"),
    pytest.param(SERVERS + EMAIL.replace('to = ["releases@example.org"]', 'to = ["releases@example.org\\n"]'),
                 "env.toml: notifications[0].email.to: expected an e-mail address, got 'releases@example.org\\n'", id="email-to"),
    pytest.param(SERVERS + EMAIL.replace('sender = "releaser@example.org"', 'sender = "releaser@example.org\\n"'),
                 "env.toml: notifications[0].email.sender: string should match pattern", id="email-sender"),
    pytest.param(SERVERS + STAGING_ACCESS.replace('"X-Releaser-Preview"', '"X-Releaser-Preview\\n"'),
                 "env.toml: staging_access.header: string should match pattern", id="staging-header"),
    pytest.param(SERVERS + STAGING_ACCESS.replace('"RELEASER_PREVIEW_TOKEN"', '"RELEASER_PREVIEW_TOKEN\\n"'),
                 "env.toml: staging_access.token_env: string should match pattern", id="staging-token_env"),
    pytest.param('notice_file = "notice.txt\\n"\n' + SERVERS,
                 "env.toml: notice_file: string should match pattern", id="notice_file"),
    pytest.param(SERVERS + '[config_parity]\nfiles = ["config/app.toml\\n"]\n',
                 "env.toml: config_parity.files: expected a path inside the release (relative, no '..'), "
                 "got 'config/app.toml\\n'", id="config-parity-file"),
])
def test_environment_name_ending_in_a_newline_is_refused(tmp_path, text, message):
    """Every validated name or path in an environment file refuses a trailing newline, naming the file and field."""
    assert config_error(tmp_path, text).startswith(message)


def test_the_same_environment_without_newlines_loads(tmp_path):
    """The files above load once the newline is gone, so each refusal is the newline's doing."""
    path = tmp_path / "env.toml"
    path.write_text('notice_file = "notice.txt"\n' + SERVERS + PUBLICATION + WEBHOOK + EMAIL + STAGING_ACCESS
                    + '[config_parity]\nfiles = ["config/app.toml"]\n')
    environment = load_environment(str(path), PROJECT)
    assert [server.name for server in environment.servers] == ["web-1"]
    assert [channel.name for channel in environment.notifications] == ["ops-chat", "release-team"]


def test_environment_name_ending_in_a_newline_is_refused_on_the_command_line():
    """`--env $'local\\n'` is a bad environment name, not a search for "environments/local\\n.toml"."""
    with pytest.raises(ConfigError) as caught:
        load_environment("local\n", PROJECT)
    assert one_line(caught.value) == "bad environment name 'local\\n'; use letters, digits, '-', '_' or '.'"
    assert load_environment("local", PROJECT).name == "local"
