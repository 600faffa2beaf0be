"""The package makes, opens, locks and checks files only through `procore_setup.filesystem`.

What this protects is the layout, not a behaviour: a port to macOS or Windows
(docs/platforms.md) is meant to change filesystem.py (and keycache.py) only. A module
that called `os.open(path, flags, 0o600)` or tested `st.st_mode & 0o077` itself would
work the same on Linux, and no behavioural test here would notice, but on Windows its
mode would silently mean nothing. So the installed package's source, every module but
those two, is read (ast) for the calls and bit tests that belong in filesystem.py. The
behaviour itself (0700 and 0600 whatever the umask, a foreign or too-open file refused)
is tested through the real executable in test_engine_cli.py, test_hostile_files.py and
test_cache_dir_modes.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import procore_setup

# Calls whose arguments or results are platform-specific: modes, owners, locks.
PLATFORM_CALLS = {
    ("os", "open"), ("os", "mkdir"), ("os", "makedirs"), ("os", "chmod"), ("os", "fchmod"), ("os", "lchmod"),
    ("os", "chown"), ("os", "fchown"), ("os", "umask"), ("stat", "S_IMODE"), ("fcntl", "flock"),
    ("fcntl", "lockf"), ("msvcrt", "locking"),
}
PLATFORM_MODULES = {"fcntl", "msvcrt", "pwd", "grp", "win32security"}


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and (node.func.value.id, node.func.attr) in PLATFORM_CALLS:
            found.append(f"{where} calls {node.func.value.id}.{node.func.attr}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{where} imports {n}" for n in names if n.split(".")[0] in PLATFORM_MODULES]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd):
            # permission bits tested by hand: `st.st_mode & 0o077`, `mode & stat.S_IWOTH`
            sides = (node.left, node.right)
            if any(isinstance(s, ast.Attribute) and s.attr == "st_mode" for s in sides) or any(
                    isinstance(s, ast.Attribute) and isinstance(s.value, ast.Name) and s.value.id == "stat"
                    and s.attr.startswith("S_I") and s.attr != "S_IFMT" for s in sides):
                found.append(f"{where} tests permission bits itself")
        elif isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool) \
                and node.value in (0o600, 0o700, 0o644, 0o755, 0o077, 0o022):
            # a mode written as a number means a mode handled here: only if written in octal
            segment = ast.get_source_segment(path.read_text(encoding="utf-8"), node) or ""
            if segment.startswith("0o"):
                found.append(f"{where} uses the mode {segment}")
    return found


# The port's modules: the platform code itself, and the keyring's key cache (docs/platforms.md).
ALLOWED = {"filesystem.py", "keycache.py"}


def test_the_package_touches_modes_owners_and_locks_only_through_filesystem() -> None:
    root = Path(procore_setup.__file__).parent
    modules = sorted(p for p in root.rglob("*.py") if not (p.parent == root and p.name in ALLOWED))
    names = {p.relative_to(root).as_posix() for p in modules}
    # the installed package, the one users run, all of it: the stores, the clients, the front-ends
    assert {"stores/file.py", "ratelimit.py", "client.py", "apicmd.py", "cli.py"} <= names
    problems = [f"{p.relative_to(root).as_posix()}: {found}" for p in modules for found in _problems(p)]
    assert problems == [], "platform-specific file code outside filesystem.py:\n" + "\n".join(problems)


def test_the_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    """Each kind of finding, in a file written for it: a check that never fires protects nothing."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os, stat, fcntl\n"
        "fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o600)\n"
        "os.mkdir(d, 0o700)\n"
        "bad = st.st_mode & 0o077\n"
        "fine = stat.S_ISREG(st.st_mode)\n"
        "x = stat.S_IMODE(st.st_mode)\n",
        encoding="utf-8",
    )
    found = _problems(sample)
    assert "sample.py:1 imports fcntl" in found
    assert "sample.py:2 calls os.open" in found and "sample.py:2 uses the mode 0o600" in found
    assert "sample.py:3 calls os.mkdir" in found and "sample.py:3 uses the mode 0o700" in found
    assert "sample.py:4 tests permission bits itself" in found
    assert "sample.py:6 calls stat.S_IMODE" in found
    assert not any(f.startswith("sample.py:5") for f in found)  # the kind of file is not a platform matter
