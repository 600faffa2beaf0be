"""The `procore-setup` command line: one function per command; the parsers are in cliparser.

Heavy modules (httpx, textual, cryptography) are imported only inside the
command that needs them, so `token`, `status` and a no-op `refresh` stay fast; a plain
`token` run does not even import argparse (`_token_args`).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, cast

from . import settings
from .errors import EXIT_OK, ProcoreSetupError, UsageError
from .hints import add_command, program, token_command
from .refresh import DEFAULT_TOKEN_MIN_VALID

if TYPE_CHECKING:
    import argparse


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
    from .cliparser import build_parser as build

    handlers = {"wizard": cmd_wizard, "token": cmd_token, "refresh": cmd_refresh, "status": cmd_status,
                "login": cmd_login, "revoke": cmd_revoke, "encrypt": cmd_encrypt, "decrypt": cmd_decrypt,
                "passphrase": cmd_passphrase, "store": cmd_store, "api": cmd_api, "completion": cmd_completion,
                "demo": cmd_demo}
    return build(only, handlers)


class _Args:
    """The parsed arguments of a plain `token` run or wizard start: what argparse's Namespace would hold."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def _opt(args: argparse.Namespace, name: str) -> Any:
    return getattr(args, name, None)


def _profile(args: argparse.Namespace) -> str | None:
    """The profile named on the command line, else $PROCORE_SETUP_PROFILE (None: the store's default)."""
    return settings.profile(_opt(args, "profile"))


_opened: list[Any] = []  # the stores this run opened: main() closes them when the command ends


def _open(args: argparse.Namespace) -> tuple[Any, settings.Unlock]:
    """The store this run works on, and this run's passphrase sources (--passphrase-command, else
    $PROCORE_SETUP_PASSPHRASE_COMMAND; a prompt when stdin is a terminal), both read here, once."""
    from .stores import open_store

    unlock = _unlock(args)
    store = open_store(_opt(args, "config"), store=_opt(args, "store"))
    _opened.append(store)
    return store, unlock


def _unlock(args: argparse.Namespace) -> settings.Unlock:
    return settings.unlock_from(_opt(args, "passphrase_command"), interactive=_interactive())


