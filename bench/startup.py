"""What a cold command costs before it reaches a server: import times and whole processes, before and after.

    python bench/startup.py [--before REF] [--repeat 7]

Runs the same measurements on two copies of the code: this checkout ("after") and `git archive REF` of
releaser/ and tasks.py ("before", default: the commit this branch left main at), each in a scratch project
with its own local sandbox on free ports, the two taking turns in every round (environments/local.toml of that copy, three directory "servers"):

- `python -X importtime -m invoke rollback --yes`: the modules a cold rollback imports, summed by package
  (invoke, pydantic, rich, psycopg, releaser's own modules, ...), median ms of --repeat runs;
- `python -X importtime -c 'import tasks'`: what `invoke --list` and every task pay first;
- whole processes: `invoke rollback --help`, and a cold `invoke rollback --yes` (r2 live, r1 backup, put
  back before every run, outside the timing).

Bytecode: this machine sets PYTHONDONTWRITEBYTECODE=1, so releaser's own modules (an editable install) would be
compiled again by every process (~80 ms here). An installed releaser has its .pyc files, so the bench removes
that variable and runs each command once before timing. All figures share this machine's CPUs with whatever
else runs; read the before/after columns of one run together, not against another run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
PACKAGES = ("invoke", "pydantic", "pydantic_core", "rich", "psycopg", "psycopg_binary", "fabric", "paramiko",
            "cryptography", "dateutil", "zoneinfo", "holidays", "tomllib", "http", "urllib", "email")

# r2 live and r1 as its backup on the copy's local sandbox, with that copy's own code (run before each rollback)
PREPARE = """
import sys
from pathlib import Path
project = Path(sys.argv[1])
from releaser.bundle import read_bundle
from releaser.clock import SystemClock
from releaser.config import load_environment
from releaser.fleet import connected
environment = load_environment("local", project)
with connected(environment, actor="bench@releaser", clock=SystemClock(), journal_path=project / "prepare.jsonl") as fleet:
    for release in ("r1", "r2"):
        state = fleet.read_status()[0].state
        if state is not None and state.live == release and (release == "r1" or state.backup == "r1"):
            continue
        fleet.stage(read_bundle(project / "examples" / "releases" / release))
        fleet.go_live()
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=None, help="git ref of the code to compare with (default: merge-base with main)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per figure; the median is shown (default 7)")
    args = parser.parse_args()
    before_ref = args.before or git("merge-base", "HEAD", "main")
    with tempfile.TemporaryDirectory(prefix="releaser-startup-") as scratch:
        base = Path(scratch)
        before = copy_of(before_ref, base / "before")
        after = copy_of(None, base / "after")
        print(f"before: {before_ref[:12]}  after: this checkout (uncommitted changes included); medians of {args.repeat}, "
              f"{os.cpu_count()} CPUs shared", file=sys.stderr)
        figures = measure({"before": before, "after": after}, args.repeat)
    show(figures)
    return 0


def git(*argv: str) -> str:
    return subprocess.run(["git", "-C", str(PROJECT), *argv], check=True, capture_output=True, text=True).stdout.strip()


