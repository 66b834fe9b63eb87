"""Fixtures for the dashboard tests: a real headless chromium through selenium, and `releaser dashboard` as a process.

Both are stopped by PID when the test ends. The browser tests skip only when chromium or its driver is
not installed, and fail then too under CI (.ci/run installs them); selenium missing is an error, since the
test extra brings it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from checkenv import write_environment as complete_environment
from conftest import EXAMPLES, PROJECT, free_ports

RELEASER = Path(sys.executable).with_name("releaser")
ARTIFACTS = PROJECT / "test-artifacts"  # gitignored: screenshots and figures a run leaves for people to look at
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_MISSING = "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver; .ci/run does)"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def releaser(*args, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run the installed `releaser ARGS` in `cwd`; with check, fail the test showing stderr if it exits non-zero."""
    environ = {**os.environ, "RELEASER_ACTOR": "ana@browser-tests", "NO_COLOR": "1", "COLUMNS": "200"}
    environ.pop("RELEASER_PROJECT", None)
    done = subprocess.run([str(RELEASER), *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=environ,
                          stdin=subprocess.DEVNULL)
    if check:
        assert done.returncode == 0, f"releaser {' '.join(args)} exited {done.returncode}:\n{done.stderr}"
    return done


def go_live_now(env_file: Path, cwd: Path) -> subprocess.CompletedProcess:
    """`releaser go-live --now`, accepting the two checks whose verdict depends on the day the tests run."""
    return releaser("go-live", "--now", "--yes", "--override", "rollback-target", "--override", "deadline",
                    "--reason", "browser tests", "--env", str(env_file), cwd=cwd)


@dataclass
class Sandbox:
    """A two-server local sandbox with r1 live and r2 staged, and a directory outside the checkout to run from."""

    env_file: Path
    elsewhere: Path

    def run(self, *args, check: bool = True) -> subprocess.CompletedProcess:
        """Run `releaser ARGS --env FILE` from elsewhere."""
        return releaser(*args, "--env", str(self.env_file), cwd=self.elsewhere, check=check)


@pytest.fixture
def sandbox(tmp_path) -> Sandbox:
    """r1 live on both servers (through the installed command, from a directory that is not the checkout), r2 staged."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env_file = complete_environment(tmp_path, servers=2).rename(tmp_path / "release-day.toml")  # the page's title
    box = Sandbox(env_file, elsewhere)
    box.run("deploy", "--stage", "--release", str(EXAMPLES / "r1"))
    go_live_now(box.env_file, elsewhere)
    box.run("deploy", "--stage", "--release", str(EXAMPLES / "r2"))
    return box


@dataclass
class Dashboard:
    """A running `releaser dashboard` process and where its page is."""

    url: str
    process: subprocess.Popen
    started_seconds: float

    def board(self) -> dict:
        """The board the dashboard serves now, as JSON."""
        with _NO_PROXY.open(self.url + "board.json", timeout=5) as response:
            return json.load(response)


@pytest.fixture
def dashboard(sandbox, tmp_path):
    """`releaser dashboard --env FILE` run from elsewhere on a free port, reading the servers every second."""
    port = free_ports(1)[0]
    log = open(tmp_path / "dashboard.log", "w+")
    started = time.perf_counter()
    process = subprocess.Popen([str(RELEASER), "dashboard", "--env", str(sandbox.env_file), "--port", str(port),
                                "--every", "1"], cwd=sandbox.elsewhere, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"})
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_until_it_answers(url + "board.json", process, log)
        yield Dashboard(url, process, time.perf_counter() - started)
    finally:
        _stop(process)
        log.close()


@pytest.fixture
def browser():
    """A headless chromium (root needs --no-sandbox), driven through chromedriver; quit and its driver stopped after."""
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        if os.environ.get("CI"):  # .ci/run installs them: missing there is a broken CI, not a reason to skip
            pytest.fail(CHROMIUM_MISSING)
        pytest.skip(CHROMIUM_MISSING)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1100,760", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--disable-default-apps", "--hide-scrollbars"):
        options.add_argument(argument)
    service = Service(CHROMEDRIVER)  # a driver path given: selenium never looks one up or downloads one
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()
        if service.process is not None:
            _stop(service.process)


def wait_for(condition, *, seconds: float, what: str):
    """Poll `condition()` until it returns something true or `seconds` pass; fail naming `what`."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {seconds} s waiting for {what}")
        time.sleep(0.05)


def _wait_until_it_answers(url: str, process: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"releaser dashboard exited {process.returncode}:\n{log.read()}")
        try:
            with _NO_PROXY.open(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"releaser dashboard did not answer {url} within 30 s")
        time.sleep(0.05)


def _stop(process: subprocess.Popen) -> None:
    """Stop a process we started, by its PID: Ctrl-C first (it shuts down cleanly), then kill."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
