"""The fake Procore's endpoints: a request in, the answer Procore would give out.

Doorkeeper's login server (`/oauth/authorize`, `/oauth/token`, `/oauth/token/info`,
`/oauth/revoke`, with its exact error bodies and statuses) and a few REST API endpoints
(`/rest/v1.0/me`, `/companies`, `/projects`, `/rest/v2.0/companies/{id}/projects`) with the
`X-Rate-Limit-*` headers of Procore's fixed window. What is issued, used and counted lives in
`state.py`; faults (`faults.py`) are applied around these answers by `server.py`.
"""

from __future__ import annotations

import html
import math
from typing import Any, Callable, Mapping
from urllib.parse import urlencode, urlsplit

from .messages import Request, Response
from .state import OOB_REDIRECT_URI, SERVICE_ACCOUNT_USER, FakeState, TokenPair

__all__ = [
    "INVALID_CLIENT",
    "INVALID_GRANT",
    "INVALID_TOKEN",
    "UNAUTHORIZED_REVOKE",
    "UNSUPPORTED_GRANT_TYPE",
    "WWW_AUTHENTICATE_INVALID_CLIENT",
    "WWW_AUTHENTICATE_INVALID_TOKEN",
    "ProcoreRoutes",
]

# Doorkeeper's error bodies, verbatim.
INVALID_GRANT: dict[str, str] = {
    "error": "invalid_grant",
    "error_description": (
        "The provided authorization grant is invalid, expired, revoked, does not match "
        "the redirection URI used in the authorization request, or was issued to another client."
    ),
}
INVALID_CLIENT: dict[str, str] = {
    "error": "invalid_client",
    "error_description": (
        "Client authentication failed due to unknown client, no client authentication "
        "included, or unsupported authentication method."
    ),
}
INVALID_TOKEN: dict[str, str] = {
    "error": "invalid_token",
    "error_description": "The access token is invalid",
    "state": "unauthorized",
}
UNSUPPORTED_GRANT_TYPE: dict[str, str] = {
    "error": "unsupported_grant_type",
    "error_description": "The authorization grant type is not supported by the authorization server.",
}
UNAUTHORIZED_REVOKE: dict[str, str] = {
    "error": "unauthorized_client",
    "error_description": "You are not authorized to revoke this token",
}
WWW_AUTHENTICATE_INVALID_TOKEN = (
    'Bearer realm="Doorkeeper", error="invalid_token", error_description="The access token is invalid"'
)
WWW_AUTHENTICATE_INVALID_CLIENT = (
    'Bearer realm="Doorkeeper", error="invalid_client", '
    f'error_description="{INVALID_CLIENT["error_description"]}"'
)


