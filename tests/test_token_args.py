"""`procore-setup token` reads its command line without building argparse's parsers (issue 21),
and gives exactly what argparse gives: the same token for every spelling it takes, and
argparse's own answer (help, an abbreviation, an error) for everything else.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import CLI

# A probe: main() as the console script runs it, then whether argparse built a parser and
# whether the locale module (which argparse's gettext imports) was loaded.
PROBE = """
import argparse, json, sys
built = []
real = argparse.ArgumentParser.__init__
def counting(self, *a, **k):
    built.append(1)
    real(self, *a, **k)
argparse.ArgumentParser.__init__ = counting
from procore_setup.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
print(json.dumps({"code": code, "parsers": len(built), "locale": "locale" in sys.modules}), file=sys.stderr)
"""


def probe(cli: CLI, *args: str) -> dict[str, object]:
    # its stdout (the token) is not needed: what it found goes to stderr
    r = subprocess.run([sys.executable, "-c", PROBE, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       env=cli.env, timeout=60)
    return json.loads(r.stderr.strip().splitlines()[-1])


def token(cli: CLI, *args: str) -> subprocess.CompletedProcess[str]:
    return cli.run(*args)


@pytest.mark.parametrize("args", [
    ["token"],
    ["token", "--min-valid", "60"],
    ["token", "--min-valid=0"],
    ["--profile", "default", "token"],
    ["token", "--profile=other", "--profile", "default"],  # the last one wins, as in argparse
    ["--config", "CONFIG", "token", "--config=CONFIG"],
])
def test_each_plain_spelling_gives_the_token_without_a_parser(cli: CLI, args: list[str]) -> None:
    cli.login()
    args = [str(cli.config) if a == "CONFIG" else a.replace("CONFIG", str(cli.config)) for a in args]
    r = token(cli, *args)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == cli.secrets()[1]
    seen = probe(cli, *args)
    assert seen == {"code": 0, "parsers": 0, "locale": False}


@pytest.mark.parametrize("args, code, said", [
    (["token", "--min-val", "60"], 0, ""),  # an abbreviation: argparse's
    (["token", "--min-valid", "99999"], 2, "must be between 0 and 86400 seconds"),
    (["token", "--min-valid", "soon"], 2, "the value is not a number of seconds"),
    (["token", "--min-valid", "-5"], 2, "must be between 0 and 86400 seconds"),
    (["token", "extra"], 2, "unrecognized arguments: …"),
    (["token", "--profile"], 2, "expected one argument"),
    (["--min-valid", "5", "token"], 2, "invalid choice"),  # --min-valid belongs after the command
    (["token", "--profile", "nosuch"], 3, "No profile 'nosuch'"),
])
def test_everything_else_is_argparse_s_as_before(cli: CLI, args: list[str], code: int, said: str) -> None:
    cli.login()
    r = token(cli, *args)
    assert r.returncode == code, r.stderr
    assert said in r.stderr
    if code == 0:
        assert r.stdout.strip() == cli.secrets()[1]
    assert probe(cli, *args)["code"] == code


def test_help_is_argparse_s(cli: CLI) -> None:
    r = token(cli, "token", "--help")
    assert r.returncode == 0 and "--min-valid SECONDS" in r.stdout


# The wizard's plain start (no command) reads its command line the same way (3 ms before its
# first frame): the same namespace as argparse's main parser, or argparse itself.
SAME = """
import json, sys
from procore_setup import cli
out = []
for argv in json.loads(sys.argv[1]):
    fast = cli._wizard_args(argv)
    try:
        slow = vars(cli.build_parser("").parse_args(argv))
    except SystemExit as exc:
        slow = {"exit": exc.code}
    out.append([None if fast is None else vars(fast), slow])
print(json.dumps(out, default=lambda f: f.__name__))  # last: --version prints too
"""


def test_a_plain_wizard_start_reads_the_same_arguments_as_argparse(cli: CLI) -> None:
    taken = [[], ["--demo"], ["--config", "x"], ["--config=x", "--profile", "p", "--demo"],
             ["--store", "redis://h/0", "--passphrase-command", "cat pw"], ["--profile=a", "--profile", "b"],
             ["--config", ""]]
    left = [["--conf", "x"], ["--demo=1"], ["--config"], ["--config", "-x"], ["--version"]]
    r = subprocess.run([sys.executable, "-c", SAME, json.dumps(taken + left)], capture_output=True, text=True,
                       env=cli.env, timeout=60)
    assert r.returncode == 0, r.stderr
    for argv, (fast, slow) in zip(taken + left, json.loads(r.stdout.splitlines()[-1]), strict=True):
        if argv in taken:
            assert fast == slow, argv
        else:
            assert fast is None, argv


@pytest.mark.parametrize("args", [["--config", "CONFIG"], ["--demo"]])
def test_a_plain_wizard_start_builds_no_parser(cli: CLI, args: list[str]) -> None:
    args = [str(cli.config) if a == "CONFIG" else a for a in args]
    r = cli.run(*args)  # no terminal here: the wizard refuses to start, with argparse's exit code for usage
    assert r.returncode == 2 and "needs a terminal" in r.stderr
    assert probe(cli, *args) == {"code": 2, "parsers": 0, "locale": False}
