"""Checks of values that come from outside: base URLs, tokens and client credentials.

Pure functions, no I/O, and cheap to import and run: this module sits on the headless fast
path (`token` checks the stored URLs and tokens before using them), so it imports nothing at
module level and compiles no regular expression; `urllib.parse` and `ipaddress` are imported
only for a URL the quick check below does not vouch for, and the `idna` package only for a
non-ASCII host name.

The same rules serve a value when it arrives (typed at login, answered by Procore) and
when it is read back from the credentials file, which anyone with write access to it may
have edited: a value the tool would refuse on arrival must not be used because it was
written down.
"""

from __future__ import annotations

from .errors import InvalidURL
from .text import clean

MAX_URL_CHARS = 2048
MAX_TOKEN_CHARS = 16384  # Procore's tokens are tens of characters; a signed JWT is a few thousand
MAX_CREDENTIAL_CHARS = 512
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_QUICK_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")
_QUICK_PATH_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~/-")
_EXAMPLE_HINT = "Give a URL like https://login.procore.com"


def is_loopback(host: str | None) -> bool:
    """Whether `host` (a name or an address as a URL gives it) is this machine without asking a
    resolver: `localhost` (any case), an IPv4 address in 127.0.0.0/8 written as one (four decimal
    parts, no leading zeros), or a loopback IPv6 address (::1; a `%zone` only on an IPv6 address),
    each optionally in one pair of brackets. The one test: the checks of base URLs, the proxy
    bypass of oauth.py and the stores' TLS defaults all ask it. No host: False.

    Anything else goes to the resolver, and so may go anywhere: `localhost.` and `ip6-localhost`
    (glibc matches neither in /etc/hosts without an entry, and asks DNS), `127.0.0.08` and
    `127.1` (not addresses to getaddrinfo's inet_pton path: names), `127.0.0.1%x.evil.example`
    (a zone makes no IPv4 address: a name). Such a host is not trusted with plain http or a
    password in clear text."""
    if not host:
        return False
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower() == "localhost":
        return True
    if ":" not in host:
        parts = host.split(".")
        return len(parts) == 4 and parts[0] == "127" and all(
            p.isascii() and p.isdigit() and p == str(int(p)) and int(p) < 256 for p in parts)
    import ipaddress

    try:
        return ipaddress.IPv6Address(host).is_loopback  # a zone ("::1%lo") is allowed here only
    except ValueError:
        return False