def _close_stores() -> None:
    """Close the stores this run opened (a shared store's connections), whatever the command did."""
    while _opened:
        store = _opened.pop()
        try:
            store.close()
        except Exception:  # noqa: BLE001 - the command's outcome stands; nothing is lost by this
            pass


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

    store, unlock = _open(args)
    result = ensure_fresh(store, _profile(args), min_valid=args.min_valid, unlock=unlock,
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

    store, unlock = _open(args)
    if args.all:
        if _opt(args, "profile"):
            raise UsageError("Give either --profile or --all, not both.")
        doc = store.load()
        names: list[str | None] = sorted(doc.profiles)
        if not names:
            from .errors import NotConfigured

            if doc.moved:  # a cron job left pointing at a store whose profiles moved away
                raise doc.moved_error(sorted(doc.moved)[0], command="refresh --all")
            raise NotConfigured(f"{store.address.describe()} holds no profiles yet.", hint=f"Add one with: {add_command(store)}")
    else:
        names = [_profile(args)]
    outcomes: list[dict[str, Any]] = []
    worst = EXIT_OK
    for name in names:
        # Each profile on its own: one that cannot be refreshed (a bad URL or token in the file,
        # a refused grant) is reported, and the others are still refreshed.
        label = f"profile {shown(name, 64)}: " if name else ""
        try:
            res = ensure_fresh(store, name, min_valid=args.min_valid, force=args.force, unlock=unlock,
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

    store, unlock = _open(args)
    return run_status(store, _profile(args), as_json=args.json, online=args.online,
                      http_timeout=settings.http_timeout(), unlock=unlock)


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
            hint=f"Use the line-prompt version instead: {program()} login --plain",
        )
    # Start-up (importing Textual, building the first frame) makes hundreds of thousands of objects
    # and almost no garbage cycles: the collector's ~100 passes over them cost ~15 ms before the
    # first frame. It is off until that frame is drawn (ProcoreSetupApp.on_ready turns it back on,
    # after moving what start-up made out of its reach with gc.freeze), and back on here whatever
    # happens before.
    import gc

    paused = gc.isenabled()
    gc.disable()
    try:
        from .tui.app import run_wizard

        return run_wizard(config=_opt(args, "config"), store_url=_opt(args, "store"), profile=_opt(args, "profile"),
                          demo=bool(_opt(args, "demo")), login=reauthorize, service_account=service_account,
                          passphrase_command=_opt(args, "passphrase_command"), resume_gc=paused)
    finally:
        if paused:
            gc.enable()


def cmd_revoke(args: argparse.Namespace) -> int:
    from .hints import reauth_command

    store, unlock = _open(args)
    from .transaction import transaction

    with transaction(store, unlock=unlock) as doc:
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
        print(f"The next `{token_command(store, prof.name)}` requests a new one with the stored client credentials.")
        return EXIT_OK
    print(f"{prof.name}: tokens revoked {where}; client settings kept.")
    print(f"Log in again with: {reauth_command(store, prof.name)}")
    return EXIT_OK


def cmd_encrypt(args: argparse.Namespace) -> int:
    from .encryption import run_encrypt

    # --passphrase-command here is the command to store: the variable is not read for it
    return _report(run_encrypt(_open(args)[0], passphrase_command=_opt(args, "passphrase_command"),
                               interactive=_interactive(), keyring=args.keyring))


def cmd_passphrase(args: argparse.Namespace) -> int:
    from .encryption import run_change_passphrase

    return _report(run_change_passphrase(_open(args)[0], passphrase_command=_opt(args, "passphrase_command"),
                                         new_passphrase_command=args.new_passphrase_command,
                                         interactive=_interactive()))


def cmd_decrypt(args: argparse.Namespace) -> int:
    from .encryption import run_decrypt

    return _report(run_decrypt(*_open(args)))


def cmd_store(args: argparse.Namespace) -> int:
    if args.action == "init":
        from .storeinit import run_init

        return _report(run_init(_open(args)[0], print_sql=args.print_sql))
    from .movestore import run_move

    if not args.to:
        raise UsageError("store move needs --to URL: the store to move the profiles to.")
    if args.all and _opt(args, "profile"):
        raise UsageError("Give either --profile or --all, not both.")
    from .stores import open_store

    unlock = _unlock(args)  # one run, one set of passphrase sources: for both stores
    destination = open_store(store=args.to)
    _opened.append(destination)
    source, _ = _open(args)
    return _report(run_move(source, destination, None if args.all else _profile(args), unlock=unlock))


def cmd_api(args: argparse.Namespace) -> int:
    from .apicmd import run_api, run_demo

    if _opt(args, "demo"):
        return run_demo(args)
    return run_api(args, *_open(args), _profile(args))


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


_GLOBAL_OPTIONS = {"--config": "config", "--store": "store", "--profile": "profile",
                   "--passphrase-command": "passphrase_command"}


def _token_args(argv: list[str]) -> argparse.Namespace | None:
    """The arguments of a plain `token` run, as argparse would give them, without importing
    argparse or building its parsers (about 3 ms in all, with gettext and the locale module, on a
    command scripts run once per API request).

    Only the exact spellings are taken: the command once, the global options before or after it
    and --min-valid after it, each as `--opt VALUE` or `--opt=VALUE`, the last one winning.
    Anything else (help, an abbreviation, an unknown word, a value that starts with "-", an
    out-of-range --min-valid) gives None, and argparse parses and words it as ever."""
    return _plain_args(argv, "token")


def _wizard_args(argv: list[str]) -> argparse.Namespace | None:
    """The arguments of a plain start of the wizard (no command: only the global options and
    --demo, spelt exactly), as argparse would give them, without importing argparse (3 ms before
    the wizard's first frame). Anything else gives None, for argparse."""
    return _plain_args(argv, "")


def _plain_args(argv: list[str], command: str) -> argparse.Namespace | None:
    """`_token_args` (command "token") and `_wizard_args` (command "")."""
    values: dict[str, Any] = {}
    min_valid: float = DEFAULT_TOKEN_MIN_VALID
    demo = False
    seen = command == ""  # the wizard has no command word to wait for
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in _GLOBAL_OPTIONS or (command == "token" and seen and name == "--min-valid"):
            if not eq:
                if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                    return None
                i += 1
                value = argv[i]
            if name == "--min-valid":
                seconds = settings.seconds_value(value)
                if isinstance(seconds, str):
                    return None
                min_valid = seconds
            else:
                values[_GLOBAL_OPTIONS[name]] = value
        elif command == "token" and arg == "token" and not seen:
            seen = True
        elif command == "" and arg == "--demo":
            demo = True
        else:
            return None
        i += 1
    if not seen:
        return None
    if command == "token":
        return cast("argparse.Namespace", _Args(demo=False, func=cmd_token, min_valid=min_valid, **values))
    return cast("argparse.Namespace", _Args(demo=demo, func=cmd_wizard, **values))


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if "_ARGCOMPLETE" in os.environ:  # a Tab press in a shell with the completion script: answer, exit
        from .completion import complete

        complete(build_parser())
    only = _command_in(argv)
    args = _token_args(argv) if only == "token" else _wizard_args(argv) if only == "" else None
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
    finally:
        _close_stores()


if __name__ == "__main__":
    raise SystemExit(main())
