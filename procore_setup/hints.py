"""The exact commands that messages tell a person to run, shell-quoted."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stores.base import Store


def shell_quote(s: str) -> str:
    """`s` as one word of a POSIX shell command that a person can paste: shlex.quote, or for
    text with control characters (a line break, an escape sequence) bash's $'...' form, which
    spells them out so that they neither reach the terminal nor split the command."""
    import shlex

    if s.isprintable():
        return shlex.quote(s)
    out = []
    for c in s:
        if c in "\\'":
            out.append("\\" + c)
        elif c.isprintable():
            out.append(c)
        elif ord(c) < 0x80:  # \xHH is one byte to bash: only ASCII's controls are written so
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return "$'" + "".join(out) + "'"


PROGRAM = "procore-setup"


def _this_program() -> str | None:
    """The absolute path of the `procore-setup` script that runs this process: the one it was
    started as, else (`python -m procore_setup`, or the library inside someone's program) the one
    installed beside this interpreter; None when there is neither."""
    import os
    import sys

    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if os.path.basename(argv0) == PROGRAM and os.path.isfile(argv0):
        return os.path.abspath(argv0)
    beside = os.path.join(os.path.dirname(sys.executable), PROGRAM) if sys.executable else ""
    if beside and os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    return None


def executable() -> str:
    """This program by its absolute path, shell-quoted: for a line run where PATH is another (cron),
    or `PYTHON -m procore_setup` where no `procore-setup` script belongs to this interpreter."""
    import sys

    found = _this_program()
    if found is not None:
        return shell_quote(found)
    return f"{shell_quote(sys.executable)} -m procore_setup"


def program() -> str:
    """The first word(s) of a command a message tells a person to type: `procore-setup` where that
    name on PATH finds this very program (the same file), else `executable()`, which works as
    printed (a venv not on PATH, scripts/run, `python -m procore_setup`). Worked out only when a
    message is made: never on the token fast path."""
    import os
    import shutil

    found = _this_program()
    on_path = shutil.which(PROGRAM)
    # Only an absolute PATH entry finds it from another directory (`bin` or an empty entry finds
    # it from here only).
    if found is not None and on_path is not None and os.path.isabs(on_path):
        try:
            if os.path.samefile(on_path, found):
                return PROGRAM
        except OSError:
            pass
    return executable()


def command(store: Store | None, *words: str) -> str:
    """`procore-setup [the store's flag] WORDS...`: what to type to act on `store`, the program
    named as `program()` names it."""
    flag = store.address.cli_flag() if store is not None else ""
    return " ".join([program() + flag, *words])


def add_command(store: Store | None) -> str:
    """The command that adds a profile to `store` (the wizard)."""
    return command(store)


def reauth_command(store: Store | None, profile: str) -> str:
    """The exact command that re-authorizes `profile` of `store`."""
    return command(store, "login", "--profile", shell_quote(profile))


def token_command(store: Store | None, profile: str) -> str:
    """The command that prints `profile`'s access token from `store` (renewing it when due)."""
    return command(store, "token", "--profile", shell_quote(profile))


def store_flag(where: str) -> str:
    """The command-line flag that names a store as `Store.describe` names it: ` --store URL` for
    a shared store (its URL never holds a password), ` --config PATH` for a file."""
    if "://" in where:
        return f" --store {shell_quote(where)}"
    return f" --config {shell_quote(where)}"
