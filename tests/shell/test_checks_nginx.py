"""The embargo and smoke checks against real nginx running the shipped sample site configuration."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest

from checkenv import free_ports
from releaser.bundle import read_bundle
from releaser.checks import Limits, run_checks
from releaser.clock import FakeClock
from releaser.config import load_environment
from releaser.fleet import connected

PROJECT = Path(__file__).resolve().parents[2]
SAMPLE = PROJECT / "environments" / "nginx-staging.conf.sample"
EXAMPLES = PROJECT / "examples" / "releases"
TOKEN = "nginx-test-token-0123456789"
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)


def nginx_path() -> str | None:
    """Where nginx is, if Debian's package is installed."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def render_site(root: Path, live_port: int, staging_port: int, token_map: Path, *, protect: bool = True) -> str:
    """Fill in the sample's CHANGE values for a test; protect=False drops the header rule (the mistake)."""
    text = SAMPLE.read_text()
    replacements = {
        "listen 80;": f"listen 127.0.0.1:{live_port};",
        "listen 10.0.0.5:8443;": f"listen 127.0.0.1:{staging_port};",
        "/srv/phof": str(root),
        "/etc/nginx/releaser-preview-token.map": str(token_map),
    }
    for old, new in replacements.items():
        assert old in text, f"the sample no longer contains {old!r}"
        text = text.replace(old, new)
    if not protect:
        text = text.replace("if ($releaser_preview_ok = 0) {\n            return 403;\n        }", "")
    return text


class Nginx:
    """One nginx master process serving a rendered site from a private prefix; stopped by its PID."""

    def __init__(self, directory: Path, site: str) -> None:
        self.directory = directory
        (directory / "logs").mkdir(parents=True, exist_ok=True)
        (directory / "site.conf").write_text(site)
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp = "\n".join(f"    {kind}_temp_path {directory / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (directory / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {directory / 'nginx.pid'};\nerror_log {directory / 'logs/error.log'};\n"
            f"events {{ worker_connections 64; }}\nhttp {{\n    access_log off;\n{temp}\n    include {directory / 'site.conf'};\n}}\n")
        self.process = subprocess.Popen([nginx_path(), "-p", str(directory), "-c", str(directory / "nginx.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_until_answering(self, url: str, deadline_seconds: float = 10.0) -> None:
        """Poll `url` until nginx answers at all (any status) or fail with its error log."""
        deadline = time.monotonic() + deadline_seconds
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while time.monotonic() < deadline:
            try:
                opener.open(url, timeout=1).close()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        log = (self.directory / "logs" / "error.log").read_text() if (self.directory / "logs" / "error.log").exists() else ""
        pytest.fail(f"nginx did not answer at {url}: {log or self.process.stderr.read().decode()}")

    def stop(self) -> None:
        """Stop the master (and so its worker) by PID."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def nginx_site(tmp_path, monkeypatch):
    """Start nginx with the sample site over a one-server app root; yields a starter taking protect=True/False."""
    if nginx_path() is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing: apt-get install nginx")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    monkeypatch.setenv("RELEASER_TEST_NGINX_TOKEN", TOKEN)
    started: list[Nginx] = []

    def start(*, protect: bool = True):
        root = tmp_path / "app"
        root.mkdir(exist_ok=True)
        token_map = tmp_path / "token.map"
        token_map.write_text(f'"{TOKEN}" 1;\n')
        live_port, staging_port = free_ports(2)
        environment_file = tmp_path / "env.toml"
        environment_file.write_text(f"""
transport = "local"
allow_go_live_now = true

[[servers]]
name = "web-1"
root = "{root}"
live_url = "http://127.0.0.1:{live_port}"
staging_url = "http://127.0.0.1:{staging_port}"

[health]
path = "/healthz"
contains = "ok"
timeout = 2.0
attempts = 3

[[smoke]]
path = "/healthz"
contains = "ok"

[staging_access]
token_env = "RELEASER_TEST_NGINX_TOKEN"
""")
        environment = load_environment(str(environment_file), PROJECT)
        server = Nginx(tmp_path / f"nginx-{len(started)}", render_site(root, live_port, staging_port, token_map, protect=protect))
        started.append(server)
        server.wait_until_answering(f"http://127.0.0.1:{live_port}/")
        server.wait_until_answering(f"http://127.0.0.1:{staging_port}/")
        return environment

    yield start
    for server in started:
        server.stop()


def stage_on_live(environment) -> None:
    """Put r1 live and r2 in staging on the server nginx serves."""
    with connected(environment, actor="ana@stats", clock=FakeClock(NOW)) as fleet:
        fleet.stage(read_bundle(EXAMPLES / "r1"))
        fleet.go_live(reason="test setup")
        fleet.stage(read_bundle(EXAMPLES / "r2"))


def check(environment) -> dict[str, tuple[str, str]]:
    with connected(environment, actor="ana@stats", clock=FakeClock(NOW)) as fleet:
        results = run_checks(fleet, Limits(environment), now=NOW, only="smoke,embargo")
    return {result.check: (result.status, result.detail) for result in results}


def test_sample_site_keeps_staging_private_and_lets_smoke_checks_through(nginx_site):
    """With the sample's header rule, staging refuses the public (embargo PASS) and serves releaser's checks (smoke PASS)."""
    environment = nginx_site(protect=True)
    stage_on_live(environment)
    results = check(environment)
    assert results["embargo"][0] == "PASS" and "-> 403 (private)" in results["embargo"][1]
    assert results["smoke"][0] == "PASS"


def test_sample_site_without_the_header_rule_fails_embargo(nginx_site):
    """The same site with the header rule removed serves staging to anyone: the embargo check fails."""
    environment = nginx_site(protect=False)
    stage_on_live(environment)
    results = check(environment)
    assert results["embargo"][0] == "FAIL" and "-> 200: the public can see the release" in results["embargo"][1]


def live_page(environment, path: str = "/") -> tuple[int, str]:
    """GET a path on the live site nginx serves: (status, body)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(environment.servers[0].live_url + path, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_sample_site_shows_the_delay_notice_as_a_banner_until_it_is_cleared(nginx_site):
    """`invoke notice` writes a file on the server; the sample's live site shows it, escaped, on the next request."""
    environment = nginx_site(protect=True)
    stage_on_live(environment)
    status, before = live_page(environment)
    assert status == 200 and "Release <strong>r1</strong>" in before
    assert '<div class="releaser-notice" role="alert"' in before and 'role="alert" style' in before
    assert 'role="alert" style="background:#ffdd00;color:#0b0c0c;padding:1em;font-weight:bold"></div>' in before  # empty: hidden

    message = "Figures delayed until 11:00 <b>& tables 3-4</b>"
    with connected(environment, actor="ana@stats", clock=FakeClock(NOW)) as fleet:
        fleet.publish_notice(message)
    status, shown = live_page(environment)
    assert status == 200 and "Release <strong>r1</strong>" in shown
    assert "Figures delayed until 11:00 &lt;b&gt;&amp; tables 3-4&lt;/b&gt;" in shown  # escaped, never markup
    assert shown.index("Figures delayed") < shown.index("<h1>")  # at the top of the page
    assert "Figures delayed" not in live_page(environment, "/healthz")[1]  # only HTML pages get the banner
    assert live_page(environment, "/.releaser-notice")[0] == 404  # the file is not a public URL

    with connected(environment, actor="ana@stats", clock=FakeClock(NOW)) as fleet:
        fleet.publish_notice("", clear=True)
    status, after = live_page(environment)
    assert status == 200 and "Figures delayed" not in after and after == before
