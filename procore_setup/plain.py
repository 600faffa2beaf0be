"""`procore-setup login --plain`: the setup conversation as line prompts.

For terminals where a full-screen UI cannot run, and for scripts: when stdin is
not a terminal, each answer is one line of stdin. Prompts go to stderr, so the
answers and results on stdout stay clean.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any, Callable

from . import environments, settings
from .stores import open_store
from .stores.base import access_note

if TYPE_CHECKING:
    from .stores.base import Store
from .errors import EXIT_OK, ProcoreSetupError, TemporaryFailure, UsageError
from .hints import program, token_command
from .flow import AUTHORIZE, CODE, FlowError, SetupFlow, cron_line, step_for_error, usage_examples

MAX_TRIES = 3


class Prompter:
    """Asks a question on a terminal, or reads the next line of stdin when there is none."""

    def __init__(self, interactive: bool, out: Callable[[str], None]) -> None:
        self.interactive = interactive
        self.out = out

    def ask(self, question: str, default: str | None = None, *, what: str) -> str:
        answer = self.ask_optional(question, default, what=what)
        if answer is None:
            if self.interactive:
                raise UsageError(f"No answer for the {what}: input ended.")
            raise UsageError(
                f"stdin ended before the {what} was given.",
                hint=f"Give one answer a line, or pass it as a flag (see {program()} login --help).",
            )
        return answer

    def ask_optional(self, question: str, default: str | None = None, *, what: str) -> str | None:
        """The answer, the default for an empty one, or None when input has ended."""
        shown = f" [{default}]" if default else ""
        if self.interactive:
            try:
                answer = input(f"{question}{shown}: ")
            except EOFError:
                return None
        else:
            line = sys.stdin.readline()
            if not line:
                return None
            answer = line.rstrip("\r\n")
        answer = answer.strip()
        return answer or (default or "")

    def ask_secret(self, question: str, *, what: str) -> str:
        if self.interactive:
            import getpass

            try:
                return getpass.getpass(f"{question} (hidden): ", stream=sys.stderr)
            except EOFError:
                raise UsageError(f"No answer for the {what}: input ended.") from None
        line = sys.stdin.readline()
        if not line:
            raise UsageError(f"stdin ended before the {what} was given.",
                             hint="Or set PROCORE_CLIENT_SECRET in the environment.")
        return line.strip()


def _say(text: str = "") -> None:
    print(text, file=sys.stderr)


def run_plain(args: argparse.Namespace) -> int:
    interactive = sys.stdin is not None and sys.stdin.isatty()
    # this run's passphrase sources (--passphrase-command, else the variable), read once, here
    unlock = settings.unlock_from(getattr(args, "passphrase_command", None), interactive=interactive)
    demo = None
    config = getattr(args, "config", None)
    store_url = getattr(args, "store", None)
    if getattr(args, "demo", False):
        from .testing.demo import DemoSession

        demo = DemoSession()
        _end_demo_on_signals()
        demo.start()
        config, store_url = demo.config_path, None
        # Always the fake's own client: a real secret in PROCORE_CLIENT_SECRET must not go to it.
        args.environment, args.login_url, args.api_url = "custom", demo.url, demo.url
        args.client_id = demo.client_id
        demo_secret: str | None = demo.client_secret
        if getattr(args, "service_account", False):
            args.client_id = demo.fake.service_account_client_id
            demo_secret = demo.fake.service_account_client_secret
        _say(f"Demo mode: a fake Procore server runs at {demo.url}; nothing real is touched.")
        _say(f"Throwaway credentials file: {config}")
    store: Any = None
    try:
        store = open_store(config, store=store_url)
        secret = demo_secret if demo is not None else None
        if getattr(args, "service_account", False):
            return _run_service_account(args, store, interactive, unlock, demo_secret=secret)
        return _run(args, store, interactive, unlock, demo_secret=secret, demo=demo is not None)
    finally:
        try:
            if store is not None:  # None: opening it failed, and that error is the one to show
                store.close()  # a shared store's connection: closed, not left to exit
        finally:
            if demo is not None:
                demo.stop()


def _end_demo_on_signals() -> None:
    """A closed terminal (SIGHUP) or SIGTERM ends the demo through its clean-up (the `finally` that
    stops the server and removes the throwaway directory), not around it."""
    import signal

    def ended(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, ended)


def _start(args: argparse.Namespace, store: Store, interactive: bool,
           unlock: settings.Unlock) -> tuple[Prompter, SetupFlow, Any]:
    """The prompter, the flow of the profile asked for, and that profile as stored (or None)."""
    ask = Prompter(interactive, _say)
    profile = settings.profile(getattr(args, "profile", None)) or "default"
    flow = SetupFlow(store, profile, unlock=unlock, http_timeout=settings.http_timeout())
    existing = flow.load_existing()
    if existing is not None:
        _say(f"Profile {flow.profile_name!r} exists in {store.address.describe()}: its settings are the defaults below.")
    return ask, flow, existing


def _run(args: argparse.Namespace, store: Store, interactive: bool, unlock: settings.Unlock, *,
         demo_secret: str | None = None, demo: bool = False) -> int:
    ask, flow, _existing = _start(args, store, interactive, unlock)
    _ask_environment(flow, args, ask, interactive)
    _ask_client(flow, args, ask, interactive, demo_secret)
    _authorize_and_exchange(flow, args, ask, interactive, demo=demo)

    # From here on the grant exists at Procore and the code is spent: nothing below may lose it.
    if flow.grant_saved:
        _say(f"Tokens received and saved to {store.address.describe()} (profile {flow.profile_name!r}).")
    else:
        _say(f"Tokens received, but not saved yet ({flow.grant_save_error}); trying again at the end.")
    try:
        return _finish(flow, args, ask, store)
    except KeyboardInterrupt:
        if flow.grant_saved:
            _say(f"\ninterrupted: profile {flow.profile_name!r} is saved with its new tokens "
                 f"({'; '.join(flow.missing())}).")
        else:
            _say(f"\ninterrupted: the new tokens Procore issued were not saved ({flow.grant_save_error}), "
                 "and the code is used up: log in again.")
        raise


def _ask_environment(flow: SetupFlow, args: argparse.Namespace, ask: Prompter, interactive: bool) -> None:
    for attempt in range(MAX_TRIES):
        env_id = args.environment
        if not env_id:
            _say("Environments: " + ", ".join(environments.ENVIRONMENTS))
            env_id = ask.ask("Environment", flow.environment, what="environment")
        login_url, api_url = args.login_url, args.api_url
        if env_id == "custom":
            if not login_url:
                login_url = ask.ask("Login base URL", flow.login_url if flow.environment == "custom" else None,
                                    what="login URL")
            if not api_url:
                api_url = ask.ask("API base URL", flow.api_url if flow.environment == "custom" else None,
                                  what="API URL")
        try:
            flow.set_environment(env_id, login_url, api_url)
            break
        except FlowError as exc:
            if not interactive or args.environment or attempt == MAX_TRIES - 1:
                raise
            _say(f"  {exc}")
    _say(f"Using {flow.environment}: login {flow.login_url}, API {flow.api_url}")
    _say("Client credentials and tokens belong to this one environment.")


def _ask_client(flow: SetupFlow, args: argparse.Namespace, ask: Prompter, interactive: bool,
                demo_secret: str | None) -> None:
    for attempt in range(MAX_TRIES):
        client_id = args.client_id or ask.ask("Client ID", flow.client_id or None, what="client id")
        secret = demo_secret or os.environ.get("PROCORE_CLIENT_SECRET")
        if not secret:
            keep = " (Enter keeps the stored one)" if flow.has_secret else ""
            secret = ask.ask_secret(f"Client secret{keep}", what="client secret")
        try:
            flow.set_client(client_id, secret or None, args.redirect_uri)
            break
        except FlowError as exc:
            if not interactive or attempt == MAX_TRIES - 1:
                raise
            _say(f"  {exc}")


def _authorize_and_exchange(flow: SetupFlow, args: argparse.Namespace, ask: Prompter, interactive: bool,
                            *, demo: bool = False) -> None:
    code_arg = args.code
    for attempt in range(MAX_TRIES):
        url = flow.start_authorization()
        if not code_arg:
            _say("")
            _say("Open this URL in a browser, log in to Procore and allow access:")
            _say("")
            print(url, flush=True)  # on stdout, unwrapped, so it can be copied or piped
            _say("")
            _say("Procore then shows a code (valid 10 minutes). Paste the code, or the page's whole address.")
            if demo:
                import shlex

                # the fake login page redirects to .../oauth/authorize/<CODE>, an address --code takes
                _say("Demo: no browser needed. In another terminal this prints the address to paste:")
                _say(f"  curl -s -o /dev/null -w '%{{redirect_url}}\\n' {shlex.quote(url)}")
        pasted = code_arg or ask.ask("Code", what="authorization code")
        try:
            flow.exchange(pasted)
            break
        except (FlowError, ProcoreSetupError) as exc:
            step = step_for_error(exc)
            retry = interactive and not code_arg and attempt < MAX_TRIES - 1 and step in (CODE, AUTHORIZE, None)
            if not retry:
                raise
            _say(f"  {exc}")


def _finish(flow: SetupFlow, args: argparse.Namespace, ask: Prompter, store: Store) -> int:
    """Verify, choose the company and finish the saved profile; a failure says what is missing."""
    problem: ProcoreSetupError | None = None
    if not args.no_verify:
        try:
            flow.verify()
        except ProcoreSetupError as exc:
            problem = exc
        else:
            user = flow.user
            _say(f"Logged in as {user.get('name')} <{user.get('login')}> (user id {user.get('id')}).")
    try:
        _choose_company(flow, args, ask, verified=problem is None and not args.no_verify)
    except ProcoreSetupError as exc:  # an explicit --company-id that is not one of the user's
        problem = problem or exc
        flow.choose_company(None)
    prof = flow.save()
    code = _problem_said(flow, problem, "the login", "its new tokens")
    print(f"Saved profile {prof.name!r} to {store.address.describe()} ({access_note(store.address)}).")
    left = prof.seconds_left()
    if left is not None:
        print(f"The access token is valid for {int(left // 60)} min; `{token_command(store, prof.name)}` renews it as needed.")
    print("Keep it fresh from cron with:")
    print(f"  {cron_line(store, prof.name)}")
    note = store.address.password_note()
    if note:
        print(note)
    _use_it(store, prof)
    return code


def _problem_said(flow: SetupFlow, problem: ProcoreSetupError | None, what: str, holds: str) -> int:
    """Say what a failed step after the token arrived left missing; the exit code it means.

    The profile works either way. Network trouble while verifying is only a warning (exit 0):
    a script that retried the whole login would need a new code. A refusal is not.
    """
    if problem is None:
        return EXIT_OK
    temporary = isinstance(problem, TemporaryFailure)
    _say(f"procore-setup: {f'warning: could not verify {what}: ' if temporary else ''}{problem}")
    _say(f"The profile is saved with {holds}; it has {' and '.join(flow.missing()) or 'all it needs'}.")
    return EXIT_OK if temporary else problem.exit_code


def _use_it(store: Store, prof: Any) -> None:
    curl, _python = usage_examples(store, prof.name, prof.company_id, prof.api_url)
    print("Use it:")
    print("  " + curl.replace("\n", "\n  "))


def _choose_company(flow: SetupFlow, args: argparse.Namespace, ask: Prompter, *, verified: bool) -> None:
    companies = flow.companies
    if args.company_id is not None:
        flow.choose_company(args.company_id)
        if not companies:
            why = (flow.companies_error or "Procore listed none") if verified else "the login was not verified"
            _say(f"Default company: {args.company_id} (not checked: {why}).")
        return
    if not verified:
        return
    if not companies:
        why = f" ({flow.companies_error})" if flow.companies_error else ""
        _say(f"No companies are visible to this user{why}; no default company is saved.")
        return
    if len(companies) == 1:
        flow.choose_company(int(companies[0]["id"]))
        _say(f"Default company: {companies[0].get('name')} ({companies[0]['id']}).")
        return
    _say("Companies this user can reach:")
    current = None
    for i, c in enumerate(companies, 1):
        _say(f"  {i}. {c.get('name')} (id {c['id']})")
        if flow.company_id is not None and int(c["id"]) == flow.company_id:
            current = str(i)
    keep = "keep the current one" if current else "none"
    for attempt in range(MAX_TRIES):
        answer = ask.ask_optional(f"Default company number (Enter for {keep})", current, what="company number")
        if answer is None:  # input ended: an optional answer takes its default, the login is not lost
            flow.choose_company(flow.company_id if current else None)
            chosen = f"company {flow.company_id}" if flow.company_id else "no default company"
            _say(f"\nInput ended before the company number: saving with {chosen} "
                 "(give --company-id ID to choose one).")
            return
        if not answer:
            flow.choose_company(None)
            return
        if answer.isdigit() and 1 <= int(answer) <= len(companies):
            flow.choose_company(int(companies[int(answer) - 1]["id"]))
            return
        if not ask.interactive or attempt == MAX_TRIES - 1:
            raise UsageError(f"{answer[:20]!r} is not a company number from 1 to {len(companies)}.")
        _say(f"  Give a number from 1 to {len(companies)}, or press Enter for none.")


# -- a service account: client credentials, no browser, no code ------------------------------

def _run_service_account(args: argparse.Namespace, store: Store, interactive: bool, unlock: settings.Unlock, *,
                         demo_secret: str | None = None) -> int:
    """`login --plain --service-account`: request a token with the client credentials, save it
    at once, verify it, choose the company, save. Again on the same profile: the secret is
    replaced (rotated) and every other setting kept."""
    from .profile import SERVICE_ACCOUNT

    if args.code or args.redirect_uri:
        raise UsageError("--code and --redirect-uri go with a person's login, not --service-account.",
                         hint="A service account signs in with its client id and secret only.")
    ask, flow, existing = _start(args, store, interactive, unlock)
    if existing is not None and existing.kind != SERVICE_ACCOUNT:
        _say("It is a person's login now; it becomes a service account.")
    if args.company_id is not None:
        flow.company_id = args.company_id  # known before verifying: sent as Procore-Company-Id
    _ask_environment(flow, args, ask, interactive)
    _ask_client(flow, args, ask, interactive, demo_secret)
    flow.request_token()
    if flow.grant_saved:
        _say(f"Token received and saved to {store.address.describe()} (profile {flow.profile_name!r}).")
    else:
        _say(f"Token received, but not saved yet ({flow.grant_save_error}); trying again at the end.")
    return _finish_service_account(flow, args, ask, store)


def _finish_service_account(flow: SetupFlow, args: argparse.Namespace, ask: Prompter, store: Store) -> int:
    problem: ProcoreSetupError | None = None
    if not args.no_verify:
        try:
            flow.verify_service_account()
            if not flow.companies and flow.company_id is None:
                company = _ask_company_id(flow, ask)
                if company is not None:  # verify again, now with the header
                    flow.company_id = company
                    flow.verify_service_account()
        except ProcoreSetupError as exc:
            problem = exc
    if problem is None and not args.no_verify:
        left = flow.token_info.get("expires_in_seconds")
        _say(f"Token checked with Procore's token info ({left} s left)." if left is not None
             else "Token checked with Procore's token info.")
        if flow.user:
            _say(f"The token is the service account {flow.user.get('name')} <{flow.user.get('login')}> "
                 f"(user id {flow.user.get('id')}).")
        elif flow.user_error:
            _say(f"Who the token is could not be read: {flow.user_error}")
        try:
            _choose_service_account_company(flow, args, ask)
        except ProcoreSetupError as exc:  # an explicit --company-id the app is not installed in
            problem = exc
            flow.choose_company(None)
    prof = flow.save()
    code = _problem_said(flow, problem, "the token", "its token")
    print(f"Saved service account profile {prof.name!r} to {store.address.describe()} ({access_note(store.address)}).")
    left = prof.seconds_left()
    if left is not None:
        print(f"The access token is valid for {int(left // 60)} min; `{token_command(store, prof.name)}` requests a new one "
              "as needed (no refresh token, no cron job needed).")
    _use_it(store, prof)
    return code


def _ask_company_id(flow: SetupFlow, ask: Prompter) -> int | None:
    """The companies could not be listed without a company (Multiple Procore Zones): ask for the
    id on a terminal; without one, say that the profile has none."""
    why = flow.companies_error or "Procore listed none"
    if not ask.interactive:
        _say(f"The companies could not be listed ({why}); no default company is saved "
             "(give --company-id ID to choose one).")
        return None
    _say(f"The companies the app is installed in could not be listed ({why}).")
    _say("The company id is in the address bar of Procore after logging in: "
         "https://app.procore.com/<COMPANY ID>/company/home/list")
    for attempt in range(MAX_TRIES):
        answer = ask.ask_optional("Company id (Enter for none)", what="company id")
        if not answer:
            _say("No default company is saved.")
            return None
        if answer.isdigit() and len(answer) < 20 and int(answer) > 0:
            return int(answer)
        _say("  A company id is a number, e.g. 8675309.")
    raise UsageError("No usable company id was given.", hint="Give --company-id ID.")


def _choose_service_account_company(flow: SetupFlow, args: argparse.Namespace, ask: Prompter) -> None:
    if flow.companies:
        if args.company_id is not None:
            try:
                flow.choose_company(args.company_id)
            except FlowError:
                raise UsageError(f"Company {args.company_id} is not one the app is installed in.",
                                 hint="Give one of: " + ", ".join(str(c["id"]) for c in flow.companies)) from None
            _say(f"Default company: {flow.company_name()} ({flow.company_id}).")
            return
        _choose_company(flow, args, ask, verified=True)
        return
    if flow.company_id is not None:
        _say(f"Default company: {flow.company_id} (not checked: {flow.companies_error or 'Procore listed none'}).")
