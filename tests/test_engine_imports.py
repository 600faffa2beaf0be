"""The fast headless path: `token`, `status` and a no-op `refresh` never import httpx, textual or tomlkit.

Two independent probes, both on real processes: the installed `procore-setup`
executable run with PYTHONPROFILEIMPORTTIME=1 (the interpreter lists every module it
imports on stderr), and `python -c` calling `procore_setup.cli.main` and then dumping
`sys.modules`. Each probe must also see httpx arrive when a refresh is really needed,
so the test can fail.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers.engine import Engine

HEAVY = ("httpx", "textual", "tomlkit")  # tomlkit: only to rewrite a file that has comments

# Calls main() as the console script does, then dumps sys.modules. What main() prints on
# stdout (the token, for `token`) goes to the JSON file too, never to this process's stdout.
WRAPPER = """
import io, json, sys
from procore_setup.cli import main
out, real = io.StringIO(), sys.stdout
sys.stdout = out
rc = 1
try:
    rc = main(sys.argv[2:])
finally:
    sys.stdout = real
    with open(sys.argv[1], "w") as f:
        json.dump({"modules": sorted(sys.modules), "stdout": out.getvalue()}, f)
raise SystemExit(rc)
"""


def _tops(names: list[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def imported_by_executable(eng: Engine, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    r = eng.run(*args, env={"PYTHONPROFILEIMPORTTIME": "1"})
    names = []
    for line in r.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.append(name)
    assert names, "no import-time report: is PYTHONPROFILEIMPORTTIME supported?"
    return r, _tops(names)


def imported_by_main(eng: Engine, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    out = eng.config.parent.parent / "modules.json"
    r = subprocess.run([sys.executable, "-c", WRAPPER, str(out), *args], capture_output=True, text=True,
                       env=eng.env(), stdin=subprocess.DEVNULL, timeout=60)
    eng.check(r)
    assert r.stdout == ""
    dump = json.loads(out.read_text())
    if args[0] == "token" and r.returncode == 0:
        assert dump["stdout"] == eng.profile(args[2] if len(args) > 2 else "default")["access_token"] + "\n"
    return r, _tops(dump["modules"])


PROBES = {"executable": imported_by_executable, "python -c main()": imported_by_main}
LIGHT = [["token"], ["status"], ["status", "--json"], ["refresh"], ["refresh", "--all", "--quiet"],
         ["token", "--profile", "site-b"]]


@pytest.mark.parametrize("probe", list(PROBES))
def test_headless_commands_import_neither_httpx_nor_textual(eng: Engine, probe: str) -> None:
    eng.login()
    eng.login("site-b")
    eng.config.write_text("# a person's comment\n" + eng.config.read_text())
    for args in LIGHT:
        r, mods = PROBES[probe](eng, *args)
        assert r.returncode == 0, (args, r.stderr[-2000:])
        assert "procore_setup" in mods  # the probe works
        for heavy in HEAVY:
            assert heavy not in mods, f"`procore-setup {' '.join(args)}` imported {heavy}"
    assert eng.fake.counts["token:refresh_token"] == 0


@pytest.mark.parametrize("probe", list(PROBES))
def test_httpx_is_imported_when_a_refresh_is_needed(eng: Engine, probe: str) -> None:
    eng.login()
    eng.expire()
    r, mods = PROBES[probe](eng, "token")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "httpx" in mods and "textual" not in mods
    assert eng.fake.counts["refresh_ok"] == 1
    r, mods = PROBES[probe](eng, "status", "--online")
    assert r.returncode == 0 and "httpx" in mods and "textual" not in mods