class ProcoreRoutes:
    """Answers requests from a FakeState. `base_url` is the fallback for a request without a
    Host header (in Link headers)."""

    def __init__(self, state: FakeState, base_url: Callable[[], str]) -> None:
        self.state = state
        self.base_url = base_url

    def route(self, req: Request) -> Response:
        """The answer to a (non-admin) request; counts it under its endpoint."""
        s = self.state
        path = req.path.rstrip("/") or "/"
        m = req.method
        if path == "/oauth/authorize" and m == "GET":
            s.count("authorize")
            return self._authorize(req)
        if path.startswith("/oauth/authorize/") and m == "GET":
            s.count("authorize_page")
            code = path[len("/oauth/authorize/") :]
            if code == "native":
                code = req.query_params().get("code", "")
            return self._code_page(code)
        if path == "/oauth/token" and m == "POST":
            return self._token(req)
        if path == "/oauth/token/info" and m == "GET":
            s.count("token_info")
            return self._token_info(req)
        if path == "/oauth/revoke" and m == "POST":
            s.count("revoke")
            return self._revoke(req)
        if path == "/rest/v1.0/me" and m == "GET":
            s.count("me")
            return self._me(req)
        if path == "/rest/v1.0/companies" and m == "GET":
            s.count("companies")
            return self._companies(req)
        if path == "/rest/v1.0/projects" and m == "GET":
            s.count("projects")
            return self._projects(req)
        if path == "/rest/v1.0/projects" and m == "POST":
            return self._create_project(req)
        if path.startswith("/rest/v2.0/companies/") and path.endswith("/projects") and m == "GET":
            s.count("v2_projects")
            return self._v2_projects(req, path[len("/rest/v2.0/companies/"):-len("/projects")])
        s.count("not_found")
        return Response.json(404, {"error": "not found"})

    # the REST API's rate limit ---------------------------------------------------

    def rate_check(self) -> Response | None:
        """Count a /rest/ request in its window; the 429 answer when the window's limit is used up."""
        s = self.state
        reset = s.take_rate_slot()
        if reset is None:
            return None
        return Response.json(429, {"error": "Too Many Requests",
                                   "error_description": "Rate limit exceeded: wait until X-Rate-Limit-Reset."},
                             [("X-Rate-Limit-Limit", str(s.rate_limit)), ("X-Rate-Limit-Remaining", "0"),
                              ("X-Rate-Limit-Reset", str(reset)),
                              ("Retry-After", str(max(int(math.ceil(reset - s.clock())), 1)))])

    def with_rate_headers(self, resp: Response, api: bool) -> Response:
        """The answer with the window's X-Rate-Limit-* headers, for a /rest/ answer that has none."""
        if not api or resp.drop or any(k.lower() == "x-rate-limit-remaining" for k, _ in resp.headers):
            return resp
        remaining, reset = self.state.rate_state()
        resp.headers = [*resp.headers, ("X-Rate-Limit-Limit", str(self.state.rate_limit)),
                        ("X-Rate-Limit-Remaining", str(remaining)), ("X-Rate-Limit-Reset", str(reset))]
        return resp

    # authorize -------------------------------------------------------------------

    @staticmethod
    def _redirect_ok(uri: str) -> bool:
        if uri == OOB_REDIRECT_URI:
            return True
        try:
            parts = urlsplit(uri)
        except ValueError:
            return False
        return parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1")

    @staticmethod
    def _error_page(title: str, detail: str) -> Response:
        text = (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Fake Procore (demo) - "
            f"{html.escape(title)}</title></head>\n<body>\n<h1>An error has occurred</h1>\n"
            f"<p>{html.escape(title)}</p>\n<p>{html.escape(detail)}</p>\n</body></html>\n"
        )
        return Response.html(200, text)

    def _authorize(self, req: Request) -> Response:
        q = req.query_params()
        client_id = q.get("client_id", "")
        redirect_uri = q.get("redirect_uri", "")
        if client_id != self.state.client_id:
            return self._error_page(
                "Client authentication failed due to unknown client, no client authentication included, "
                "or unsupported authentication method.",
                f"Unknown client_id: {client_id!r}.",
            )
        if not redirect_uri or not self._redirect_ok(redirect_uri):
            return self._error_page(
                "The requested redirect uri is malformed or doesn't match client redirect URI.",
                f"redirect_uri {redirect_uri!r} is not registered for this application.",
            )
        if q.get("response_type") != "code":
            return self._error_page(
                "The authorization server does not support this response type.",
                f"response_type must be 'code', got {q.get('response_type', '')!r}.",
            )
        code = self.state._new_code(redirect_uri)
        if redirect_uri == OOB_REDIRECT_URI:
            # A plain path: a Location with the urn: scheme breaks HTTP clients.
            return Response(302, b"", [("Location", f"/oauth/authorize/{code}"), ("Cache-Control", "no-store")])
        extra = {"code": code}
        if "state" in q:
            extra["state"] = q["state"]
        sep = "&" if urlsplit(redirect_uri).query else "?"
        return Response(302, b"", [("Location", redirect_uri + sep + urlencode(extra)), ("Cache-Control", "no-store")])

    def _life_text(self) -> str:
        life = self.state.code_life
        if life % 60 == 0:
            minutes = life // 60
            return f"{minutes} minute{'s' if minutes != 1 else ''}"
        return f"{life} seconds"

    def _code_page(self, code: str) -> Response:
        if not self.state.knows_code(code):
            return Response.html(
                404,
                "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Fake Procore (demo) - unknown code"
                "</title></head>\n<body>\n<h1>Fake Procore (demo)</h1>\n<p>Unknown authorization code.</p>\n"
                "</body></html>\n",
            )
        name = html.escape(str(self.state.user.get("name", "")))
        login = html.escape(str(self.state.user.get("login", "")))
        c = html.escape(code)
        life = self._life_text()
        text = (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n"
            "<title>Fake Procore (demo) - Authorization code</title></head>\n<body>\n"
            "<h1>Fake Procore (demo)</h1>\n"
            f"<p>Signed in as {name} ({login})</p>\n"
            f"<p>Authorization code: <code id=\"authorization_code\">{c}</code></p>\n"
            f"<p>Copy this code into procore-setup; it expires in {life}.</p>\n"
            "</body></html>\n"
        )
        return Response.html(200, text, [("Cache-Control", "no-store")])

    # token -----------------------------------------------------------------------

    @staticmethod
    def _client_of(req: Request, params: Mapping[str, str]) -> tuple[str | None, str | None]:
        """The client id and secret of a request: from the form, else from HTTP Basic."""
        cid, secret = params.get("client_id"), params.get("client_secret")
        basic = req.basic()
        if basic is not None and cid is None:
            cid, secret = basic
        return cid, secret

    def _client_ok(self, req: Request, params: Mapping[str, str]) -> bool:
        return self._client_of(req, params) == (self.state.client_id, self.state.client_secret)

    def _service_account_ok(self, req: Request, params: Mapping[str, str]) -> bool:
        s = self.state
        return self._client_of(req, params) == (s.service_account_client_id, s.service_account_client_secret)

    @staticmethod
    def _missing(name: str) -> Response:
        return Response.json(
            400, {"error": "invalid_request", "error_description": f"Missing required parameter: {name}."}
        )

    def _invalid_grant(self) -> Response:
        self.state.count("invalid_grant")
        return Response.json(400, INVALID_GRANT, [("Cache-Control", "no-store")])

    @staticmethod
    def _invalid_client() -> Response:
        return Response.json(401, INVALID_CLIENT, [("WWW-Authenticate", WWW_AUTHENTICATE_INVALID_CLIENT)])

    @staticmethod
    def _token_ok(pair: TokenPair) -> Response:
        return Response.json(200, pair.body(), [("Cache-Control", "no-store"), ("Pragma", "no-cache")])

    def _token(self, req: Request) -> Response:
        s = self.state
        params = req.params()
        grant_type = params.get("grant_type", "")
        if grant_type not in ("authorization_code", "refresh_token", "client_credentials"):
            s.count("token:invalid")
            if not grant_type:
                return self._missing("grant_type")
            return Response.json(400, UNSUPPORTED_GRANT_TYPE)
        s.count(f"token:{grant_type}")
        if grant_type == "client_credentials":
            if not self._service_account_ok(req, params):
                return self._invalid_client()
            return self._token_ok(s.grant_service_account())
        if grant_type == "authorization_code":
            for name in ("code", "redirect_uri"):
                if not params.get(name):
                    return self._missing(name)
            if not self._client_ok(req, params):
                return self._invalid_client()
            pair = s.redeem_code(params["code"], params["redirect_uri"])
            return self._invalid_grant() if pair is None else self._token_ok(pair)
        # refresh_token
        if not params.get("refresh_token"):
            return self._missing("refresh_token")
        if not self._client_ok(req, params):
            return self._invalid_client()
        pair = s.rotate(params["refresh_token"])
        return self._invalid_grant() if pair is None else self._token_ok(pair)

    @staticmethod
    def _unauthorized() -> Response:
        return Response.json(401, INVALID_TOKEN, [("WWW-Authenticate", WWW_AUTHENTICATE_INVALID_TOKEN)])

    def _token_info(self, req: Request) -> Response:
        s = self.state
        pair = s.valid_access(req.bearer())
        if pair is None:
            return self._unauthorized()
        remaining = int(pair.issued_at + pair.life - s.clock())
        return Response.json(
            200,
            {
                # A client-credentials token has no resource owner (Doorkeeper: null).
                "resource_owner_id": None if pair.service_account else s.user.get("id"),
                "scope": [],
                "scopes": [],
                "expires_in_seconds": max(remaining, 0),
                "application": {"uid": s.service_account_client_id if pair.service_account else s.client_id},
                "created_at": pair.created_at,
            },
        )

    def _revoke(self, req: Request) -> Response:
        params = req.params()
        if not (self._client_ok(req, params) or self._service_account_ok(req, params)):
            return Response.json(403, UNAUTHORIZED_REVOKE)
        self.state.revoke_token(params.get("token", ""))
        return Response.json(200, {})

    # API -------------------------------------------------------------------------

    def _company_header_problem(self, req: Request) -> Response | None:
        """For a service account's token (Multiple Procore Zones): the answer to a request without
        a Procore-Company-Id header of a company the app is installed in, or None."""
        header = req.headers.get("procore-company-id", "").strip()
        if not header:
            return Response.json(400, {
                "error": "invalid_request",
                "error_description": "Missing required header: Procore-Company-Id (a service account's token "
                "needs it on every request).",
            })
        if not header.isdigit() or int(header) not in self.state.service_account_companies:
            return Response.json(403, {
                "error": "forbidden",
                "error_description": "The app is not installed in the company of the Procore-Company-Id header.",
            })
        return None

    def _me(self, req: Request) -> Response:
        pair = self.state.valid_access(req.bearer())
        if pair is None:
            return self._unauthorized()
        if pair.service_account:
            return self._company_header_problem(req) or Response.json(200, dict(SERVICE_ACCOUNT_USER))
        return Response.json(200, {k: self.state.user.get(k) for k in ("id", "login", "name")})

    def _companies(self, req: Request) -> Response:
        s = self.state
        pair = s.valid_access(req.bearer())
        if pair is None:
            return self._unauthorized()
        companies = s.companies
        if pair.service_account:
            problem = self._company_header_problem(req)
            if problem is not None:
                return problem
            companies = [c for c in s.companies if int(c["id"]) in s.service_account_companies]
        q = req.query_params()
        page, per_page = self._page_of(q, s.per_page_default)
        total = len(companies)
        last = max((total + per_page - 1) // per_page, 1)
        items = companies[(page - 1) * per_page : page * per_page]
        links = self._links(req, "/rest/v1.0/companies", q, page, per_page, last)
        headers = [("Total", str(total)), ("Per-Page", str(per_page)), ("Link", links)]
        return Response.json(200, [dict(c) for c in items], headers)

    @staticmethod
    def _page_of(q: Mapping[str, str], default: int, top: int | None = None) -> tuple[int, int]:
        try:
            page = max(int(q.get("page") or 1), 1)
        except ValueError:
            page = 1
        try:
            per_page = max(int(q.get("per_page") or default), 1)
        except ValueError:
            per_page = default
        return page, min(per_page, top) if top else per_page

    def _links(self, req: Request, path: str, q: Mapping[str, str], page: int, per_page: int, last: int) -> str:
        host = req.headers.get("host", "").strip()
        base = f"http://{host}" if host else self.base_url()

        def link(p: int) -> str:
            params = dict(q)
            params["page"] = str(p)
            params["per_page"] = str(per_page)
            return f"<{base}{path}?{urlencode(params)}>"

        links = []
        if page > 1:
            links.append(f'{link(1)}; rel="first"')
            links.append(f'{link(min(page - 1, last))}; rel="prev"')
        if page < last:
            links.append(f'{link(page + 1)}; rel="next"')
        links.append(f'{link(last)}; rel="last"')
        return ", ".join(links)

    def _project_company(self, req: Request) -> int | Response:
        if self.state.valid_access(req.bearer()) is None:
            return self._unauthorized()
        header = req.headers.get("procore-company-id", "").strip()
        if not header:
            return Response.json(
                400,
                {
                    "error": "invalid_request",
                    "error_description": "Missing required header: Procore-Company-Id.",
                },
            )
        raw_id = req.query_params().get("company_id", "").strip() or header
        try:
            company_id = int(raw_id)
            header_id = int(header)
        except ValueError:
            return Response.json(
                400, {"error": "invalid_request", "error_description": "company_id must be an integer."}
            )
        known = {int(c["id"]) for c in self.state.companies}
        if company_id not in known or header_id not in known:
            return Response.json(404, {"error": "not found"})
        return company_id

    def _projects(self, req: Request) -> Response:
        company = self._project_company(req)
        if isinstance(company, Response):
            return company
        q = req.query_params()
        page, per_page = self._page_of(q, self.state.per_page_default)
        total, item = self.state.company_projects(company)
        last = max((total + per_page - 1) // per_page, 1)
        items = [item(i) for i in range((page - 1) * per_page, min(page * per_page, total))]
        headers = [("Total", str(total)), ("Per-Page", str(per_page)),
                   ("Link", self._links(req, "/rest/v1.0/projects", q, page, per_page, last))]
        return Response.json(200, items, headers)

    def _create_project(self, req: Request) -> Response:
        company = self._project_company(req)
        if isinstance(company, Response):
            return company
        try:
            data: Any = req.json_body()
        except ValueError:
            return Response.json(400, {"error": "invalid_request", "error_description": "The body is not JSON."})
        fields = data.get("project") if isinstance(data, dict) else None
        name = fields.get("name") if isinstance(fields, dict) else None
        if not isinstance(name, str) or not name.strip():
            return Response.json(422, {"errors": {"name": ["can't be blank"]},
                                       "error_description": "project[name] can't be blank"})
        number = fields.get("project_number") if isinstance(fields, dict) else None
        return Response.json(201, self.state.create_project(company, name, number))

    def _v2_projects(self, req: Request, raw_company: str) -> Response:
        company = self._project_company(req)
        if isinstance(company, Response):
            return company
        if raw_company != str(company) and not (raw_company.isdigit() and int(raw_company) == company):
            return Response.json(404, {"error": "not found"})
        q = req.query_params()
        page, per_page = self._page_of(q, 10, 100)  # v2: 10 a page by default, 100 at most
        total, item = self.state.company_projects(company)
        last = max((total + per_page - 1) // per_page, 1)
        data = []
        for i in range((page - 1) * per_page, min(page * per_page, total)):
            p = item(i)
            data.append({"id": str(p["id"]), "name": p["name"], "company_id": str(company)})
        path = f"/rest/v2.0/companies/{raw_company}/projects"
        return Response.json(200, {"data": data}, [("Link", self._links(req, path, q, page, per_page, last))])
