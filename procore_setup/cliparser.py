"""The `procore-setup` command line's argparse parsers: built only when a run needs them.

A plain `token` run (the command scripts call once per API request) reads its command line in
`cli._token_args` and never imports argparse; every other run builds here the main parser and
the one command's parser it names (all of them for help or an unknown word).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Mapping

from .version import __version__
from .settings import seconds_value
from .errors import EXIT_CODES_HELP
from .refresh import DEFAULT_REFRESH_MIN_VALID, DEFAULT_TOKEN_MIN_VALID

DESCRIPTION = """\
Set up Procore OAuth for an installed application once, then keep the token chain alive.

Run with no command to open the setup wizard (or `login --plain` on a plain terminal).
Scripts use `procore-setup token`; cron runs `procore-setup refresh --all --quiet`.
New here? `procore-setup --demo`, then `procore-setup demo`: no Procore account needed."""

# Per-command help stays short: the table is in `procore-setup --help` and docs/commands.md.
COMMAND_EPILOG = "Every command also takes --config PATH, --store URL, --profile NAME and --passphrase-command CMD.\n" \
                 "exit codes: 0 ok, 2 usage, 3 not configured, 4 log in again, 5 try again later, " \
                 "6 store unusable\n(procore-setup --help says more)"

EPILOG = EXIT_CODES_HELP + """