def check_base_url(url: str, what: str) -> str:
    """A login or API base URL: https, or http to a loopback host only; a host name that
    resolves without surprises. Returns it without a trailing '/'; raises InvalidURL (its `what`
    and its `problem`: "The {what} {problem}.") otherwise."""
    url = (url or "").strip()
    if _plainly_good(url):
        return url.rstrip("/")
    if not url:
        raise InvalidURL(what, "is empty", hint=_EXAMPLE_HINT)
    if any(c.isspace() for c in url):
        raise InvalidURL(what, "contains spaces")
    if not url.isprintable():
        raise InvalidURL(what, "contains control characters")
    if len(url) > MAX_URL_CHARS:
        raise InvalidURL(what, f"is longer than {MAX_URL_CHARS} characters")
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. https://[::1 (an unclosed IPv6 address)
        raise InvalidURL(what, "does not parse as a URL", hint=_EXAMPLE_HINT) from None
    if parts.scheme not in ("https", "http"):
        raise InvalidURL(what, f"must start with https:// (got {parts.scheme[:20] or 'no scheme'})",
                         hint=_EXAMPLE_HINT)
    host = parts.hostname or ""
    if not host:
        raise InvalidURL(what, "has no host name")
    if parts.scheme == "http" and not is_loopback(host):
        raise InvalidURL(
            what, f"uses plain http to {host[:100]}: the client secret and tokens would cross the network unencrypted",
            hint="Use https://, or http only to 127.0.0.1 / localhost (test servers).",
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidURL(what, "must be a base URL, without ?query, #fragment or user:password@")
    try:
        _ = parts.port
    except ValueError:
        raise InvalidURL(what, "has a bad port number") from None
    problem = _host_problem(host, bracketed="[" in parts.netloc)
    if problem:
        raise InvalidURL(what, problem)
    return url.rstrip("/")


def _plainly_good(url: str) -> bool:
    """True for URLs of the common shape (https to a lower-case host name, or http to 127.0.0.1
    or localhost; a port; a plain path), which pass every check of check_base_url: so the usual
    case costs a few string operations and imports nothing. False means "look closer"."""
    if url.startswith("https://"):
        rest, https = url[8:], True
    elif url.startswith("http://"):
        rest, https = url[7:], False
    else:
        return False
    netloc, _, path = rest.partition("/")
    host, colon, port = netloc.partition(":")
    if len(url) > MAX_URL_CHARS or not set(path) <= _QUICK_PATH_CHARS:
        return False
    if colon and not (port.isascii() and port.isdigit() and port[0] != "0" and int(port) <= 65535):
        return False
    if not https:
        return host in ("127.0.0.1", "localhost")
    if not host or len(host) > 253 or not set(host) <= _QUICK_HOST_CHARS:
        return False
    labels = host.split(".")
    if all(label.isdigit() for label in labels):
        return False  # an IPv4 address, or something that looks like one (1.2.3)
    return all(label and len(label) <= 63 and label[0] != "-" and label[-1] != "-" for label in labels)


def _label_ok(label: str) -> bool:
    """A DNS label as resolvers take it: 1 to 63 letters, digits, '-' or '_', no '-' at either end."""
    return (0 < len(label) <= 63 and set(label) <= _LABEL_CHARS
            and label[0] != "-" and label[-1] != "-")


def _host_problem(host: str, *, bracketed: bool) -> str | None:
    """Why `host` (urlsplit's lower-cased hostname) would fail to connect, or None."""
    import ipaddress

    if bracketed:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "has an invalid IPv6 address"
        return None
    if all(c.isdigit() or c == "." for c in host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"has an invalid IPv4 address ({host[:40]})"
        return None
    if not host.isascii():
        try:
            import idna  # what httpx encodes international names with (installed with it)

            host = idna.encode(host).decode("ascii")
        except ImportError:
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                return "has a host name that is not a valid international (IDNA) name"
        except Exception:  # noqa: BLE001 - idna.IDNAError, and UnicodeError from odd input
            return "has a host name that is not a valid international (IDNA) name"
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253:
        return "has a host name longer than 253 characters"
    for label in name.split("."):
        if not label:
            return f"has an empty part in its host name ({host[:100]})"
        if not _label_ok(label):
            return f"has a host name with a part that is not 1 to 63 letters, digits and inner '-' ({host[:100]})"
    return None


def token_problem(value: object) -> str | None:
    """Why `value` is not usable as an OAuth token (access or refresh), or None."""
    if not isinstance(value, str) or not value:
        return "is empty or not text"
    if len(value) > MAX_TOKEN_CHARS:
        return f"is longer than {MAX_TOKEN_CHARS} characters"
    # A bearer token is printable ASCII without spaces (RFC 6750's b64token is stricter still):
    # a line break in it would inject a header into a script's `Authorization: Bearer ...`.
    if not (value.isascii() and value.isprintable()) or " " in value:
        return "holds spaces, line breaks or non-ASCII characters"
    return None


def credential_problem(value: object) -> str | None:
    """Why `value` is not usable as a client id or secret, or None (the rules of login)."""
    if not isinstance(value, str) or not value.strip():
        return "is empty or not text"
    if any(c.isspace() for c in value):
        return "holds spaces or line breaks"
    if not value.isprintable() or len(value) > MAX_CREDENTIAL_CHARS:
        return "does not look like a Procore credential"
    return None


def shown(text: object, limit: int = 100) -> str:
    """`text` safe to print in a message: the one sanitizer (text.clean: control and format
    characters escaped, one line), with up to `limit` characters before the "…" that says it was cut."""
    return clean(text, limit + 1)
