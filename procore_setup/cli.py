"""The `procore-setup` command line: argparse, one function per command.

Heavy modules (httpx, textual, cryptography) are imported only inside the
command that needs them, so `token`, `status` and a no-op `refresh` stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

from . import __version__
from . import settings
from .errors import EXIT_CODES_HELP, EXIT_OK, ProcoreSetupError, UsageError
from .hints import add_command
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
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("the value is not a number of seconds") from None
    if not 0 <= value <= 86400 or value != value:
        raise argparse.ArgumentTypeError("must be between 0 and 86400 seconds")
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


COMMANDS = ("token", "refresh", "status", "login", "revoke", "encrypt", "decrypt", "passphrase", "store", "api",
            "completion", "demo")
_GLOBAL_WITH_VALUE = ("--config", "--store", "--profile", "--passphrase-command")


def _command_in(argv: list[str]) -> str | None:
    """The subcommand named in argv, if it is a known one (so only its parser need be built);
    "" when there is none and no help is asked for (the wizard: no command parser at all);
    None when all are needed (help, or a word that is no command, to list the choices)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _GLOBAL_WITH_VALUE:
            skip = True
            continue
        if arg in ("--", "-h", "--help"):
            return None
        if arg.startswith("-"):
            continue
        return arg if arg in COMMANDS else None
    return ""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (for speed on the headless path) the main parser plus one command's."""
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
    parser.set_defaults(func=cmd_wizard)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str, description: str | None = None,
            passphrase_help: str | None = None) -> argparse.ArgumentParser | _Unused:
        if only is not None and name != only:
            return _Unused()  # not used in this run: build nothing
        p = sub.add_parser(name, help=help, description=description or help, epilog=COMMAND_EPILOG,
                           formatter_class=_Formatter)
        p.set_defaults(func=func)
        return common(p, passphrase_help, brief=True)

    p = add("token", cmd_token, "print a valid access token (refreshing first if needed)",
            'For scripts: curl -H "Authorization: Bearer $(procore-setup token)" ...')
    p.add_argument("--min-valid", type=_seconds, default=DEFAULT_TOKEN_MIN_VALID, metavar="SECONDS",
                   help=f"refresh first if the token expires within this many seconds (default {DEFAULT_TOKEN_MIN_VALID})")

    p = add("refresh", cmd_refresh, "refresh tokens that expire soon (for cron)",
            "Refresh the access token when it expires within the window; does nothing otherwise.\n"
            "Cron example: */20 * * * * procore-setup refresh --all --quiet")
    p.add_argument("--all", action="store_true", help="every profile in the file")
    p.add_argument("--min-valid", type=_seconds, default=DEFAULT_REFRESH_MIN_VALID, metavar="SECONDS",
                   help=f"refresh when the token expires within this many seconds (default {DEFAULT_REFRESH_MIN_VALID})")
    p.add_argument("--force", action="store_true", help="refresh even if the token is still valid")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")

    p = add("status", cmd_status, "show profiles, expiry and problems (never secrets)",
            "Show profiles, expiry and problems (never secrets). Exits 4 when a profile needs a new login,\n"
            "3 when there is none; with --online, 5 when Procore could not confirm a token (the check failed).")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.add_argument("--online", action="store_true",
                   help="also ask Procore's token-info endpoint (exit 5 when that check fails)")

    p = add("login", cmd_login, "set up or re-authorize a profile",
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

    p = add("revoke", cmd_revoke, "revoke the tokens at Procore and forget them (keeps client settings)")
    p.add_argument("--local-only", action="store_true", help="forget the tokens without telling Procore")

    p = add("encrypt", cmd_encrypt, "encrypt the secrets in the credentials file",
            passphrase_help="command whose output is the passphrase (stored in the file for unattended runs)")
    p.add_argument("--keyring", action="store_true",
                   help="also keep the passphrase in the OS keyring (needs the keyring extra)")
    p = add("decrypt", cmd_decrypt, "store the secrets unencrypted again")
    p = add("passphrase", cmd_passphrase, "change the passphrase of an encrypted file (one atomic rewrite)",
            passphrase_help="command whose output is the current passphrase")
    p.add_argument("--new-passphrase-command", metavar="CMD",
                   help="command whose output is the new passphrase (stored in the file for unattended runs)")

    p = add("store", cmd_store, "set up a shared store, or move profiles between stores",
            "procore-setup --store URL store init [--print]: create the shared store's table (or print its SQL)\n"
            "procore-setup [--store URL | --config PATH] store move --to URL [--profile P | --all]: move profiles\n"
            "from this store to another one, leaving a tombstone here that names where they went")
    p.add_argument("action", choices=("init", "move"), help="init: create (or print) the schema; move: move profiles")
    p.add_argument("--print", action="store_true", dest="print_sql", help="init: print the SQL instead of running it")
    p.add_argument("--to", metavar="URL", help="move: the store to move to (a URL, or a credentials file's path)")
    p.add_argument("--all", action="store_true", help="move: every profile")

    p = add("api", cmd_api, "call Procore's REST API (pagination, rate limits and retries handled)",
            _api_help() if only in (None, "api") else None)
    if not isinstance(p, _Unused):
        from .apicmd import add_arguments

        add_arguments(p, _seconds)

    if only in (None, "completion"):  # its help text lives with it; `token` does not load it
        from .completion import HELP, SHELLS

        p = add("completion", cmd_completion, "print the shell completion script (bash, zsh, fish)", HELP)
        p.add_argument("shell", choices=SHELLS, help="the shell to complete in")

    p = add("demo", cmd_demo, "keep a demo profile and the fake Procore running, to try the commands",
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


def _opt(args: argparse.Namespace, name: str) -> Any:
    return getattr(args, name, None)


def _profile(args: argparse.Namespace) -> str | None:
    """The profile named on the command line, else $PROCORE_SETUP_PROFILE (None: the store's default)."""
    return settings.profile(_opt(args, "profile"))


def _store(args: argparse.Namespace) -> Any:
    from .stores import open_store

    return open_store(_opt(args, "config"), store=_opt(args, "store"), passphrase_command=_opt(args, "passphrase_command"))


def _interactive() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def _warn(text: str) -> None:
    print(f"procore-setup: {text}", file=sys.stderr)


# -- commands ----------------------------------------------------------------------------

TOKEN_FALLBACK_VALID = 60  # `token` hands out the old token if it still has a minute and the refresh can't get through


def cmd_token(args: argparse.Namespace) -> int:
    from .refresh import ensure_fresh

    result = ensure_fresh(_store(args), _profile(args), min_valid=args.min_valid, interactive=_interactive(),
                          http_timeout=settings.http_timeout(),
                          fallback_valid=TOKEN_FALLBACK_VALID)
    if result.warning:
        from . import text  # only to say how long the old token lasts: not on the fast path

        left = result.profile.seconds_left() or 0
        _warn(f"warning: could not refresh ({result.warning}); the current token is still valid for "
              f"{text.duration(left)}.")
    if result.recovered_from_interrupt:
        _warn("note: an earlier refresh had not finished (interrupted, or answered with a server error); "
              "this refresh worked and the chain is intact.")
    if result.save_warning:
        _warn("warning: " + result.save_warning)
    sys.stdout.write(result.access_token + "\n")
    return EXIT_OK


def cmd_refresh(args: argparse.Namespace) -> int:
    from . import text
    from .checks import shown
    from .refresh import ensure_fresh

    store = _store(args)
    if args.all:
        if _opt(args, "profile"):
            raise UsageError("Give either --profile or --all, not both.")
        doc = store.load()
        names: list[str | None] = sorted(doc.profiles)
        if not names:
            from .errors import NotConfigured

            if doc.moved:  # a cron job left pointing at a store whose profiles moved away
                raise doc.moved_error(sorted(doc.moved)[0], command="refresh --all")
            raise NotConfigured(f"{store.describe()} holds no profiles yet.", hint=f"Add one with: {add_command(store)}")
    else:
        names = [_profile(args)]
    outcomes: list[dict[str, Any]] = []
    worst = EXIT_OK
    for name in names:
        # Each profile on its own: one that cannot be refreshed (a bad URL or token in the file,
        # a refused grant) is reported, and the others are still refreshed.
        label = f"profile {shown(name, 64)}: " if name else ""
        try:
            res = ensure_fresh(store, name, min_valid=args.min_valid, force=args.force, interactive=_interactive(),
                               http_timeout=settings.http_timeout())
        except ProcoreSetupError as exc:
            worst = max(worst, exc.exit_code)
            outcomes.append({"profile": name, "ok": False, "exit_code": exc.exit_code, "error": exc.message,
                             "hint": exc.hint})
            if not args.json:
                _warn(f"{label}{exc}")
            continue
        prof = res.profile
        left = prof.seconds_left()
        # "refreshed": a new access token (for a service account: requested with its client credentials)
        outcomes.append({"profile": prof.name, "ok": True, "refreshed": res.refreshed, "kind": prof.kind,
                         "expires_at": prof.expires_at.isoformat() if prof.expires_at else None,
                         "seconds_left": int(left) if left is not None else None})
        if res.recovered_from_interrupt:
            _warn(f"profile {shown(prof.name, 64)}: note: an earlier refresh had not finished (interrupted, or "
                  "answered with a server error); this refresh worked and the chain is intact.")
        if res.save_warning:
            _warn(f"profile {shown(prof.name, 64)}: warning: {res.save_warning}")
        if not args.quiet and not args.json:
            what = ("new token requested (service account)" if prof.is_service_account else "refreshed") \
                if res.refreshed else "still valid, nothing to do"
            print(f"{shown(prof.name, 64)}: {what}; access token valid until {_when(prof.expires_at)} "
                  f"({text.time_left(left)})")
    if args.json:
        import json

        print(json.dumps(outcomes if args.all else outcomes[0], indent=2))
    return worst


def cmd_status(args: argparse.Namespace) -> int:
    from .status import run_status

    return run_status(_store(args), _profile(args), as_json=args.json, online=args.online,
                      http_timeout=settings.http_timeout(),
                      interactive=_interactive())


def cmd_login(args: argparse.Namespace) -> int:
    if args.plain:
        from .plain import run_plain

        return run_plain(args)
    for flag in ("environment", "login_url", "api_url", "client_id", "code", "company_id", "redirect_uri"):
        if getattr(args, flag, None) not in (None, False):
            raise UsageError(f"--{flag.replace('_', '-')} goes with `login --plain`.",
                             hint="Add --plain, or leave the flag out to use the wizard.")
    return _wizard(args, reauthorize=True, service_account=bool(args.service_account))


def cmd_wizard(args: argparse.Namespace) -> int:
    return _wizard(args, reauthorize=False)


def _wizard(args: argparse.Namespace, *, reauthorize: bool, service_account: bool = False) -> int:
    if not _interactive() or not sys.stdout.isatty():
        raise UsageError(
            "The setup wizard needs a terminal, and this one is not (stdin or stdout is redirected).",
            hint="Use the line-prompt version instead: procore-setup login --plain",
        )
    from .tui.app import run_wizard

    return run_wizard(config=_opt(args, "config"), store_url=_opt(args, "store"), profile=_opt(args, "profile"),
                      demo=bool(_opt(args, "demo")), login=reauthorize, service_account=service_account,
                      passphrase_command=_opt(args, "passphrase_command"))


def cmd_revoke(args: argparse.Namespace) -> int:
    from .hints import reauth_command

    store = _store(args)
    with store.transaction(interactive=_interactive()) as doc:
        prof = doc.get(_profile(args))
        if not prof.access_token and not prof.refresh_token:
            print(f"{prof.name}: no tokens stored; nothing to revoke.")
            return EXIT_OK
        if not args.local_only:
            from .refresh import make_client

            with make_client(prof, timeout=settings.http_timeout()) as client:
                for token in (prof.access_token, prof.refresh_token):
                    if token:
                        client.revoke(token)
        prof.set(access_token=None, refresh_token=None, expires_at=None, expires_in=None, created_at=None,
                 refresh_started_at=None, last_error=None, reauth_required=None)
    where = "locally" if args.local_only else "at Procore and locally"
    if prof.is_service_account:
        print(f"{prof.name}: token revoked {where}; client settings kept.")
        print("The next `procore-setup token` requests a new one with the stored client credentials.")
        return EXIT_OK
    print(f"{prof.name}: tokens revoked {where}; client settings kept.")
    print(f"Log in again with: {reauth_command(store, prof.name)}")
    return EXIT_OK


def cmd_encrypt(args: argparse.Namespace) -> int:
    from .encryption import run_encrypt

    return _report(run_encrypt(_store(args), passphrase_command=_opt(args, "passphrase_command"),
                               interactive=_interactive(), keyring=args.keyring))


def cmd_passphrase(args: argparse.Namespace) -> int:
    from .encryption import run_change_passphrase

    return _report(run_change_passphrase(_store(args), passphrase_command=_opt(args, "passphrase_command"),
                                         new_passphrase_command=args.new_passphrase_command,
                                         interactive=_interactive()))


def cmd_decrypt(args: argparse.Namespace) -> int:
    from .encryption import run_decrypt

    return _report(run_decrypt(_store(args), passphrase_command=_opt(args, "passphrase_command"),
                               interactive=_interactive()))


def cmd_store(args: argparse.Namespace) -> int:
    from .movestore import run_init, run_move

    if args.action == "init":
        return _report(run_init(_store(args), print_sql=args.print_sql))
    if not args.to:
        raise UsageError("store move needs --to URL: the store to move the profiles to.")
    if args.all and _opt(args, "profile"):
        raise UsageError("Give either --profile or --all, not both.")
    from .stores import open_store

    destination = open_store(store=args.to, passphrase_command=_opt(args, "passphrase_command"))
    return _report(run_move(_store(args), destination, None if args.all else _profile(args),
                            interactive=_interactive(), http_timeout=settings.http_timeout()))


def cmd_api(args: argparse.Namespace) -> int:
    from .apicmd import run_api, run_demo

    if _opt(args, "demo"):
        return run_demo(args)
    return run_api(args, _store(args), _profile(args))


def _report(outcome: Any) -> int:
    """Print what an encryption command did: its warnings on stderr, its lines on stdout."""
    for warning in outcome.warnings:
        _warn(warning)
    for line in outcome.lines:
        print(line)
    return EXIT_OK


# -- formatting helpers shared by the commands ----------------------------------------------

def _when(dt: Any) -> str:
    return dt.isoformat() if dt is not None else "unknown"


def cmd_completion(args: argparse.Namespace) -> int:
    from .completion import run

    return run(args.shell)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(shell=not args.no_shell and _interactive() and sys.stdout.isatty())


_TOKEN_OPTIONS = {"--config": "config", "--store": "store", "--profile": "profile",
                  "--passphrase-command": "passphrase_command"}


def _token_args(argv: list[str]) -> argparse.Namespace | None:
    """The arguments of a plain `token` run, as argparse would give them, without building its
    parsers (1 to 2 ms and the locale module, on a command scripts run once per API request).

    Only the exact spellings are taken: the command once, the global options before or after it
    and --min-valid after it, each as `--opt VALUE` or `--opt=VALUE`, the last one winning.
    Anything else (help, an abbreviation, an unknown word, a value that starts with "-", an
    out-of-range --min-valid) gives None, and argparse parses and words it as ever."""
    values: dict[str, Any] = {}
    min_valid: float = DEFAULT_TOKEN_MIN_VALID
    command = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in _TOKEN_OPTIONS or (command and name == "--min-valid"):
            if not eq:
                if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                    return None
                i += 1
                value = argv[i]
            if name == "--min-valid":
                try:
                    min_valid = _seconds(value)
                except argparse.ArgumentTypeError:
                    return None
            else:
                values[_TOKEN_OPTIONS[name]] = value
        elif arg == "token" and not command:
            command = True
        else:
            return None
        i += 1
    if not command:
        return None
    return argparse.Namespace(demo=False, func=cmd_token, min_valid=min_valid, **values)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if "_ARGCOMPLETE" in os.environ:  # a Tab press in a shell with the completion script: answer, exit
        from .completion import complete

        complete(build_parser())
    only = _command_in(argv)
    args = _token_args(argv) if only == "token" else None
    if args is None:
        args = build_parser(only).parse_args(argv)
    try:
        return args.func(args)
    except ProcoreSetupError as exc:
        _warn(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _warn("interrupted.")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug: say where, but never echo values that could be secrets
        if os.environ.get("PROCORE_SETUP_DEBUG"):
            raise
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f" at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}" if tb else ""
        _warn(f"internal error: {type(exc).__name__}{where}. Nothing was lost. "
              "Set PROCORE_SETUP_DEBUG=1 for a traceback, and please report it.")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
