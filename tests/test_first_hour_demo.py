"""Issue 20, a demo you can keep using: `procore-setup demo` keeps a logged-in demo file and the fake
Procore for a shell (or until stopped), prints what to try, and leaves nothing behind, whether
its shell exits, the terminal is closed (SIGHUP) or it is told to stop (SIGTERM)."""

from __future__ import annotations

import os
import re
import signal
import socket
from pathlib import Path

from helpers.first_hour import EXE, Tmux, clean_env, demo_without_shell, run, wait_for


def _port_closed(url: str) -> bool:
    host, port = re.match(r"http://([\d.]+):(\d+)", url).groups()  # type: ignore[union-attr]
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return True
    return False


def test_demo_without_a_shell_serves_until_sigterm_and_leaves_nothing(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc, lines = demo_without_shell(clean_env(TMPDIR=str(tmp)))
    try:
        text = "".join(lines)
        for needed in ("procore-setup token", "procore-setup refresh", "procore-setup status",
                       "refresh --profile default --quiet", "from procore_setup import get_token"):
            assert needed in text, needed
        url = re.search(r"runs at (http://\S+) ", text).group(1)  # type: ignore[union-attr]
        config = re.search(r"export PROCORE_SETUP_CONFIG=(\S+)", text).group(1)  # type: ignore[union-attr]
        assert config.startswith(str(tmp))
        env = clean_env(PROCORE_SETUP_CONFIG=config)
        # the headless side against the same fake server, as the guide says
        assert run("token", env=env).returncode == 0
        assert run("refresh", "--force", "--quiet", env=env).returncode == 0
        assert run("token", "--profile", "reports", env=env).returncode == 0
        status = run("status", env=env)
        assert status.returncode == 0 and "a person's login" in status.stdout and "a service account" in status.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert os.listdir(tmp) == []  # the temporary directory went with it
        assert _port_closed(url)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _demo_in_tmux(tmp_path: Path) -> tuple[Tmux, Path]:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(TMPDIR=str(tmp), HOME=str(home), SHELL="/bin/bash", PS1="$ ",
                    PATH="/usr/bin:/bin")  # the program is not on PATH: the demo shell puts it there
    term = Tmux(tmp_path, f"{EXE} demo", env=env)
    term.wait("Type `exit`")
    return term, tmp


def test_demo_shell_runs_the_headless_commands_and_exit_cleans_up(tmp_path: Path) -> None:
    term, tmp = _demo_in_tmux(tmp_path)
    try:
        assert os.listdir(tmp) != []
        term.type("procore-setup status >/dev/null; echo STATUS=$?")
        term.send("Enter")
        term.wait("STATUS=0")
        term.type("procore-setup token | wc -c | sed 's/^/TOKEN_CHARS=/'")
        term.send("Enter")
        term.wait("TOKEN_CHARS=")
        term.type("exit")
        term.send("Enter")
        wait_for(lambda: os.listdir(tmp) == [], 30, f"the demo directory to go: {os.listdir(tmp)}")
    finally:
        term.kill()


def test_closing_the_terminal_leaves_no_demo_directory(tmp_path: Path) -> None:
    term, tmp = _demo_in_tmux(tmp_path)
    pid = term.pid()
    assert os.listdir(tmp) != []
    term.kill()  # the terminal goes away: SIGHUP to the demo and its shell

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, 30, "the demo process to end")
    wait_for(lambda: os.listdir(tmp) == [], 30, f"the demo directory to go: {os.listdir(tmp)}")


def test_quitting_the_demo_wizard_says_how_to_keep_a_demo(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    # the wizard in a real terminal; its last words stay on screen after it exits (the shell waits)
    env = clean_env(TMPDIR=str(tmp), HOME=str(tmp_path), TERM="xterm-256color")
    term = Tmux(tmp_path, f"{EXE} --demo; echo WIZARD-EXIT=$?; sleep 600", env=env, width=100, height=30)
    try:
        term.wait("How your scripts sign in")
        term.send("C-q")  # nothing entered yet: quits at once
        screen = term.wait("WIZARD-EXIT=0")
        assert "procore-setup demo" in screen.replace("\n", " ")
        assert os.listdir(tmp) == []  # the wizard's demo file and server went with it
    finally:
        term.kill()


def test_the_demo_wizard_leaves_nothing_when_its_terminal_closes_or_it_is_stopped(tmp_path: Path) -> None:
    for how in ("SIGHUP", "SIGTERM"):
        tmp = tmp_path / how / "tmp"
        tmp.mkdir(parents=True)
        env = clean_env(TMPDIR=str(tmp), HOME=str(tmp_path), TERM="xterm-256color")
        term = Tmux(tmp_path / how, f"{EXE} --demo; echo WIZARD-EXIT=$?; sleep 600", env=env, width=100, height=30)
        try:
            term.wait("How your scripts sign in")
            assert os.listdir(tmp) != []  # the demo's directory, with its file to be
            wizard = next(p for p in _children(term.pid())[1:] if "--demo" in _cmdline(p))  # not the pane's shell
            if how == "SIGTERM":
                os.kill(wizard, signal.SIGTERM)
                term.wait("WIZARD-EXIT=143")
            else:
                term.kill()  # the terminal goes away
            wait_for(lambda: not os.path.exists(f"/proc/{wizard}"), 30, "the wizard to end")  # noqa: B023 - called here, in this turn
            wait_for(lambda: os.listdir(tmp) == [], 30, f"the demo directory to go: {os.listdir(tmp)}")  # noqa: B023
        finally:
            term.kill()


def _children(pid: int) -> list[int]:
    """`pid` and its descendants (the pane's shell runs the wizard as its child)."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            out += _children(int(child))
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""
