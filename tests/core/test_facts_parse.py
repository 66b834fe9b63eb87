"""The facts parser: the clock from the clock files only when this very run wrote them, and a server's rehearsals
from its summary file or, on a server journaled before summaries, from its journal's lines."""

from __future__ import annotations

import base64
import io
import json
import tarfile

from releaser.facts import parse_facts


def tar_line(files: dict[str, tuple[str, float]]) -> str:
    """The script's `tar` line: a base64 pax tar of (text, modification time) by path."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, (text, mtime) in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), mtime
            info.pax_headers = {"mtime": f"{mtime:.9f}"}
            archive.addfile(info, io.BytesIO(data))
    return "tar " + base64.b64encode(buffer.getvalue()).decode()


def clock_files(start_token: str, end_token: str) -> str:
    return tar_line({".releaser/clock-start": (f"{start_token}\n", 1700000000.125),
                     ".releaser/clock-end": (f"{end_token}\n", 1700000000.375)})


def test_the_clock_is_the_times_of_the_clock_files_this_run_wrote():
    """Start and end come from the two files' times, to the nanosecond the pax tar keeps."""
    facts = parse_facts(f"df 10*4096\n{clock_files('4242', '4242')}\nclock-files 4242\n")
    assert facts.clock == 1700000000.125 and abs(facts.clock_spent - 0.25) < 1e-6


def test_clock_files_another_run_rewrote_are_not_taken_for_this_ones():
    """Another run's token in either file: no clock from them (the script then says `date` instead)."""
    assert parse_facts(f"{clock_files('4242', '5151')}\nclock-files 4242\n").clock is None
    said = parse_facts(f"{clock_files('5151', '5151')}\nclock-files 4242\nclock 1700000001.5\nclock-end 1700000001.5\n")
    assert said.clock == 1700000001.5 and said.clock_spent == 0


def test_rehearsals_come_from_the_summary_file_or_the_journal_lines():
    """The summary's line when the server has one; else every rehearsal line its journal parts hold."""
    done = {"at": "2026-11-29T10:00:00.000Z", "action": "rehearse", "outcome": "done", "releases": {"staging": "r2"}}
    older = {**done, "at": "2026-11-20T10:00:00.000Z"}
    summary = parse_facts(tar_line({".releaser/rehearsal.json": (json.dumps(done) + "\n", 0.0)}) + "\n")
    assert summary.rehearsals == (done,)
    legacy = parse_facts(f"rehearsals\n{json.dumps(older)}\n{{torn\n{json.dumps(done)}\nrehearsals-end\nclock 5\n")
    assert legacy.rehearsals == (older, done) and legacy.clock == 5.0


def test_the_tar_reader_gives_what_tarfile_gives():
    """Long paths (pax `path`), text that is not UTF-8, empty files and nanosecond times read as tarfile reads them;
    a tar cut short, or a line that is not base64, gives no files at all."""
    from releaser.facts import _untar

    buffer = io.BytesIO()
    members = {"releases/" + "x" * 120 + "/config/app.toml": b"key = 1\n", "bin": b"\xff\xfe not text",
               "empty": b"", "big": bytes(range(256)) * 9}
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for index, (name, data) in enumerate(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1700000000 + index
            info.pax_headers = {"mtime": f"{1700000000 + index}.123456789"}
            archive.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        expected = ({m.name: archive.extractfile(m).read().decode("utf-8", errors="replace") for m in archive},
                    {m.name: float(m.pax_headers["mtime"]) for m in archive})
    assert _untar(base64.b64encode(raw).decode()) == expected
    assert _untar(base64.b64encode(raw[:1500]).decode()) == ({}, {})
    assert _untar("not base64 at all!") == ({}, {})
