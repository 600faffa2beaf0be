"""Shell completion: `procore-setup completion bash|zsh|fish` prints the script, and a Tab press runs
the program with argcomplete's variables set, which answers from the live parser.

argcomplete (not shtab) because it covers fish as well as bash and zsh, and because it answers
from the running parser, so profile names come from the file or store that the command line (or
the environment) names at the moment of the Tab. Only this module imports it, and only the
`completion` command and a Tab press import this module: `token` never loads it. A Tab press
imports no Textual and no httpx; a shared store is read through its driver-free fast path.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Iterable

SHELLS = ("bash", "zsh", "fish")
PROG = "procore-setup"

INSTALL = {
    "bash": "mkdir -p ~/.local/share/bash-completion/completions && "
            "procore-setup completion bash > ~/.local/share/bash-completion/completions/procore-setup",
    "zsh": "mkdir -p ~/.zfunc && procore-setup completion zsh > ~/.zfunc/_procore-setup, then in ~/.zshrc: "
           "fpath+=~/.zfunc; autoload -Uz compinit && compinit",
    "fish": "procore-setup completion fish > ~/.config/fish/completions/procore-setup.fish",
}

HELP = "Print the shell completion script for SHELL on stdout. Install it once:\n" + "\n".join(
    f"  {shell + ':':6}{line}" for shell, line in INSTALL.items()
) + "\nIt completes commands, options, environments and the profile names of the current file or store."


def script(shell: str) -> str:
    """The completion script for `shell`, registering the command `procore-setup`."""
    import argcomplete

    return str(argcomplete.shellcode([PROG], shell=shell))


def _profiles(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> Iterable[str]:
    """The profile names of the store this command line names (else the environment's, else the
    default file): read only, never a prompt, never an error on the terminal."""
    from .stores import open_store

    try:
        with open_store(getattr(parsed_args, "config", None), store=getattr(parsed_args, "store", None)) as store:
            names = list(store.load().profiles)
    except Exception:  # a missing or broken store: nothing to offer, and nothing to say mid-line
        return []
    # names come from the file: only those a shell can take as one plain word are offered
    return sorted(n for n in names if n.startswith(prefix) and n.isprintable() and len(n) <= 64)


def _environments(prefix: str, **_: Any) -> Iterable[str]:
    from .environments import ENVIRONMENTS

    return [e for e in ENVIRONMENTS if e.startswith(prefix)]


def _nothing(**_: Any) -> Iterable[str]:
    return []


def _walk(parser: argparse.ArgumentParser) -> Iterable[argparse.Action]:
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                yield from _walk(sub)


def complete(parser: argparse.ArgumentParser) -> None:
    """Answer a Tab press (argcomplete's variables are set) and exit; return when they are not."""
    import argcomplete

    for action in _walk(parser):
        if action.help == argparse.SUPPRESS and action.dest in ("config", "store", "profile", "passphrase_command"):
            action.help = ""  # left out of a command's --help for brevity, not from Tab
        if action.dest == "profile":
            action.completer = _profiles  # type: ignore[attr-defined]
        elif action.dest == "environment":
            action.completer = _environments  # type: ignore[attr-defined]
        elif action.dest in ("client_id", "code", "company_id", "login_url", "api_url", "redirect_uri",
                             "min_valid") and action.option_strings:
            action.completer = _nothing  # type: ignore[attr-defined]  # values only the user knows
    argcomplete.autocomplete(parser)


def run(shell: str) -> int:
    sys.stdout.write(script(shell))
    return 0
