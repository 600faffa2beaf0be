"""`procore-setup demo --no-shell` prints what to try in another terminal: those commands name the
program as that terminal can run it (its path, where PATH does not find it), and run as printed."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from pathlib import Path

from helpers.first_hour import EXE, clean_env, demo_without_shell


def test_without_a_shell_the_guide_names_the_program_by_its_path_when_path_does_not_find_it(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    off_path = clean_env(TMPDIR=str(tmp), PATH="/usr/bin:/bin")  # not the program's directory
    proc, lines = demo_without_shell(off_path)
    try:
        tried = [line.strip() for line in lines if line.strip().endswith((" status", " token --profile reports"))]
        assert len(tried) == 2, lines
        for command in tried:
            assert shlex.split(command)[0] == EXE, command  # not a bare name this PATH cannot find
        export = next(line.strip() for line in lines if line.strip().startswith("export PROCORE_SETUP_CONFIG="))
        for command in tried:  # in "another terminal": the export line, then the command, as printed
            done = subprocess.run(["/bin/sh", "-c", f"{export}; {command}"], capture_output=True, text=True,
                                  env=off_path, timeout=60)
            assert done.returncode == 0, (command, done.stderr)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert os.listdir(tmp) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
