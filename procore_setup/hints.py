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
        elif ord(c) < 0x100:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return "$'" + "".join(out) + "'"


def command(store: Store | None, *words: str) -> str:
    """`procore-setup [the store's flag] WORDS...`: what to type to act on `store`."""
    flag = store.address.cli_flag() if store is not None else ""
    return " ".join(["procore-setup" + flag, *words])


def add_command(store: Store | None) -> str:
    """The command that adds a profile to `store` (the wizard)."""
    return command(store)


def reauth_command(store: Store | None, profile: str) -> str:
    """The exact command that re-authorizes `profile` of `store`."""
    return command(store, "login", "--profile", shell_quote(profile))


def store_flag(where: str) -> str:
    """The command-line flag that names a store as `Store.describe` names it: ` --store URL` for
    a shared store (its URL never holds a password), ` --config PATH` for a file."""
    if "://" in where:
        return f" --store {shell_quote(where)}"
    return f" --config {shell_quote(where)}"
