"""An instance told to listen on a unix socket whose path holds spaces, quotes and `$(...)`: the start script hands
it over whole (RELEASER_SOCKET and the .env file a unit reads), and the stop removes only that socket."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path, PurePosixPath

import pytest

from conftest import PROJECT
from releaser import instances
from releaser.config import Application

HOSTILE = "it's $(touch pwned) `x`"


@pytest.fixture
def hostile_root():
    """An app root under /tmp (short enough for a socket path) whose name holds quotes, spaces and $(...)."""
    base = Path(tempfile.mkdtemp(prefix="rs-", dir="/tmp"))
    root = base / HOSTILE
    (root / "releases" / "r1").mkdir(parents=True)
    try:
        yield root
    finally:
        subprocess.run(["pkill", "-f", str(root)], check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the instance scripts poll health with curl")
def test_a_socket_path_full_of_shell_syntax_reaches_the_instance_whole(hostile_root):
    app = shlex.join([sys.executable, str(PROJECT / "examples" / "app" / "phof_app.py")])
    application = Application.model_validate({"start": f"{app} start", "stop": f"{app} stop", "ports": [1, 2, 3],
                                              "start_timeout": 10, "front": {"socket": "front/live.sock"}})
    socket = PurePosixPath(str(hostile_root)) / "front" / "instance-18431.sock"
    root = PurePosixPath(str(hostile_root))

    # its input stays open while it waits for the health path (its end is the start script's cue to stop waiting)
    starting = subprocess.Popen(instances.start_argv(application, root, 18431, "r1", "staging", socket=socket),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = starting.stdout.read(), starting.stderr.read()
    starting.wait(30)
    starting.stdin.close()
    try:
        assert starting.returncode == 0 and out.startswith("started 18431 "), err
        assert Path(str(socket)).is_socket()
        env = (hostile_root / ".releaser" / "instances" / "18431.env").read_text().splitlines()
        assert f"RELEASER_SOCKET={socket}" in env and len(env) == 8, env
        assert not list(Path.cwd().glob("pwned")) and not (hostile_root / "pwned").exists()
    finally:
        stopped = subprocess.run(instances.stop_argv(application, root, 18431, retired_only=False),
                                 capture_output=True, text=True, timeout=30)
    assert stopped.returncode == 0, stopped.stderr
    assert not Path(str(socket)).exists()
