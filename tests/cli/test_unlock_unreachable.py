"""`invoke unlock` with a server down says what it could not see, never 'nothing is locked' for that server."""

from __future__ import annotations

import pytest

from conftest import ssh_environment_for
from test_truth_cli import invoke

pytestmark = pytest.mark.ssh


def test_unlock_with_a_server_down_names_it_and_exits_5(sshd_farm, tmp_path):
    """web-2 holds a lock nobody can see while its sshd is down: unlock speaks only for web-1 and web-3."""
    env = ssh_environment_for(sshd_farm, tmp_path / "prod.toml")
    (sshd_farm.server("web-2").root / ".releaser" / "lock").mkdir(parents=True)
    sshd_farm.stop("web-2")

    done = invoke("unlock", "--yes", "--reason", "on call", "--env", str(env.path))

    assert done.returncode == 5, done.stderr
    assert "nothing is locked on web-1, web-3:" in done.stderr
    # a server that is down "did not answer", as the runbooks say; "cannot be reached safely" is for host keys
    assert "web-2: did not answer (" in done.stderr and "nothing is locked on web-1, web-2" not in done.stderr
    assert "nothing was changed" in done.stderr and "safely" not in done.stderr
    assert (sshd_farm.server("web-2").root / ".releaser" / "lock").is_dir()