environment:
  PROCORE_SETUP_STORE        a shared store's URL (postgresql://..., redis://...), as --store
  PROCORE_SETUP_CONFIG       credentials file (default: the user config dir)
  PROCORE_SETUP_PROFILE      profile to use (default: the file's default profile)
  PROCORE_CLIENT_SECRET      client secret for `login --plain` (never a flag)
  PROCORE_SETUP_PASSPHRASE   passphrase of an encrypted credentials file
  PROCORE_SETUP_PASSPHRASE_COMMAND command that prints it, for this run (as --passphrase-command)
  PROCORE_SETUP_NEW_PASSPHRASE the new passphrase, for `passphrase` run without a terminal
  PROCORE_SETUP_PASSPHRASE_TIMEOUT seconds a passphrase command may run (default 10)
  PROCORE_SETUP_KEY_CACHE=0  do not keep the derived key in the kernel keyring (Linux) between runs
  PROCORE_SETUP_LOCK_TIMEOUT seconds to wait for another process's refresh (default 60)
  PROCORE_SETUP_HTTP_TIMEOUT seconds for each network step of a request (default 15)
  HTTPS_PROXY, ALL_PROXY, NO_PROXY  honoured for Procore's hosts; never used for 127.0.0.1/localhost"""


def _seconds(text: str) -> float:
    # The messages never repeat the value: whatever was typed there may be a secret pasted
    # into the wrong place, and parser errors end up in cron mail.
    value = seconds_value(text)
    if isinstance(value, str):
        raise argparse.ArgumentTypeError(value)
    return value


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter without its `import shutil` (a measurable cost on the fast path)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            try:
                width = os.get_terminal_size(sys.stdout.fileno()).columns
            except (OSError, ValueError, AttributeError):
                cols = os.environ.get("COLUMNS", "")
                width = int(cols) if cols.isdigit() else 80
            width = max(width - 2, 40)
        super().__init__(prog, indent_increment, max_help_position, width)


def _company_id(text: str) -> int:
    """A Procore company id: a whole number above 0 (a negative one is no company, and is exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a company id: a whole number above 0") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a company id: a whole number above 0")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, minus echoing what was typed: `--client-secret VALUE`, `--company-id VALUE` or a
    secret pasted where the command goes must not be printed back (parser errors reach cron mail).

    The argument's name and the valid choices stay; every value argparse quotes becomes `…`.
    """

    def format_help(self) -> str:
        """The help, where the commands its description and epilog tell a person to run name the
        program as `hints.program()` does (a cron line as `hints.executable()`: cron's PATH is
        another), so that they work as printed; worked out only when help is shown."""
        saved = self.description, self.epilog
        try:
            self.description, self.epilog = (_named(t) if t else t for t in saved)
            return super().format_help()
        finally:
            self.description, self.epilog = saved

    def error(self, message: str) -> Any:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            words = message[len(prefix):].split()
            shown = [w.split("=", 1)[0] if w.startswith("-") else "…" for w in words]
            message = prefix + " ".join(shown)
            if any(w.startswith("--client-secret") for w in words):
                message += " (the client secret is never a flag: use PROCORE_CLIENT_SECRET or the hidden prompt)"
            else:
                message += self._did_you_mean([w.split("=", 1)[0] for w in words if w.startswith("--")],
                                              self._option_strings())
        else:
            import re

            typed = re.match(r"argument (?:COMMAND|action): invalid choice: '((?:[^'\\]|\\.)*)' \(choose from (.*)\)$",
                             message)
            suggestion = ""
            if typed:
                suggestion = self._did_you_mean([typed.group(1)], re.findall(r"'([\w-]+)'", typed.group(2)))
            message = self._masked(message) + suggestion
        return super().error(message)

    def _option_strings(self) -> list[str]:
        """Every long option of this parser and of its commands' parsers (argparse reports an unknown
        option of a command from the main parser)."""
        out: list[str] = []
        for action in self._actions:
            out += [o for o in action.option_strings if o.startswith("--")]
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    out += [o for a in sub._actions for o in a.option_strings if o.startswith("--")]
        return sorted(set(out))

    @staticmethod
    def _did_you_mean(words: list[str], known: list[str]) -> str:
        """"; did you mean 'token'?" for the first typed word close to a known one. Only the known
        word is shown, never what was typed (it may be a secret pasted in the wrong place)."""
        import difflib

        for word in words:
            close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
            if close:
                return f"; did you mean '{close[0]}'?"
        return ""

    @staticmethod
    def _masked(message: str) -> str:
        """An argparse message without the values it quotes: "invalid int value: 'xyz'", "invalid
        choice: 'xyz' (choose from ...)" (the choices are kept), "ignored explicit argument 'xyz'",
        and "ambiguous option: --co=xyz could match ..." (the option is kept, not its value)."""
        import re

        choices = ""
        at = message.rfind(" (choose from ")  # the last: a typed value may hold these words too
        if at >= 0:
            message, choices = message[:at], message[at:]
        message = re.sub(r"'(?:[^'\\]|\\.)*'" "|" r'"(?:[^"\\]|\\.)*"', "…", message)
        message = re.sub(r"(?<![\w-])(--?[A-Za-z0-9][\w-]*)=\S*", r"\1=…", message)
        return message + choices


def _named(text: str) -> str:
    """`text` with each `procore-setup` that starts a command (not a path's or a file's last part:
    ~/.zfunc/_procore-setup) naming the program as it can be run from here."""
    from .hints import PROGRAM, executable, program

    if PROGRAM not in text:
        return text
    import re

    # A cron line always by the path: cron's PATH is not the person's (often no ~/.local/bin).
    # (cron ends a command at an unescaped %: a path may hold one, as the wizard's cron line knows)
    text = re.sub(r"(\* \* \* \* )procore-setup(?= )", lambda m: m.group(1) + executable().replace("%", "\\%"), text)
    name = program()
    if name == PROGRAM:
        return text
    return re.sub(r"(?<![\w/.~-])procore-setup(?=[ )`]|$)", lambda m: name, text, flags=re.M)


def build_parser(only: str | None, handlers: Mapping[str, Callable[[argparse.Namespace], int]]) -> argparse.ArgumentParser:
    """The full parser, or (for speed on the headless path) the main parser plus one command's.
    `handlers`: each command's function by the command's name ("wizard": none given), handed in
    by cli so that the parsers never import the commands (one way through the house)."""
    def common(p: argparse.ArgumentParser, passphrase_help: str | None = None,
               brief: bool = False) -> argparse.ArgumentParser:
        # on the main parser and on every command, so both `--profile P token` and `token --profile P` work;
        # a command's own --help leaves them to `procore-setup --help` (brief), so that it stays short
        def said(text: str) -> str:
            return argparse.SUPPRESS if brief else text

        p.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                       help=said("credentials file (default: $PROCORE_SETUP_CONFIG or the user config dir)"))
        p.add_argument("--store", metavar="URL", default=argparse.SUPPRESS,
                       help=said("a shared store: postgresql://USER@HOST:PORT/DB, redis://[:PASSWORD@]HOST[:PORT]/DB, "
                                 "rediss://... (default: $PROCORE_SETUP_STORE, else the credentials file)"))
        p.add_argument("--profile", metavar="NAME", default=argparse.SUPPRESS,
                       help=said("profile to use (default: $PROCORE_SETUP_PROFILE or the file's default)"))
        p.add_argument("--passphrase-command", metavar="CMD", default=argparse.SUPPRESS,
                       help=passphrase_help or said("command that prints the passphrase of an encrypted file, for "
                                                    "this run (default: $PROCORE_SETUP_PASSPHRASE_COMMAND; run "
                                                    "without a shell)"))
        return p

    parser = common(_Parser(
        prog="procore-setup", description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter,
    ))
    parser.add_argument("--version", action="version", version=f"procore-setup {__version__}")
    parser.add_argument("--demo", action="store_true",
                        help="run the wizard against a built-in fake Procore server with a throwaway file")
    parser.set_defaults(func=handlers["wizard"])
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    def add(name: str, help: str, description: str | None = None,
            passphrase_help: str | None = None) -> argparse.ArgumentParser | _Unused:
        if only is not None and name != only:
            return _Unused()  # not used in this run: build nothing
        p = sub.add_parser(name, help=help, description=description or help, epilog=COMMAND_EPILOG,
                           formatter_class=_Formatter)
        p.set_defaults(func=handlers[name])
        return common(p, passphrase_help, brief=True)

    p = add("token", "print a valid access token (refreshing first if needed)",
            'For scripts: curl -H "Authorization: Bearer $(procore-setup token)" ...')
    p.add_argument("--min-valid", type=_seconds, default=DEFAULT_TOKEN_MIN_VALID, metavar="SECONDS",
                   help=f"refresh first if the token expires within this many seconds (default {DEFAULT_TOKEN_MIN_VALID})")

    p = add("refresh", "refresh tokens that expire soon (for cron)",
            "Refresh the access token when it expires within the window; does nothing otherwise.\n"
            "Cron example: */20 * * * * procore-setup refresh --all --quiet")
    p.add_argument("--all", action="store_true", help="every profile in the file")
    p.add_argument("--min-valid", type=_seconds, default=DEFAULT_REFRESH_MIN_VALID, metavar="SECONDS",
                   help=f"refresh when the token expires within this many seconds (default {DEFAULT_REFRESH_MIN_VALID})")
    p.add_argument("--force", action="store_true", help="refresh even if the token is still valid")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")

    p = add("status", "show profiles, expiry and problems (never secrets)",
            "Show profiles, expiry and problems (never secrets). Exits 4 when a profile needs a new login,\n"
            "3 when there is none; with --online, 5 when Procore could not confirm a token (the check failed).")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.add_argument("--online", action="store_true",
                   help="also ask Procore's token-info endpoint (exit 5 when that check fails)")

    p = add("login", "set up or re-authorize a profile",
            "Set up or re-authorize a profile. Opens the wizard, or with --plain asks line by line.\n"
            "The client secret comes from $PROCORE_CLIENT_SECRET or a hidden prompt (or a line of stdin\n"
            "when stdin is not a terminal), never from the command line. When stdin is not a terminal the\n"
            "answers are read from it, one a line, in this order, skipping those given as flags: environment,\n"
            "login URL and API URL (custom only), client id, client secret, code, company number.\n"
            "With --service-account (a Developer Managed Service Account: the client-credentials grant) there\n"
            "is no browser and no code: the token is requested with the client id and secret, then checked.")
    p.add_argument("--plain", action="store_true", help="line prompts instead of the full-screen wizard")
    p.add_argument("--service-account", action="store_true",
                   help="a service account (client credentials, no browser, no code); the wizard starts on it")
    p.add_argument("--environment", metavar="ID",
                   help="production, sandbox, monthly-sandbox, federal or custom")
    p.add_argument("--login-url", metavar="URL", help="login base URL (custom environment)")
    p.add_argument("--api-url", metavar="URL", help="API base URL (custom environment)")
    p.add_argument("--client-id", metavar="ID", help="the app's client id")
    p.add_argument("--redirect-uri", metavar="URI", help="default urn:ietf:wg:oauth:2.0:oob")
    p.add_argument("--code", metavar="CODE", help="the authorization code, or the URL that holds it (write --code=CODE if it starts with -)")
    p.add_argument("--company-id", metavar="ID", type=_company_id, help="default company id to save")
    p.add_argument("--demo", action="store_true", default=argparse.SUPPRESS,
                   help="against a built-in fake Procore server, with a throwaway file")
    p.add_argument("--no-verify", action="store_true", help=argparse.SUPPRESS)

    p = add("revoke", "revoke the tokens at Procore and forget them (keeps client settings)")
    p.add_argument("--local-only", action="store_true", help="forget the tokens without telling Procore")

    p = add("encrypt", "encrypt the secrets in the credentials file",
            passphrase_help="command whose output is the passphrase (stored in the file for unattended runs)")
    p.add_argument("--keyring", action="store_true",
                   help="also keep the passphrase in the OS keyring (needs the keyring extra)")
    p = add("decrypt", "store the secrets unencrypted again")
    p = add("passphrase", "change the passphrase of an encrypted file (one atomic rewrite)",
            passphrase_help="command whose output is the current passphrase")
    p.add_argument("--new-passphrase-command", metavar="CMD",
                   help="command whose output is the new passphrase (stored in the file for unattended runs)")

    p = add("store", "set up a shared store, or move profiles between stores",
            "procore-setup --store URL store init [--print]: create the shared store's table (or print its SQL)\n"
            "procore-setup [--store URL | --config PATH] store move --to URL [--profile P | --all]: move profiles\n"
            "from this store to another one, leaving a tombstone here that names where they went")
    p.add_argument("action", choices=("init", "move"), help="init: create (or print) the schema; move: move profiles")
    p.add_argument("--print", action="store_true", dest="print_sql", help="init: print the SQL instead of running it")
    p.add_argument("--to", metavar="URL", help="move: the store to move to (a URL, or a credentials file's path)")
    p.add_argument("--all", action="store_true", help="move: every profile")

    p = add("api", "call Procore's REST API (pagination, rate limits and retries handled)",
            _api_help() if only in (None, "api") else None)
    if not isinstance(p, _Unused):
        from .apicmd import add_arguments

        add_arguments(p, _seconds)

    if only in (None, "completion"):  # its help text lives with it; `token` does not load it
        from .completion import HELP, SHELLS

        p = add("completion", "print the shell completion script (bash, zsh, fish)", HELP)
        p.add_argument("shell", choices=SHELLS, help="the shell to complete in")

    p = add("demo", "keep a demo profile and the fake Procore running, to try the commands",
            "Start the built-in fake Procore on 127.0.0.1 with a throwaway credentials file holding a\n"
            "logged-in demo profile (and a demo service account), then open your shell with\n"
            "PROCORE_SETUP_CONFIG pointing at it, so that `procore-setup token`, `refresh`, `status` and\n"
            "the library work as they would for real. `exit` ends it and removes everything it made (also\n"
            "when the terminal is closed). Without a terminal it serves until stopped (Ctrl+C, SIGTERM).")
    p.add_argument("--no-shell", action="store_true",
                   help="do not open a shell: print the variables to export and serve until stopped")
    return parser


def _api_help() -> str | None:
    from .apicmd import DESCRIPTION as api_description

    return api_description


class _Unused:
    """Stands in for the parser of a command this run does not use."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass
