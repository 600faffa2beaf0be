"""The setup conversation as plain state and steps, shared by `login --plain` and the wizard.

No UI here: front-ends ask the questions, call these methods, and show the
messages of the exceptions they raise. Each `FlowError` names the step a
front-end should go back to.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qs, urlsplit

from . import environments
from .hints import executable, program, reauth_command, shell_quote
from .profile import SERVICE_ACCOUNT, USER, Credentials, Profile
from .settings import UNATTENDED, Unlock

if TYPE_CHECKING:
    from .stores.base import Store
from .checks import shown
from .environments import OOB_REDIRECT_URI
from .errors import (
    FlowError,
    GrantNotSaved,
    InvalidClient,
    InvalidToken,
    LoginRefused,
    InvalidValue,
    LoginIncomplete,
    ProcoreSetupError,
    ReauthRequired,
)

# Steps, in order. Front-ends map them to prompts or screens.
ENVIRONMENT = "environment"
CLIENT = "client"
AUTHORIZE = "authorize"
CODE = "code"
VERIFY = "verify"
SAVED = "saved"

CODE_LIFETIME = 600  # Procore's authorization codes die 10 minutes after they are issued
MAX_CODE_CHARS = 512
_CODE_RE = re.compile(r"^[A-Za-z0-9._~-]+$")
_PROFILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEVELOPER_PORTAL_HELP = (
    "Find them in Procore's Developer Portal (developers.procore.com): My Apps -> your app -> "
    "OAuth Credentials. Production and sandbox have different credentials."
)


# -- validation (pure functions, used by both front-ends) ----------------------------------

def validate_profile_name(name: str) -> str:
    name = name.strip()
    if not _PROFILE_RE.match(name):
        raise FlowError(
            f"Profile name {shown(name, 70)!r} is not usable.", step=ENVIRONMENT, field="profile_name",
            hint="Use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
        )
    return name


def validate_base_url(url: str, what: str, field: str | None = None) -> str:
    """A login or API base URL: https, or http to a loopback host only. Returns it without a trailing '/'."""
    from .checks import check_base_url

    try:
        return check_base_url(url, what)
    except InvalidValue as exc:  # the same rule as for a URL read back from the file
        raise FlowError(exc.message, step=ENVIRONMENT, hint=exc.hint, field=field) from None


def _clean_credential(value: str, what: str) -> str:
    field = what.replace(" ", "_")  # "client id" -> client_id
    value = (value or "").strip()
    if not value:
        raise FlowError(f"The {what} is empty.", step=CLIENT, hint=DEVELOPER_PORTAL_HELP, field=field)
    if any(c.isspace() for c in value):
        raise FlowError(
            f"The {what} contains spaces or line breaks: it was probably pasted with something else.",
            step=CLIENT, hint="Copy it again from the Developer Portal.", field=field,
        )
    if not value.isprintable() or len(value) > 512:
        raise FlowError(f"The {what} does not look like a Procore credential.", step=CLIENT,
                        hint=DEVELOPER_PORTAL_HELP, field=field)
    return value


def validate_client(client_id: str, client_secret: str, known_secret: str | None = None) -> tuple[str, str]:
    """Clean and check a client id and secret; catches a secret pasted into the id field."""
    client_id = _clean_credential(client_id, "client id")
    client_secret = _clean_credential(client_secret, "client secret")
    if client_id == client_secret or (known_secret and client_id == known_secret):
        raise FlowError(
            "The client id is the same as the client secret: the secret was probably pasted into the id field.",
            step=CLIENT, hint="Paste the Client ID into the id field and the Client Secret into the secret field.",
            field="client_id",
        )
    return client_id, client_secret


def validate_redirect_uri(uri: str) -> str:
    uri = (uri or "").strip() or OOB_REDIRECT_URI
    if uri == OOB_REDIRECT_URI:
        return uri
    try:
        parts = urlsplit(uri)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. http://[::1 (an unclosed IPv6 address)
        usable = False
    if not usable:
        raise FlowError(
            f"The redirect URI {shown(uri, 100)!r} is neither {OOB_REDIRECT_URI} nor an http(s) URL.",
            step=CLIENT, hint=f"Leave it empty to use {OOB_REDIRECT_URI}, which shows the code on a page.",
            field="redirect_uri",
        )
    return uri


def parse_code(text: str, client_secret: str | None = None) -> str:
    """The authorization code from what a person pasted: a bare code or a URL that holds it."""
    raw = (text or "").strip()
    if not raw:
        raise FlowError("No code was pasted.", step=CODE, hint="Paste the code shown by Procore after you log in.")
    if len(raw) > 4096:
        raise FlowError(
            f"That is {len(raw)} characters: far too long to be an authorization code.",
            step=CODE, hint="Paste only the code, or the address of the page that shows it.",
        )
    compact = "".join(raw.split())  # codes wrap in terminals: drop spaces and line breaks
    code = compact
    if "://" in compact or compact.startswith(("urn:", "/")) or "?" in compact:
        parts = urlsplit(compact)
        query = parse_qs(parts.query)
        if "error" in query:  # the person denied access (or Procore refused): a new authorization is needed
            raise LoginRefused(
                f"Procore answered with an error instead of a code: {shown(query['error'][0], 80)}.",
                step=AUTHORIZE, hint="Open the authorize URL again and allow access.",
            )
        if query.get("code"):
            code = query["code"][0]
        else:
            m = re.search(r"/oauth/authorize/([^/?#]+)/?$", parts.path)
            if not m or m.group(1) == "native":
                raise FlowError(
                    "That address holds no authorization code.",
                    step=CODE, hint="Paste the code itself, or the address ending in /oauth/authorize/<CODE>.",
                )
            code = m.group(1)
    if client_secret and code == client_secret:
        raise FlowError(
            "That is the client secret, not the authorization code.",
            step=CODE, hint="Paste the code Procore shows after you log in.",
        )
    if len(code) > MAX_CODE_CHARS or not _CODE_RE.match(code):
        raise FlowError(
            "That does not look like an authorization code (letters, digits, '-', '_', '.', '~' only).",
            step=CODE, hint="Paste the code exactly as Procore shows it.",
        )
    return code


def step_for_error(exc: BaseException) -> str | None:
    """Where a front-end should go after a failed exchange or verification (None: retry in place)."""
    if isinstance(exc, FlowError):
        return exc.step
    if isinstance(exc, InvalidClient):
        return CLIENT
    if isinstance(exc, ReauthRequired):
        return AUTHORIZE
    return None  # network trouble and the rest: retry in place


class SetupFlow:
    """State of one setup (or re-authorization) of one profile, and its steps."""

    def __init__(self, store: Store, profile: str = "default", *, clock: Callable[[], float] = time.time,
                 client_factory: Callable[..., Any] | None = None, unlock: Unlock = UNATTENDED,
                 http_timeout: float | None = None) -> None:
        self.store = store
        self.profile_name = validate_profile_name(profile)
        self.clock = clock
        self.client_factory = client_factory
        self.unlock = unlock  # this run's passphrase sources, for an encrypted store
        self.http_timeout = http_timeout
        self.environment = "production"
        self.login_url = environments.get("production").login_url
        self.api_url = environments.get("production").api_url
        self.client_id = ""
        self._client_secret = ""
        self.redirect_uri = OOB_REDIRECT_URI
        self.authorize_started: float | None = None
        self.tokens: Any = None
        self.token_info: dict[str, Any] = {}
        self.user: dict[str, Any] = {}
        self.companies: list[dict[str, Any]] = []
        self.company_id: int | None = None
        self.make_default = False
        self.saved_profile: Profile | None = None
        self.existing: Profile | None = None
        # The grant is written to the store the moment it arrives (a code is single-use: a crash,
        # a dropped SSH session or a quit after the exchange must not throw the tokens away).
        self.grant_saved = False
        self.grant_save_error: str | None = None  # why the early save failed (the tokens are in memory)
        self.companies_error: str | None = None  # why the list of companies could not be read
        # USER (a person's login: authorize, code) or SERVICE_ACCOUNT (client credentials, no browser).
        self.kind = USER
        self.user_error: str | None = None  # a service account: why /me could not be read

    def __repr__(self) -> str:
        return f"SetupFlow(profile={self.profile_name!r}, environment={self.environment!r}, client_id={self.client_id!r})"

    @property
    def has_secret(self) -> bool:
        return bool(self._client_secret)

    # -- step 0: what is there already --------------------------------------------------
    def load_existing(self) -> Profile | None:
        """Prefill from the stored profile of that name (reconfigure / re-authorize)."""
        doc = self.store.load_or_new()
        if doc.encrypted:
            from .passphrase import open_secrets

            open_secrets(doc, self.unlock)
        prof = doc.profiles.get(self.profile_name)
        if prof is not None and doc.seal_problem(prof.name) is not None:
            # Changed by someone without the passphrase (its seal does not hold): nothing of it is
            # offered again, or its URLs would take the stored client secret and the new code to
            # their host. It is set up afresh, and the new profile replaces it.
            prof = None
        self.existing = prof
        if prof is not None:
            self.environment = prof.environment
            self.login_url, self.api_url = prof.login_url, prof.api_url
            self.client_id = prof.client_id or ""
            self._client_secret = prof.client_secret or ""
            self.redirect_uri = prof.redirect_uri or OOB_REDIRECT_URI
            self.company_id = prof.company_id
            self.kind = prof.kind
        return prof

    # -- step 1: environment --------------------------------------------------------------
    def set_environment(self, env_id: str, login_url: str | None = None, api_url: str | None = None) -> None:
        env_id = (env_id or "").strip()
        if env_id not in environments.ENVIRONMENTS:
            raise FlowError(
                f"Unknown environment {env_id[:40]!r}.",
                step=ENVIRONMENT, hint="Choose one of: " + ", ".join(environments.ENVIRONMENTS),
            )
        if env_id == "custom":
            self.login_url = validate_base_url(login_url or "", "login URL", "login_url")
            self.api_url = validate_base_url(api_url or "", "API URL", "api_url")
        else:
            env = environments.get(env_id)
            if login_url or api_url:
                raise FlowError(
                    f"--login-url and --api-url go with the custom environment, not {env_id}.",
                    step=ENVIRONMENT, hint="Use --environment custom with both URLs.",
                )
            self.login_url, self.api_url = env.login_url, env.api_url
        self.environment = env_id

    # -- step 2: client credentials ------------------------------------------------------------
    def set_client(self, client_id: str, client_secret: str | None, redirect_uri: str | None = None) -> None:
        """Set the client. A None or empty secret keeps the stored one (reconfigure without retyping)."""
        secret = client_secret if client_secret else self._client_secret
        known = self.existing.client_secret if self.existing is not None else None
        self.client_id, self._client_secret = validate_client(client_id, secret, known)
        self.redirect_uri = validate_redirect_uri(redirect_uri or self.redirect_uri)

    # -- step 3: authorize -------------------------------------------------------------------
    def authorize_url(self) -> str:
        from .oauth import authorize_url

        return authorize_url(self.login_url, self.client_id, self.redirect_uri)

    def start_authorization(self) -> str:
        """The URL to open; starts the 10-minute code clock."""
        self.authorize_started = self.clock()
        return self.authorize_url()

    def seconds_left(self) -> float | None:
        """Seconds until a code got now would have expired (None before authorization started)."""
        if self.authorize_started is None:
            return None
        return CODE_LIFETIME - (self.clock() - self.authorize_started)

    # -- step 4: the code ----------------------------------------------------------------------
    def _client(self) -> Any:
        if self.client_factory is not None:
            return self.client_factory(self)
        from .oauth import OAuthClient

        return OAuthClient(self.login_url, self.api_url, self.client_id, self._client_secret, self.redirect_uri,
                           timeout=self.http_timeout)

    def exchange(self, pasted: str) -> None:
        """Parse the pasted code, trade it for tokens and save them at once (blocking: run it in a
        worker in a UI). If that first save fails, the tokens stay in memory (`grant_saved` is
        False, `grant_save_error` says why) and `save` writes them with everything else."""
        code = parse_code(pasted, self._client_secret)
        self.kind = USER  # a code is a person's login, whatever the profile was before
        left = self.seconds_left()
        # The code is single-use: a store that would refuse the tokens must say so before it is sent.
        self.store.check_writable()
        with self._client() as client:
            try:
                tokens = client.exchange_code(code)
            except ReauthRequired as exc:
                if isinstance(exc, InvalidClient):
                    raise LoginRefused(
                        "Procore refused the client id or secret (invalid_client).",
                        step=CLIENT, hint="Check both in the Developer Portal, for this environment: " + self.environment,
                        field="client_secret",
                    ) from None
                expired = " It is more than 10 minutes old, so it has expired." if left is not None and left <= 0 else ""
                raise LoginRefused(
                    "Procore refused the code: it was already used, has expired, or belongs to another "
                    f"client or redirect URI.{expired}",
                    step=AUTHORIZE, hint="Open the authorize URL again to get a new code.",
                ) from None
        self._keep(tokens)

    def _keep(self, tokens: Any) -> None:
        """Hold the tokens Procore just issued and save them at once; if that fails they stay in
        memory (`grant_saved` False, `grant_save_error` why) and `save` writes them with the rest."""
        self.tokens = tokens
        self.grant_saved = False
        self.user, self.token_info, self.companies = {}, {}, []
        try:
            self._write(tokens=True)
        except ProcoreSetupError as exc:
            self.grant_save_error = exc.message
        except Exception as exc:  # noqa: BLE001 - a bug must not lose the grant either: save() tries again
            self.grant_save_error = f"unexpected {type(exc).__name__}"
        else:
            self.grant_saved, self.grant_save_error = True, None

    # -- a service account: steps 3 and 4 are one request ---------------------------------------
    def request_token(self) -> None:
        """A service account's first token (the client-credentials grant), saved at once like a
        person's grant (blocking: run it in a worker in a UI)."""
        self.kind = SERVICE_ACCOUNT
        with self._client() as client:
            try:
                tokens = client.client_credentials()
            except ReauthRequired:
                raise LoginRefused(
                    "Procore refused the client id or secret (invalid_client): they are wrong, the secret was "
                    "rotated, or the app is not installed in any company.",
                    step=CLIENT, hint="Check both on the app's Manage App page (OAuth Credentials), for this "
                    "environment: " + self.environment, field="client_secret",
                ) from None
        self._keep(tokens)

    def verify_service_account(self) -> None:
        """Token info, then who the token is (/me) and the companies the app is installed in,
        sending Procore-Company-Id when a company is known: in Multiple Procore Zones a service
        account's token needs it even there. Without one those two may be refused; that is not
        fatal (`user_error`, `companies_error` say why), the company can be given by hand."""
        if self.tokens is None:
            raise FlowError("No token yet: request one first.", step=CLIENT)
        access = self.tokens.access_token
        with self._client() as client:
            try:
                self.token_info = client.token_info(access)
            except InvalidToken:
                raise ReauthRequired(
                    "Procore refused the access token it had just issued (revoked meanwhile, or already expired).",
                    hint="Run the same login again.",
                ) from None
            try:
                self.user = client.me(access, company_id=self.company_id)
                self.user_error = None
            except ProcoreSetupError as exc:
                self.user, self.user_error = {}, exc.message
            try:
                self.companies = client.companies(access, company_id=self.company_id)
                self.companies_error = None
            except ProcoreSetupError as exc:
                self.companies, self.companies_error = [], exc.message
        if self.company_id is None and len(self.companies) == 1:
            self.company_id = int(self.companies[0]["id"])

    # -- step 5: verify -------------------------------------------------------------------------
    def verify(self) -> None:
        """Ask Procore who is logged in and which companies they reach."""
        if self.tokens is None:
            raise FlowError("No token yet: exchange a code first.", step=CODE)
        access = self.tokens.access_token
        with self._client() as client:
            try:
                self.token_info = client.token_info(access)
                self.user = client.me(access)
            except InvalidToken:
                # A token Procore has just issued and already refuses (revoked meanwhile, or a life
                # shorter than this check took): not a bug (exit 1); a new authorization is needed.
                raise ReauthRequired(
                    "Procore refused the access token it had just issued, while checking who is logged in "
                    "(it was revoked, or has already expired).",
                    hint="Log in again: open the authorize URL for a new code.",
                ) from None
            try:
                self.companies = client.companies(access)
                self.companies_error = None
            except ProcoreSetupError as exc:
                self.companies = []  # not fatal: the person can still save without a default company
                self.companies_error = exc.message
        if self.company_id is None and len(self.companies) == 1:
            self.company_id = int(self.companies[0]["id"])

    def choose_company(self, company_id: int | None) -> None:
        if company_id is not None and self.companies and company_id not in {int(c["id"]) for c in self.companies}:
            raise FlowError(f"Company {company_id} is not one of this user's companies.", step=VERIFY)
        self.company_id = company_id

    def company_name(self) -> str | None:
        for c in self.companies:
            if int(c["id"]) == self.company_id:
                return str(c.get("name") or "")
        return None

    # -- step 6: save ----------------------------------------------------------------------------
    def save(self) -> Profile:
        """Finish: record who logged in, the company and the default profile, under the lock.

        The tokens were saved when they arrived; they are written again only if that early save
        failed, so a refresh that another process made meanwhile is never rolled back.
        """
        if self.tokens is None:
            raise FlowError("No token yet: exchange a code first.", step=CODE)
        try:
            return self._write(tokens=not self.grant_saved, finish=True)
        except ProcoreSetupError as exc:
            # what went wrong, in the words of the error that says it, then what it means here
            if not self.grant_saved:
                raise exc.as_a(
                    GrantNotSaved,
                    note=f"Procore issued new tokens for profile {self.profile_name!r}, but they could not be "
                    f"saved to {self.store.address.describe()}: the authorization code is used up.",
                    hint="Fix that, then log in again: " + reauth_command(self.store, self.profile_name),
                ) from None
            raise LoginIncomplete.after(
                exc, f"The profile {self.profile_name!r} is saved with its new tokens; only the user and "
                "company details could not be recorded.",
            ) from None

    def _write(self, *, tokens: bool, finish: bool = False) -> Profile:
        from .refresh import apply_tokens
        from .transaction import transaction

        with transaction(self.store, create=True, unlock=self.unlock) as doc:
            prof = doc.profiles.get(self.profile_name)
            if prof is None:  # a new profile (or one removed meanwhile): everything goes in
                prof, tokens = doc.add(Profile(self.profile_name)), True
            prof.set(
                environment=self.environment, login_url=self.login_url, api_url=self.api_url,
                client_id=self.client_id, client_secret=self._client_secret, redirect_uri=self.redirect_uri,
                kind=SERVICE_ACCOUNT if self.kind == SERVICE_ACCOUNT else None,  # absent: a person's login
            )
            if tokens:
                apply_tokens(prof, self.tokens, refreshed=False)
                # A fresh grant on the copy an unfinished `store move` left makes it this store's own,
                # live profile: not a copy that finishing the move may replace (or unmark) any more.
                prof.set(moving_from=None)
                if not self.user:  # who logged in is not known until verified: no stale name
                    prof.set(user_id=None, user_login=None, user_name=None)
            if self.user:
                prof.set(user_id=_int_or_none(self.user.get("id")), user_login=_str_or_none(self.user.get("login")),
                         user_name=_str_or_none(self.user.get("name")))
            if finish:
                name = self.company_name()
                if name is None and self.company_id is not None and prof.company_id == self.company_id:
                    name = prof.company_name  # the list could not be read: keep the name we had
                prof.set(company_id=self.company_id, company_name=name if self.company_id else None)
            if self.make_default and finish:
                doc.default_profile = self.profile_name
            elif not doc.raw.get("default_profile") and (len(doc.profiles) == 1 or self.profile_name == "default"):
                doc.default_profile = self.profile_name
            saved = Profile(prof.name, dict(prof.data))
        self.saved_profile = saved
        if tokens:
            self.grant_saved, self.grant_save_error = True, None
        return saved

    def missing(self) -> list[str]:
        """What the saved profile lacks after a login that did not finish every step."""
        out = []
        if not self.user:
            out.append("no verified user")
        if self.company_id is None:
            out.append("no default company")
        return out


# -- the profiles of a file, for front-ends that list and manage them ------------------------

def read_profiles(store: Store) -> Credentials:
    """The file as stored, secrets left as they are (never decrypted); an empty document when there is no file."""
    return store.load_or_new()


def set_default_profile(store: Store, name: str) -> None:
    """Make `name` the file's default profile (NotConfigured if it is not in the file)."""
    from .transaction import transaction

    with transaction(store, secrets=False) as doc:
        doc.default_profile = doc.get(name, check=False).name


def remove_profile(store: Store, name: str) -> None:
    """Forget a profile and its tokens (they are not revoked at Procore: `procore-setup revoke` does that)."""
    from .transaction import transaction

    with transaction(store, secrets=False) as doc:
        doc.remove(doc.get(name, check=False).name)


def _int_or_none(v: Any) -> int | None:
    try:
        return int(v) if v is not None and not isinstance(v, bool) else None
    except (TypeError, ValueError):
        return None


def _str_or_none(v: Any) -> str | None:
    return str(v) if v is not None else None


def cron_line(store: Store, profile: str, *, every_minutes: int = 20) -> str:
    """A crontab line that keeps this profile's tokens fresh (naming the store: cron's HOME differs)."""
    # crontab turns an unescaped % into a line break: escape it after the shell quoting
    line = f"{executable()}{store.address.cli_flag(explicit=True)} refresh --profile {shell_quote(profile)} --quiet"
    return f"*/{every_minutes} * * * * " + line.replace("%", "\\%")


def usage_examples(store: Store, profile: str, company_id: int | None, api_url: str) -> tuple[str, str]:
    """Two short examples of using the token: curl and Python, each working as printed (the URL
    quoted: zsh globs an unquoted `?`)."""
    company = str(company_id) if company_id else "COMPANY_ID"
    key, value = store.address.locator()
    tok = f"$({program()}{store.address.cli_flag(explicit=True)} token --profile {shell_quote(profile)})"
    curl = (f'curl -H "Authorization: Bearer {tok}" \\\n     -H "Procore-Company-Id: {company}" '
            f"{shell_quote(f'{api_url}/rest/v1.0/projects?company_id={company}')}")
    python = (
        "import httpx\n"
        "from procore_setup import ProcoreAuth\n"
        f"auth = ProcoreAuth(profile={profile!r}, {key}={value!r})\n"
        f"with auth, httpx.Client(base_url={api_url!r}, auth=auth) as api:  # closes both\n"
        '    print(api.get("/rest/v1.0/me").json())'
    )
    return curl, python


__all__ = [
    "SetupFlow", "FlowError", "parse_code", "validate_base_url", "validate_client", "validate_redirect_uri",
    "validate_profile_name", "step_for_error", "cron_line", "usage_examples", "executable",
    "read_profiles", "set_default_profile", "remove_profile", "program",
    "ENVIRONMENT", "CLIENT", "AUTHORIZE", "CODE", "VERIFY", "SAVED",
]
