"""What README and --help tell a new user works as they say: building with data sets, making an environment."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

from conftest import PROJECT
from releaser.bundle import read_bundle
from releaser.config import load_environment

README = (PROJECT / "README.md").read_text(encoding="utf-8")


def invoke(*args, cwd=PROJECT):
    environ = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "RELEASER_ACTOR": "cli@tests"}
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(PROJECT), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, env=environ, stdin=subprocess.DEVNULL)


def test_build_help_says_where_data_sets_are_declared():
    """`invoke build --help` says that only a manifest.json in --source declares the data sets."""
    done = invoke("build", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "manifest.json" in text and "data sets" in text and "Building a release" in text
    assert "**Building a release.**" in README


def test_the_readme_manifest_declares_its_data_set_in_the_bundle(tmp_path):
    """The manifest.json shown in README, placed in --source, gives the built bundle that data set."""
    section = README.split("**Building a release.**", 1)[1]
    snippet = re.search(r"```json\n(.*?)```", section, re.S).group(1)
    source = tmp_path / "site"
    (source / "public" / "data").mkdir(parents=True)
    (source / "public" / "data" / "phof-indicators.csv").write_text("area,value\nE92000001,1\n")
    (source / "public" / "index.html").write_text("<h1>PHOF</h1>\n")
    (source / "manifest.json").write_text(snippet)
    out = tmp_path / "dist" / "2026-12-phof.tar.gz"
    done = invoke("build", "--source", str(source), "--release-id", "2026-12-phof", "--out", str(out))
    assert done.returncode == 0, done.stderr
    bundle = read_bundle(out)
    assert [(d.name, d.publication, d.file) for d in bundle.manifest.datasets] == [
        ("phof-indicators", "phof", "public/data/phof-indicators.csv")]
    assert bundle.manifest.publications == ["phof"]
    assert sorted(bundle.manifest.files) == ["public/data/phof-indicators.csv", "public/index.html"]
    assert json.loads(snippet)["release_id"] == "2026-12-phof"


def test_an_unknown_environment_says_how_to_make_one_and_the_way_works(tmp_path):
    """The error names the commented example and a cp command; run as printed, it gives a loadable SSH environment."""
    project = tmp_path / "project"
    shutil.copytree(PROJECT / "environments", project / "environments")
    done = invoke("status", "--env", "uat", cwd=project)
    assert done.returncode == 2
    line = done.stderr.strip()
    assert line.startswith("releaser: unknown environment 'uat'; environments/ has: local; to make one: cp "), line
    command = line.split("to make one: ", 1)[1].removesuffix(" and change the values marked CHANGE")
    assert command == "cp environments/production.toml.example environments/uat.toml"
    subprocess.run(shlex.split(command), cwd=project, check=True, timeout=10)
    environment = load_environment("uat", project)
    assert environment.transport == "ssh" and len(environment.servers) >= 2
    assert {server.port for server in environment.servers} == {None, 2222}  # [[servers]] port, shown in use
    assert environment.publications[0].title and environment.people.release_manager


def test_a_missing_environment_file_says_how_to_make_it(tmp_path):
    """--env path/to/file.toml that does not exist gets the same advice, with that path, quoted for a shell."""
    missing = tmp_path / "my envs" / "uat.toml"
    done = invoke("status", "--env", str(missing))
    assert done.returncode == 2
    assert f"releaser: environment file {missing} does not exist; to make one: cp " in done.stderr
    assert shlex.quote(str(missing)) in done.stderr and "production.toml.example" in done.stderr


def test_a_missing_environment_file_with_a_control_character_gets_a_cp_that_names_it(tmp_path):
    """QA hostile input: the hint showed an ESC in the path as the text \\x1b, so pasted it named another file.
    Written with bash's $'...' escapes, the cp it suggests makes the very file --env named."""
    (tmp_path / "e\x1bvil").mkdir()
    missing = tmp_path / "e\x1bvil" / "uat.toml"
    done = invoke("status", "--env", str(missing))
    assert done.returncode == 2 and "\x1b" not in done.stderr
    command = done.stderr.strip().split("to make one: ", 1)[1].removesuffix(" and change the values marked CHANGE")
    assert "$'" in command
    subprocess.run(["bash", "-c", command], cwd=PROJECT, check=True, timeout=10)
    assert missing.is_file()
