"""`procore-setup api`: call Procore's REST API from a shell, on `ProcoreClient`.

    procore-setup api /rest/v1.0/me
    procore-setup api /rest/v1.0/projects --paginate | jq '.[].name'
    procore-setup api -X POST /rest/v1.0/projects -f 'project[name]=Tower' -F company_id=8675309

Fields as `gh api` takes them (`-f` text, `-F` typed, `key[sub]=`, `key[]=`), `--input FILE`,
`--paginate` (one merged JSON array), `--ndjson` (one item a line, as pages arrive). The body goes
to stdout as it came, or indented (and with nothing that can drive the terminal) on a terminal;
an error answer still goes to stdout, and a one-line message naming the status and Procore's
error text to stderr. This module parses and prints; the requests, pacing and retries are
`client.py`'s. httpx is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import IO, Any, Iterable, Iterator

from . import filesystem
from .errors import EXIT_OK, ProcoreSetupError, UsageError
from .settings import Unlock

DESCRIPTION = """\
Call Procore's REST API with the profile's token. PATH is relative to the profile's API URL
(/rest/v1.0/projects); an absolute URL must be on that same host.

Fields: -f KEY=VALUE adds a text field, -F KEY=VALUE a typed one (numbers, true, false, null,
@FILE for a file's text, @- for stdin); nested keys project[name]=Tower, arrays ids[]=1. For GET,
HEAD and DELETE the fields are query parameters, otherwise the JSON body; with --input the body is
that file (or - for stdin) as it is, and the fields go into the query.

Procore-Company-Id is the profile's company unless --company (or -H) says otherwise.
Rate limits: requests wait while Procore's X-Rate-Limit-Remaining is 0 or after a 429, up to
--max-wait seconds; 502/503/504 and failed connections are retried (POST and PATCH only when
Procore certainly did not get them: a POST is never sent twice).

examples:
  procore-setup api /rest/v1.0/me
  procore-setup api /rest/v1.0/projects --paginate | jq -r '.[].name'
  procore-setup api /rest/v1.0/projects --ndjson | wc -l
  procore-setup api -X POST /rest/v1.0/projects -f 'project[name]=Tower'"""

FILE_LIMIT = 64 << 20  # bytes read from --input or an @file, at most
ERROR_BODY_LIMIT = 16 << 20  # bytes of an error answer kept to print and to read its message from

# Characters that can drive a terminal or hide text: C0/C1 controls, DEL, bidi and zero-width
# format characters, line/paragraph separators, lone surrogates. In JSON text they can only sit
# in strings, where a \\uXXXX escape means the same.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
                     "\ufff9-\ufffb\ud800-\udfff]")
_UNSAFE_JSON = re.compile("[\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
                          "\ufff9-\ufffb\ud800-\udfff]")


def add_arguments(p: argparse.ArgumentParser, seconds: Any) -> None:
    """The `api` command's arguments (cli.py builds the subparser and the common options)."""
    p.add_argument("path", metavar="PATH", help="the API path (/rest/v1.0/projects) or a URL on the profile's API host")
    p.add_argument("-X", "--method", metavar="METHOD", help="the HTTP method (default GET, or POST with fields or --input)")
    p.add_argument("-f", "--raw-field", metavar="KEY=VALUE", action="append", default=[],
                   help="a text field (repeatable)")
    p.add_argument("-F", "--field", metavar="KEY=VALUE", action="append", default=[],
                   help="a typed field: number, true, false, null, @FILE (repeatable)")
    p.add_argument("-H", "--header", metavar="'NAME: VALUE'", action="append", default=[],
                   help="an extra request header (repeatable)")
    p.add_argument("--input", metavar="FILE", help="the request body from FILE (- for stdin), sent as it is")
    p.add_argument("--paginate", action="store_true", help="follow every page: one merged JSON array")
    p.add_argument("--ndjson", action="store_true", help="with or without --paginate: one compact item a line")
    p.add_argument("--company", metavar="ID", help="the Procore-Company-Id to send (default: the profile's)")
    p.add_argument("-i", "--include", action="store_true", help="print the status line and headers first")
    p.add_argument("--max-wait", type=seconds, default=120.0, metavar="SECONDS",
                   help="wait at most this long for a rate limit to reset, else exit 5 (default 120)")
    p.add_argument("--demo", action="store_true", default=argparse.SUPPRESS,
                   help="against a built-in fake Procore (logged in for you, with a throwaway file)")


# -- fields ------------------------------------------------------------------------------------

def _key_parts(key: str) -> list[str]:
    """`project[name]` -> ["project", "name"]; `ids[]` -> ["ids", ""]."""
    m = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", key)
    if not m:
        raise UsageError(f"The field name {key[:60]!r} is not valid.",
                         hint="Write NAME, NAME[KEY] or NAME[] (e.g. project[name]=Tower, ids[]=1).")
    return [m.group(1)] + re.findall(r"\[([^\[\]]*)\]", m.group(2))


def _read_source(name: str, what: str) -> bytes:
    """The bytes of FILE, or of stdin for "-", at most FILE_LIMIT."""
    try:
        if name == "-":
            data = sys.stdin.buffer.read(FILE_LIMIT + 1)
        else:
            with open(name, "rb") as f:
                data = f.read(FILE_LIMIT + 1)
    except OSError as exc:
        raise UsageError(f"Cannot read {what} {name[:200]!r}: {exc.strerror or type(exc).__name__}.") from None
    if len(data) > FILE_LIMIT:
        raise UsageError(f"{what.capitalize()} {name[:200]!r} is larger than {FILE_LIMIT >> 20} MiB.")
    return data


def _typed(value: str) -> Any:
    if value in ("true", "false"):
        return value == "true"
    if value == "null":
        return None
    if value.startswith("@"):
        data = _read_source(value[1:], "the field's file")
        return data.decode("utf-8", "replace")
    if re.fullmatch(r"-?(0|[1-9][0-9]*)", value):
        return int(value)  # exact, however many digits: 64-bit ids stay as they are
    if re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?", value):
        return float(value)
    return value


def parse_fields(raw: Iterable[str], typed: Iterable[str]) -> list[tuple[list[str], Any]]:
    out: list[tuple[list[str], Any]] = []
    for items, is_typed in ((raw, False), (typed, True)):
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise UsageError("A field is KEY=VALUE (e.g. -f 'project[name]=Tower').")
            out.append((_key_parts(key), _typed(value) if is_typed else value))
    return out


def fields_body(fields: list[tuple[list[str], Any]]) -> dict[str, Any]:
    """The fields as one JSON object: nested keys make objects, `[]` makes arrays."""
    body: dict[str, Any] = {}
    for parts, value in fields:
        node: Any = body
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt = None if last else parts[i + 1]
            if isinstance(node, list):
                if last:
                    node.append(value)
                    break
                child: Any = [] if nxt == "" else {}
                node.append(child)
                node = child
                continue
            if last:
                node[part] = value
                break
            want = list if nxt == "" else dict
            if not isinstance(node.get(part), want):
                node[part] = want()
            node = node[part]
    return body


def _query_value(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    return str(value)


def fields_query(fields: list[tuple[list[str], Any]]) -> list[tuple[str, Any]]:
    """The fields as query parameters, Rails style: project[name]=Tower, ids[]=1."""
    return [(parts[0] + "".join(f"[{p}]" for p in parts[1:]), _query_value(v)) for parts, v in fields]


def parse_headers(raw: Iterable[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in raw:
        name, sep, value = item.partition(":")
        name = name.strip()
        if not sep or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise UsageError("A header is 'Name: value' (e.g. -H 'Accept: application/json').")
        if any(c in value for c in "\r\n\x00"):
            raise UsageError(f"The value of header {name[:60]} holds a line break.")
        headers[name] = value.strip()
    return headers


# -- printing ----------------------------------------------------------------------------------

def _escape(m: re.Match[str]) -> str:
    code = ord(m.group(0))
    return f"\\u{code:04x}"


def terminal_json(obj: Any, indent: int | None = 2) -> str:
    """JSON for a person at a terminal: indented, non-ASCII kept, every control or format
    character escaped (inside JSON strings, where \\uXXXX means the same)."""
    return _UNSAFE_JSON.sub(_escape, json.dumps(obj, indent=indent, ensure_ascii=False))


def terminal_text(text: str) -> str:
    """Text that is not JSON, for a terminal: lines and tabs kept, anything else that could drive it escaped."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group(0)):02x}" if ord(m.group(0)) < 0x100 else _escape(m), text)


def _safe_header(text: str) -> str:
    from .text import clean

    return clean(text, 2000)


class Output:
    """stdout, as bytes, knowing whether a person reads it."""

    def __init__(self, stream: IO[bytes], tty: bool) -> None:
        self.stream = stream
        self.tty = tty
        self.written = False

    def write(self, data: bytes) -> None:
        self.stream.write(data)
        self.written = True

    def text(self, text: str) -> None:
        self.stream.write(text.encode("utf-8", "replace"))

    def head(self, response: Any) -> None:
        self.text(f"{_safe_header(response.http_version)} {response.status_code} "
                  f"{_safe_header(response.reason_phrase or '')}\n")
        for name, value in response.headers.raw:  # as the server spelt them
            self.text(f"{_safe_header(name.decode('latin-1'))}: {_safe_header(value.decode('latin-1'))}\n")
        self.text("\n")

    def body(self, data: bytes, content_type: str) -> None:
        """A whole body: as it came, or for a terminal indented JSON / escaped text."""
        if not self.tty:
            self.write(data)
            return
        if not data:
            return
        text = data.decode("utf-8", "replace")
        if "json" in content_type or text.lstrip()[:1] in ("{", "["):
            try:
                self.text(terminal_json(json.loads(text)) + "\n")
                return
            except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
                pass
        self.text(terminal_text(text) + ("" if text.endswith("\n") else "\n"))


# -- the command -------------------------------------------------------------------------------

def _path(path: str, api_url: str) -> str:
    """The request target: a path on the API, or an absolute URL checked to be on the API's host."""
    import httpx

    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path):
        try:
            url = httpx.URL(path)
            api = httpx.URL(api_url)
        except (httpx.InvalidURL, ValueError):
            raise UsageError("PATH is not a valid URL.") from None
        ports = {"http": 80, "https": 443}
        if (url.scheme, url.host.lower(), url.port or ports.get(url.scheme)) != \
                (api.scheme, api.host.lower(), api.port or ports.get(api.scheme)):
            from .text import clean

            raise UsageError(
                f"{clean(url.scheme, 20)}://{clean(url.host, 200)} is not the profile's API host "
                f"({clean(api_url, 200)}): the token is sent nowhere else, so nothing was sent.",
                hint="Give a path like /rest/v1.0/projects, or a URL on the profile's API host.")
        return path
    if path.startswith("//") or path.startswith("/\\") or path.startswith("\\"):
        from .text import clean

        # `//host/x` is a URL without its scheme (another host), not a path on the API
        raise UsageError(f"PATH {clean(path, 200)!r} starts with two slashes: that names a host, not a path "
                         "on the profile's API, so nothing was sent.",
                         hint="Give a path like /rest/v1.0/projects, or a URL on the profile's API host.")
    if not path.startswith("/"):
        path = "/" + path
    return path


def run_demo(args: argparse.Namespace) -> int:
    """`api --demo`: the fake Procore on loopback, a throwaway profile logged in to it, then the call."""
    from .flow import SetupFlow
    from .stores.file import FileStore
    from .testing.demo import DemoSession

    with DemoSession() as demo:
        demo.fake.project_count = 250
        store = FileStore(demo.config_path)
        flow = SetupFlow(store, "demo")
        flow.load_existing()
        flow.set_environment("custom", demo.url, demo.url)
        flow.set_client(demo.client_id, demo.client_secret)
        flow.start_authorization()
        flow.exchange(demo.fake.issue_code())
        flow.verify()
        flow.choose_company(int(demo.fake.companies[0]["id"]))
        flow.save()
        print(f"procore-setup: demo: a fake Procore at {demo.url} (250 projects); nothing real is touched.",
              file=sys.stderr)
        return run_api(args, store, Unlock(), "demo")  # the demo's own plain file: no passphrase


def run_api(args: argparse.Namespace, store: Any, unlock: Unlock, profile: str | None) -> int:
    """`api`: one call (or every page of a list) to the profile's Procore API, printed. `unlock`:
    this run's passphrase sources, for an encrypted store."""
    try:
        return _run_api(args, store, unlock, profile)
    except BrokenPipeError:
        # The reader stopped reading (`| head`): not a failure of the call. Quiet the interpreter's
        # own flush of stdout at exit, which would complain about the same pipe.
        try:
            filesystem.silence_stdout()
        except (OSError, ValueError):
            pass
        return EXIT_OK


def _run_api(args: argparse.Namespace, store: Any, unlock: Unlock, profile: str | None) -> int:
    import httpx

    from .client import ProcoreClient, api_error, body_error, protocol_error, read_capped

    if args.ndjson and not args.paginate:
        args.paginate = True  # one item a line is only meaningful for lists: follow the pages too
    fields = parse_fields(args.raw_field, args.field)
    headers = parse_headers(args.header)
    if args.company is not None:
        if not re.fullmatch(r"[0-9]{1,20}", args.company.strip()) or int(args.company) >= 1 << 63:
            raise UsageError("--company takes a company id (a number, like 8675309).")
        headers["Procore-Company-Id"] = str(int(args.company))
    method = (args.method or ("POST" if (fields or args.input) and not args.paginate else "GET")).upper()
    if not re.fullmatch(r"[A-Z]{1,20}", method):
        raise UsageError("-X takes an HTTP method (GET, POST, PATCH, PUT, DELETE, HEAD).")
    if args.paginate and method != "GET":
        raise UsageError("--paginate and --ndjson follow the pages of a GET list.")
    content: bytes | None = None
    params: list[tuple[str, Any]] = []
    if args.input is not None:
        content = _read_source(args.input, "the input file")
        params = fields_query(fields)
        headers.setdefault("Content-Type", "application/json")
    elif method in ("GET", "HEAD", "DELETE"):
        params = fields_query(fields)
    elif fields:
        content = json.dumps(fields_body(fields)).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")

    # An encrypted file: ask for its passphrase now if a person is there (the key is kept for this
    # run), rather than failing later inside a request that cannot prompt.
    from .passphrase import open_secrets

    open_secrets(store.load(), unlock)
    out = Output(sys.stdout.buffer, _stdout_is_tty())
    # The client's refreshes get the same command ("": none, and the environment is read once, above)
    with ProcoreClient(profile, store=store, max_wait=args.max_wait, passphrase_command=unlock.command or "") as client:
        target = _path(args.path, client.api_url)
        if args.paginate:
            return _paginate(client, target, params, headers, args, out)
        request = client.build_request(method, target, params=httpx.QueryParams(params) if params else None,
                                       content=content, headers=headers)
        try:
            response = client.send(request, stream=True)
        except httpx.RemoteProtocolError as exc:  # e.g. a redirect whose Location is not a URL
            raise protocol_error(exc, request) from None
        try:
            if args.include:
                out.head(response)
            ctype = response.headers.get("content-type", "")
            if response.status_code >= 300 and response.status_code != 304:  # a redirect is not followed: an error
                body = read_capped(response.iter_bytes(), ERROR_BODY_LIMIT, "an error answer", request)
                out.body(body, ctype)
                out.stream.flush()  # the body before the message: a script reading both sees it whole
                raise api_error(response, body, relogin=client.relogin_command())
            if out.tty:  # a person reads it: indented, and escaped, so read whole
                out.body(read_capped(response.iter_bytes(), ERROR_BODY_LIMIT, "a terminal", request), ctype)
                return EXIT_OK
            try:
                for chunk in response.iter_bytes():  # as it came, as it comes
                    out.write(chunk)
            except (httpx.TransportError, httpx.DecodingError) as exc:
                raise body_error(exc, request) from None
        finally:
            response.close()
    return EXIT_OK


def _paginate(client: Any, target: str, params: list[tuple[str, Any]], headers: dict[str, str],
              args: argparse.Namespace, out: Output) -> int:
    for name, value in headers.items():
        client.headers[name] = value
    query: dict[str, Any] = {}
    for key, value in params:
        if key.endswith("[]"):
            query.setdefault(key, []).append(value)
        else:
            query[key] = value
    items: Iterator[Any] = client.paginate(target, query)
    try:
        _write_items(items, out, args.ndjson)
    except ProcoreSetupError as exc:
        answer = getattr(exc, "answer", None)
        if answer is not None and not out.written:
            # the first page was refused: its body on stdout, as without --paginate
            out.body(answer, getattr(exc, "content_type", ""))
            out.stream.flush()
        raise
    return EXIT_OK


def _write_items(items: Iterator[Any], out: Output, ndjson: bool) -> None:
    """The items as ndjson, or as one JSON array written as they come (indented for a terminal)."""
    stream = out.stream
    if ndjson:
        for item in items:
            line = json.dumps(item, separators=(",", ":"), ensure_ascii=False)
            if out.tty:
                line = _UNSAFE_JSON.sub(_escape, line)
            out.write(line.encode("utf-8", "backslashreplace") + b"\n")
        return
    first = True
    for item in items:
        if out.tty:
            text = terminal_json(item).replace("\n", "\n  ")
            out.write((("[\n  " if first else ",\n  ") + text).encode("utf-8"))
        else:
            data = json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "backslashreplace")
            out.write((b"[" if first else b",") + data)
        first = False
    if first:
        stream.write(b"[]\n")
    else:
        stream.write(b"\n]\n" if out.tty else b"]\n")


def _stdout_is_tty() -> bool:
    try:
        return os.isatty(sys.stdout.fileno())
    except (ValueError, OSError, AttributeError):
        return False


__all__ = ["DESCRIPTION", "add_arguments", "run_api", "run_demo"]
