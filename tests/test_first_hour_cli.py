"""Issue 20 through the real executable: shell completion, did-you-mean, the unknown profile's
suggestion, short per-command help, `status --online` exiting 5, both kinds worded alike, and
the demo's hints for getting a code without a browser."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from helpers.first_hour import BIN, CLIENT_SECRET, EXE, HEAVY, Tmux, clean_env, imports_of, login, run
from procore_setup.testing import FakeProcore


@pytest.fixture
def fh_fake() -> Iterator[FakeProcore]:
    with FakeProcore() as server:
        yield server


@pytest.fixture
def two_profiles(tmp_path: Path, fh_fake: FakeProcore) -> Path:
    config = tmp_path / "conf" / "credentials.toml"
    login(fh_fake, config, "nightly")
    login(fh_fake, config, "reports")
    return config


# -- completion ---------------------------------------------------------------------------------

def _tab(line: str, env: dict[str, str], tmp: Path, shell: str = "bash") -> tuple[list[str], set[str]]:
    """What the program answers to a Tab press at the end of `line`, as the completion script asks
    it (argcomplete's protocol), and the modules that answer imported."""
    out = tmp / "completions"
    r = subprocess.run([EXE], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                       env=dict(env, COMP_LINE=line, COMP_POINT=str(len(line)), _ARGCOMPLETE="1",
                                _ARGCOMPLETE_SHELL=shell, _ARGCOMPLETE_STDOUT_FILENAME=str(out),
                                _ARGCOMPLETE_IFS="\n", PYTHONPROFILEIMPORTTIME="1"))
    assert r.returncode == 0, r.stderr[-2000:]
    words = [w.split("\t")[0].split(":")[0] if shell != "bash" else w for w in out.read_text().split("\n") if w]
    return [w.strip() for w in words], imports_of(r)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_each_shell(shell: str) -> None:
    r = run("completion", shell)
    assert r.returncode == 0, r.stderr
    assert "procore-setup" in r.stdout and "_ARGCOMPLETE" in r.stdout
    checker = {"bash": "bash", "zsh": "zsh", "fish": "fish"}[shell]
    if shutil.which(checker):  # the script parses in its own shell (bash is always here; zsh and fish may not be)
        check = subprocess.run([checker, "-n"], input=r.stdout, capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr


def test_completion_help_gives_the_install_line_of_each_shell() -> None:
    r = run("completion", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for line in ("procore-setup completion bash > ~/.local/share/bash-completion/completions/procore-setup",
                 "procore-setup completion zsh > ~/.zfunc/_procore-setup",
                 "procore-setup completion fish > ~/.config/fish/completions/procore-setup.fish"):
        assert line in text
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "procore-setup completion bash >" in readme and "procore-setup completion fish >" in readme


def test_tab_completes_commands_options_environments_and_profiles(two_profiles: Path, tmp_path: Path) -> None:
    env = clean_env(PROCORE_SETUP_CONFIG=str(two_profiles))
    words, _ = _tab("procore-setup to", env, tmp_path)
    assert words == ["token"]
    words, _ = _tab("procore-setup st", env, tmp_path)
    assert sorted(words) == ["status", "store"]
    words, _ = _tab("procore-setup refresh --qu", env, tmp_path)
    assert words == ["--quiet"]
    words, _ = _tab("procore-setup login --plain --environment s", env, tmp_path)
    assert words == ["sandbox"]
    words, modules = _tab("procore-setup token --profile ", env, tmp_path)
    assert words == ["nightly", "reports"]
    assert not modules & set(HEAVY), modules & set(HEAVY)  # no Textual, httpx or driver on a Tab press
    words, _ = _tab("procore-setup --profile n", env, tmp_path, shell="zsh")
    assert words == ["nightly"]
    words, _ = _tab("procore-setup status --profile r", env, tmp_path, shell="fish")
    assert words == ["reports"]


def test_profile_names_come_from_the_file_the_line_names(two_profiles: Path, tmp_path: Path,
                                                          fh_fake: FakeProcore) -> None:
    other = tmp_path / "other" / "credentials.toml"
    login(fh_fake, other, "elsewhere")
    words, _ = _tab(f"procore-setup --config {other} token --profile ", clean_env(PROCORE_SETUP_CONFIG=str(two_profiles)),
                    tmp_path)
    assert words == ["elsewhere"]
    words, _ = _tab("procore-setup token --profile ", clean_env(PROCORE_SETUP_CONFIG=str(tmp_path / "none.toml")),
                    tmp_path)
    assert words == []  # no file: nothing offered, nothing printed


@pytest.mark.parametrize("store", ["redis_store_url", "pg_store_url"])
def test_tab_reads_profile_names_from_a_shared_store_without_its_driver(store: str, request: pytest.FixtureRequest,
                                                                         fh_fake: FakeProcore, tmp_path: Path) -> None:
    url = request.getfixturevalue(store)  # a real server, started by tests/servers.py
    env = clean_env(PROCORE_SETUP_STORE=url)
    r = run("login", "--plain", "--profile", "nightly", "--environment", "custom", "--login-url", fh_fake.url,
            "--api-url", fh_fake.url, "--client-id", "demo-client-id", f"--code={fh_fake.issue_code()}", input="1\n",
            env=dict(env, PROCORE_CLIENT_SECRET=CLIENT_SECRET))
    assert r.returncode == 0, r.stderr
    words, modules = _tab("procore-setup status --profile ", env, tmp_path)
    assert words == ["nightly"]
    assert not modules & {"redis", "psycopg", "httpx", "textual"}, modules & {"redis", "psycopg", "httpx", "textual"}


def test_token_never_imports_the_completion_library(two_profiles: Path) -> None:
    r = run("token", env=clean_env(PROCORE_SETUP_CONFIG=str(two_profiles), PROCORE_SETUP_PROFILE="nightly",
                                   PYTHONPROFILEIMPORTTIME="1"))
    assert r.returncode == 0
    assert "argcomplete" not in imports_of(r)


def test_tab_in_a_real_bash(two_profiles: Path, tmp_path: Path) -> None:
    script = tmp_path / "procore-setup.bash"
    script.write_text(run("completion", "bash").stdout)
    rc = tmp_path / "bashrc"
    rc.write_text(f"PS1='$ '\nsource {script}\n")
    env = clean_env(PROCORE_SETUP_CONFIG=str(two_profiles), PATH=f"{BIN}:/usr/bin:/bin", HOME=str(tmp_path))
    term = Tmux(tmp_path, f"bash --noprofile --rcfile {rc} -i", env=env)
    try:
        term.wait("$")
        term.type("procore-setup tok")
        term.send("Tab")
        term.wait("$ procore-setup token")
        term.type("--profile ni")
        term.send("Tab")
        term.wait("$ procore-setup token --profile nightly")
    finally:
        term.kill()


def test_tab_in_a_real_fish(two_profiles: Path, tmp_path: Path) -> None:
    if shutil.which("fish") is None:
        pytest.skip("fish is not installed")
    script = tmp_path / "procore-setup.fish"
    script.write_text(run("completion", "fish").stdout)
    env = clean_env(PROCORE_SETUP_CONFIG=str(two_profiles), PATH=f"{BIN}:/usr/bin:/bin", HOME=str(tmp_path))
    r = subprocess.run(["fish", "--no-config", "-c", f"source {script}; complete -C 'procore-setup tok'; "
                        "complete -C 'procore-setup token --profile n'"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == ["token", "nightly"]


def test_tab_in_a_real_zsh(two_profiles: Path, tmp_path: Path) -> None:
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed")
    functions = tmp_path / "zfunc"
    functions.mkdir()
    (functions / "_procore-setup").write_text(run("completion", "zsh").stdout)
    (tmp_path / ".zshrc").write_text(f"PS1='%% '\nfpath=({functions} $fpath)\nautoload -Uz compinit && compinit -u\n")
    env = clean_env(PROCORE_SETUP_CONFIG=str(two_profiles), PATH=f"{BIN}:/usr/bin:/bin", HOME=str(tmp_path),
                    ZDOTDIR=str(tmp_path))
    term = Tmux(tmp_path, "zsh -i", env=env)
    try:
        term.wait("%")
        term.type("procore-setup token --profile ni")
        term.send("Tab")
        term.wait("% procore-setup token --profile nightly")
    finally:
        term.kill()


# -- did you mean, the unknown profile, help ----------------------------------------------------------

def test_a_mistyped_command_suggests_the_closest_without_echoing_it() -> None:
    r = run("tokne")
    assert r.returncode == 2
    assert "did you mean 'token'?" in r.stderr
    assert "tokne" not in r.stderr  # what was typed is never repeated (it may be a secret)


def test_a_mistyped_option_suggests_the_closest(two_profiles: Path) -> None:
    r = run("refresh", "--quite", env=clean_env(PROCORE_SETUP_CONFIG=str(two_profiles)))
    assert r.returncode == 2
    assert "did you mean '--quiet'?" in r.stderr
    r = run("token", "--mni-valid=30", env=clean_env(PROCORE_SETUP_CONFIG=str(two_profiles)))
    assert r.returncode == 2 and "did you mean '--min-valid'?" in r.stderr and "30" not in r.stderr


def test_an_unknown_profile_names_the_closest_one(two_profiles: Path) -> None:
    r = run("token", "--profile", "nigthly", env=clean_env(PROCORE_SETUP_CONFIG=str(two_profiles)))
    assert r.returncode == 3
    assert "Did you mean 'nightly'? Give --profile nightly." in r.stderr
    assert "login --profile nigthly" not in r.stderr  # no offer to create the typo
    r = run("token", "--profile", "staging", env=clean_env(PROCORE_SETUP_CONFIG=str(two_profiles)))
    assert r.returncode == 3 and "Set it up with:" in r.stderr  # nothing close: a new profile, then


def test_per_command_help_is_short_and_the_exit_table_is_in_the_main_help() -> None:
    main = run("--help").stdout
    assert "exit codes:\n  0  ok" in main and "PROCORE_SETUP_CONFIG" in main
    for command in ("token", "refresh", "status", "revoke", "completion", "demo"):
        r = run(command, "--help")
        assert r.returncode == 0
        assert "  0  ok" not in r.stdout and "--config PATH" in r.stdout
        assert len(r.stdout.splitlines()) <= 30, (command, len(r.stdout.splitlines()))


# -- status -------------------------------------------------------------------------------------------------

def test_status_online_exits_5_when_the_check_fails(two_profiles: Path, fh_fake: FakeProcore) -> None:
    env = clean_env(PROCORE_SETUP_CONFIG=str(two_profiles))
    r = run("status", "--online", "--profile", "nightly", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "online check:  ok" in r.stdout
    fh_fake.revoke_all()
    r = run("status", "--online", "--profile", "nightly", env=env)
    assert r.returncode == 5, r.stdout + r.stderr
    assert "online check:  FAILED" in r.stdout
    assert run("status", "--profile", "nightly", env=env).returncode == 0  # offline: the file looks fine
    docs = (Path(__file__).resolve().parents[1] / "docs" / "commands.md").read_text()
    assert "--online" in docs and re.search(r"exits? 5 when", docs)


def test_status_words_both_kinds_alike(two_profiles: Path, fh_fake: FakeProcore) -> None:
    env = clean_env(PROCORE_SETUP_CONFIG=str(two_profiles), PROCORE_CLIENT_SECRET=fh_fake.service_account_client_secret)
    r = run("login", "--plain", "--service-account", "--profile", "svc", "--environment", "custom", "--login-url",
            fh_fake.url, "--api-url", fh_fake.url, "--client-id", fh_fake.service_account_client_id,
            "--company-id", "8675309", env=env)
    assert r.returncode == 0, r.stderr
    out = run("status", env=clean_env(PROCORE_SETUP_CONFIG=str(two_profiles))).stdout
    assert "kind:          a person's login\n" in out and "kind:          a service account\n" in out


# -- getting a code without a browser ----------------------------------------------------------------------

def test_login_plain_demo_says_how_to_get_the_code_and_that_works(tmp_path: Path) -> None:
    proc = subprocess.Popen([EXE, "login", "--plain", "--demo"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=clean_env(TMPDIR=str(tmp_path)))
    try:
        assert proc.stderr is not None and proc.stdin is not None
        hint = ""
        for line in proc.stderr:
            if line.strip().startswith("curl "):
                hint = line.strip()
                break
        assert hint, "no command to get the code"
        got = subprocess.run(["bash", "-c", hint], capture_output=True, text=True, timeout=30)
        assert got.returncode == 0 and "/oauth/authorize/" in got.stdout
        out, err = proc.communicate(got.stdout.strip() + "\n1\n", timeout=60)
        assert proc.returncode == 0, err
        assert "Saved profile 'default'" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_login_plain_demo_stopped_while_waiting_leaves_nothing(tmp_path: Path) -> None:
    import os
    import signal

    for sig in (signal.SIGTERM, signal.SIGHUP):
        tmp = tmp_path / sig.name
        tmp.mkdir()
        proc = subprocess.Popen([EXE, "login", "--plain", "--demo"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=clean_env(TMPDIR=str(tmp)))
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                if line.strip().startswith("curl "):
                    break  # waiting for the code now
            assert os.listdir(tmp) != []
            proc.send_signal(sig)
            assert proc.wait(timeout=30) == 128 + sig
            assert os.listdir(tmp) == []
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_the_fake_servers_banner_gives_a_code_that_can_be_pasted(tmp_path: Path) -> None:
    server = subprocess.Popen([sys.executable, "-m", "procore_setup.testing", "--port", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=clean_env())
    try:
        assert server.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("get a code") for line in lines):
            lines.append(server.stdout.readline())
        url = re.search(r"at (http://\S+)", lines[0]).group(1)  # type: ignore[union-attr]
        hint = next(line for line in lines if line.startswith("get a code")).split(": ", 1)[1].strip()
        code = subprocess.run(["bash", "-c", hint], capture_output=True, text=True, timeout=30).stdout.strip()
        config = tmp_path / "credentials.toml"
        r = run("login", "--plain", "--environment", "custom", "--login-url", url, "--api-url", url,
                "--client-id", "demo-client-id", "--code", code, input="1\n",
                env=clean_env(PROCORE_SETUP_CONFIG=str(config), PROCORE_CLIENT_SECRET=CLIENT_SECRET))
        assert r.returncode == 0, r.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