def copy_of(ref: str | None, where: Path) -> Path:
    """A scratch project with releaser/ and tasks.py from `ref` (None: this checkout as it is), and its own sandbox."""
    where.mkdir(parents=True)
    if ref is None:
        for part in ("releaser", "tasks.py"):
            source = PROJECT / part
            if source.is_dir():
                shutil.copytree(source, where / part, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(source, where / part)
        shutil.copytree(PROJECT / "environments", where / "environments")
    else:
        archive = subprocess.run(["git", "-C", str(PROJECT), "archive", ref, "releaser", "tasks.py", "environments"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    local = where / "environments" / "local.toml"  # free ports: another sandbox may be serving the usual ones
    ports = iter(free_ports(12))
    local.write_text(re.sub(r"http://127\.0\.0\.1:\d+", lambda _: f"http://127.0.0.1:{next(ports)}", local.read_text()))
    (where / "examples").mkdir()
    (where / "examples" / "releases").symlink_to(PROJECT / "examples" / "releases")
    return where


def free_ports(count: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def environ(project: Path) -> dict[str, str]:
    """The copy's code first on the path (ahead of the editable install), bytecode written, plain output."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(project), "RELEASER_PROJECT": str(project), "RELEASER_ACTOR": "bench@releaser",
            "NO_COLOR": "1", "COLUMNS": "120"}


def run(argv: list[str], project: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, env=environ(project), cwd=project, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode} in {project}:\n{done.stderr[-3000:]}")
    return done


def measure(projects: dict[str, Path], repeat: int) -> dict:
    """Every figure for each copy of the code, the copies taking turns in every round (the load here drifts)."""
    python = sys.executable
    samples = {label: defaultdict(list) for label in projects}
    for label, project in projects.items():
        run([python, "-c", PREPARE, str(project)], project)
        run([python, "-m", "invoke", "-r", str(project), "rollback", "--yes"], project)  # warm-up: bytecode, sandbox
    for round_ in range(repeat):
        print(f"... round {round_ + 1} of {repeat}", file=sys.stderr, flush=True)
        for label, project in projects.items():
            invoke = [python, "-m", "invoke", "-r", str(project)]
            prepare = [python, "-c", PREPARE, str(project)]
            got = samples[label]
            run(prepare, project)
            got["rollback_imports"].append(by_package(run([python, "-X", "importtime", *invoke[1:], "rollback", "--yes"],
                                                          project).stderr))
            got["task_imports"].append(by_package(run([python, "-X", "importtime", "-c", "import tasks"], project).stderr))
            got["help"].append(timed(invoke + ["rollback", "--help"], project))
            run(prepare, project)
            got["cold"].append(timed(invoke + ["rollback", "--yes"], project))
    return {label: {"rollback_imports": medians(got["rollback_imports"]), "task_imports": medians(got["task_imports"]),
                    "help": got["help"], "cold": got["cold"]}
            for label, got in samples.items()}


def timed(argv: list[str], project: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the process and its children) of one run."""
    import resource

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    run(argv, project)
    wall = time.perf_counter() - started
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (now.ru_utime - used.ru_utime) + (now.ru_stime - used.ru_stime)


_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")


def by_package(importtime: str) -> dict[str, float]:
    """Sum each module's own import time (ms) by what it belongs to: a package above, each releaser module alone."""
    totals: dict[str, float] = defaultdict(float)
    for line in importtime.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        own, name = int(match.group(1)) / 1000, match.group(4)
        top = name.split(".")[0]
        key = name if top == "releaser" else (top if top in PACKAGES else "python stdlib and others")
        totals[key] += own
        totals["all imports"] += own
    return dict(totals)


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = {key for figures in runs for key in figures}
    return {key: statistics.median(figures.get(key, 0.0) for figures in runs) for key in keys}


def process_figures(runs: list[tuple[float, float]]) -> str:
    walls, cpus = [wall for wall, _ in runs], [cpu for _, cpu in runs]
    return f"{statistics.median(walls):.3f} / {min(walls):.3f} / {statistics.median(cpus):.3f}"


def show(figures: dict) -> None:
    before, after = figures["before"], figures["after"]
    print("\nwhole processes, s: median wall / fastest wall / median CPU (user+sys) | before | after")
    print("--- | ---: | ---:")
    for title, key in (("invoke rollback --help", "help"), ("cold invoke rollback --yes (local sandbox, 3 servers)", "cold")):
        print(f"{title} | {process_figures(before[key])} | {process_figures(after[key])}")
    for title, key in (("imports of a cold `invoke rollback --yes`", "rollback_imports"),
                       ("imports of `import tasks` (invoke --list, every task first)", "task_imports")):
        b, a = before[key], after[key]
        names = sorted(set(b) | set(a), key=lambda n: -max(b.get(n, 0.0), a.get(n, 0.0)))
        print(f"\n{title}: own import time summed by package, median ms | before | after")
        print("--- | ---: | ---:")
        for name in names:
            if max(b.get(name, 0.0), a.get(name, 0.0)) >= 1.0 or name == "all imports":
                print(f"{name} | {b.get(name, 0.0):.1f} | {a.get(name, 0.0):.1f}")
    print("\n(packages below 1 ms in both are left out; 'all imports' counts every module)")


if __name__ == "__main__":
    sys.exit(main())
