"""The shared store on Redis: one key per profile, one hash for the settings and the version.

Keys (under a prefix, `procore-setup:` unless the URL says `?prefix=`):

- `<prefix>document`: a hash with `version` (the fence every save checks), `schema` (the
  store's layout, STORE_SCHEMA), `settings` (the document-level settings as JSON), `writer`
  (which save wrote this version, so a save whose answer was lost is known to have landed) and
  `updated_at`;
- `<prefix>profiles`: the set of profile names;
- `<prefix>profile:<name>`: one profile's fields as JSON (unknown fields included);
- `<prefix>lock`: the lock, while a run holds it.

The lock is a lease: `SET <prefix>lock TOKEN NX PX lease`, extended every lease/3 by a
thread of the holder while it works (so a slow answer from Procore keeps it), and released or
extended only by its owner (scripts that check the token). A holder that stops (SIGSTOP, a
long pause, a partition) loses it when the lease runs out, and another host goes on: that is
what a lease does, and why every save is ONE script that first checks the version this run
read (compare-and-set). What a stale holder then has is refused, never written over the next
holder's pair; SharedStore reports it.

Reads are one script too, so a run never sees half of another's save, and it measures every
value before it sends it, so a hostile or corrupt store is refused, not downloaded.

redis-py is imported here, and this module only when the store is a redis:// or rediss:// URL.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..checks import shown
from ..errors import RespFailure, StoreRefused, StoreUnavailable, UsageError, env_seconds
from ..hints import shell_quote
from .rows import (
    host_addresses,
    MAX_DOCUMENT_BYTES,
    _loopback,
    tls_warning,
    MAX_ROWS,
    STORE_SCHEMA,
    Revision,
    SharedStore,
    decode,
    encode,
    guarded,
    version_of,
)

DEFAULT_PREFIX = "procore-setup:"
MAX_PREFIX = 100
LEASE_ENV = "PROCORE_SETUP_REDIS_LEASE"  # a tuning and test knob: seconds a lock outlives a silent holder
# A holder extends its lease every third of it, so it needs no more than a few hiccups' worth;
# a holder that died (SIGKILL) keeps the others waiting for at most this long, well inside the
# default lock timeout of 60 s.
DEFAULT_LEASE = 30.0
CONNECT_TIMEOUT = 3.0  # seconds: an unreachable host is exit 5 within a few seconds
READ_TIMEOUT = 10.0  # a server that takes the connection and never answers
READ_DEADLINE = 30.0  # the whole fast read, unless PROCORE_SETUP_STORE_TIMEOUT says otherwise
STATEMENT_DEADLINE_ENV = "PROCORE_SETUP_STORE_TIMEOUT"
PASSWORD_ENV = "REDISCLI_AUTH"  # redis-cli's own: the password when the URL has none
# The URL parameters redis-py knows (anything else would fail deep inside it); `prefix` is ours.
# (Not `timeout`: redis-py's ConnectionPool hands it to the connection, which fails on it.) Each
# is checked here, so a bad value is exit 2 naming it, never a TypeError deep inside the driver.
_SECONDS = ("socket_timeout", "socket_connect_timeout")
_FLAGS = ("socket_keepalive", "retry_on_timeout", "ssl_check_hostname")
_FLAG_WORDS = {"true", "false", "yes", "no", "1", "0", "on", "off", "t", "f", "y", "n"}
URL_PARAMETERS = {
    "db", *_SECONDS, *_FLAGS, "max_connections", "health_check_interval", "ssl_cert_reqs", "ssl_ca_certs",
    "ssl_ca_path", "ssl_certfile", "ssl_keyfile", "ssl_min_version", "protocol", "client_name", "password",
    "username",
}

# KEYS: document, names set. ARGV: prefix, max bytes, max rows.
# Returns {"ok", version, schema, settings, name1, value1, ...} (a missing value: false), or
# {"toomany", n} / {"toobig", n} / {"junk", ...} (a version or schema far longer than any number
# this program writes): every value is measured first, so nothing too big is ever sent.
_READ = """
local n = redis.call('SCARD', KEYS[2])
if n > tonumber(ARGV[3]) then return {'toomany', n} end
local vlen, slen = redis.call('HSTRLEN', KEYS[1], 'version'), redis.call('HSTRLEN', KEYS[1], 'schema')
if vlen > 40 or slen > 40 then return {'junk', vlen, slen} end
local total = redis.call('HSTRLEN', KEYS[1], 'settings')
local max = tonumber(ARGV[2])
if total > max then return {'toobig', total} end
local doc = redis.call('HMGET', KEYS[1], 'version', 'schema', 'settings')
local out = {'ok', doc[1] or '', doc[2] or '', doc[3] or ''}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local key = ARGV[1] .. 'profile:' .. name
  total = total + #name + redis.call('STRLEN', key)
  if total > max then return {'toobig', total} end
  out[#out + 1] = name
  out[#out + 1] = redis.call('GET', key)
end
return out
"""

# KEYS: document, names set. ARGV: prefix, expect, new, schema, settings, writer, time, number of
# upserts, then name/value pairs, then the names to delete.
# The version is compared as text, as it is stored: this program writes it as a plain decimal,
# and a foreign one ('-1', '²') is then still matched exactly by the one save that may go over it
# (save_last_resort's, after Procore answered), never taken for 0 or for a number.
# Returns 1 (written), 2 (this very save had landed already: its answer was lost), 0 (the version
# moved: nothing written), -1 (a newer store schema: nothing written).
_WRITE = """
local v = redis.call('HGET', KEYS[1], 'version') or '0'
if v ~= ARGV[2] then
  if v == ARGV[3] and redis.call('HGET', KEYS[1], 'writer') == ARGV[6] then return 2 end
  return 0
end
local s = redis.call('HGET', KEYS[1], 'schema')
if s and tonumber(s) and tonumber(s) > tonumber(ARGV[4]) then return -1 end
redis.call('HSET', KEYS[1], 'version', ARGV[3], 'schema', ARGV[4], 'settings', ARGV[5], 'writer', ARGV[6],
           'updated_at', ARGV[7])
local n = tonumber(ARGV[8])
local i = 9
for _ = 1, n do
  redis.call('SET', ARGV[1] .. 'profile:' .. ARGV[i], ARGV[i + 1])
  redis.call('SADD', KEYS[2], ARGV[i])
  i = i + 2
end
while i <= #ARGV do
  redis.call('DEL', ARGV[1] .. 'profile:' .. ARGV[i])
  redis.call('SREM', KEYS[2], ARGV[i])
  i = i + 1
end
return 1
"""

# The owner's extend and release: only while the lock still holds this run's token.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# A write under the prefix that leaves nothing behind: proves this user may run scripts and
# write these keys (an ACL user, a read-only replica) before a login spends its code.
_PROBE = """
redis.call('SET', KEYS[1], '1', 'PX', 1000)
return redis.call('DEL', KEYS[1])
"""


class RedisStore(SharedStore):
    """A Redis database that several hosts share. Built by `stores.open_store`."""

    kind = "Redis"
    driver_name, driver_extra = "redis", "redis"

    def __init__(self, url: str, *, lease: float | None = None, environ: Any = None, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        env = os.environ if environ is None else environ
        self.lease = lease if lease is not None else env_seconds(LEASE_ENV, DEFAULT_LEASE, 0.5, 3600, environ=env)
        # the whole fast read, however a server trickles its answer (as PostgreSQL's statements)
        self.read_deadline = env_seconds(STATEMENT_DEADLINE_ENV, READ_DEADLINE, 1, 600, environ=env)
        self._driver_options: dict[str, Any] | None = None
        self.prefix, self._driver_url, self._fast = self._parse(url, env)
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._ready = False
        self._note: tuple[str | None] | None = None
        self.lease_lost = False  # set when this run's lease ran out while it held the lock

    # -- the URL -------------------------------------------------------------------
    @property
    def _redis(self) -> Any:
        return self.driver

    @property
    def _options(self) -> dict[str, Any]:
        """redis-py's connection options for the URL (never echoed: they may hold the password)."""
        if self._driver_options is None:
            try:
                options = self._redis.connection.parse_url(self._driver_url)
            except ValueError:
                raise self._unparsable() from None
            if "password" not in options and self._env_password:
                options["password"] = self._env_password
            if urlsplit(self._driver_url).scheme.lower() == "rediss" and "ssl_check_hostname" not in options and \
                    str(options.get("ssl_cert_reqs", "required")).lower() != "none":
                # redis-py 5 checks only the chain by default (6 and later check the name too): any
                # certificate its CAs signed, for any host, would pass. Asked for in every version.
                options["ssl_check_hostname"] = True
            self._driver_options = options
        return self._driver_options

    def _unparsable(self) -> UsageError:
        return UsageError(
            f"The Redis store URL {self.describe()} does not parse.",
            hint="Use redis://[[USER]:PASSWORD@]HOST[:PORT]/DB (rediss:// for TLS), optionally with ?prefix=KEYPREFIX.",
        )

    def _parse(self, url: str, env: Any) -> tuple[str, str, dict[str, Any] | None]:
        """The key prefix, the URL for redis-py (without our `prefix`), and what the fast path's
        plain socket needs (None when the URL asks for more than it does: TLS, driver options)."""
        bad = self._unparsable()
        try:
            parts = urlsplit(url)
            query = parse_qsl(parts.query, keep_blank_values=True)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise bad from None
        prefix = DEFAULT_PREFIX
        rest = []
        for key, value in query:
            if key == "prefix":
                prefix = value
            elif key in URL_PARAMETERS:
                self._check_parameter(key, value, parts.scheme.lower())
                rest.append((key, value))
            else:
                from ..checks import shown

                raise UsageError(f"The Redis store URL {self.describe()} has a parameter procore-setup does not know: "
                                 f"{shown(key, 40)!r}.", hint="Leave it out; `prefix` names the key prefix.")
        if not prefix or len(prefix) > MAX_PREFIX or not prefix.isprintable():
            raise UsageError(f"The key prefix in the Redis store URL {self.describe()} must be 1 to {MAX_PREFIX} "
                             "printable characters.", hint=f"Leave ?prefix= out for the default, {DEFAULT_PREFIX}.")
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise UsageError(f"The Redis store URL {self.describe()} names database {path[:20]!r}: Redis databases are "
                             "numbers.", hint="Use redis://HOST:PORT/0 (or another number).")
        self._env_password = env.get(PASSWORD_ENV) or None
        if not parts.password and self._env_password:
            self._secrets = sorted({*self._secrets, self._env_password}, key=len, reverse=True)
        fast: dict[str, Any] | None = None
        if parts.scheme.lower() == "redis" and not rest:
            from urllib.parse import unquote

            fast = {"host": parts.hostname or "localhost", "port": parts.port or 6379,
                    "username": unquote(parts.username) if parts.username else None,
                    "password": unquote(parts.password) if parts.password else self._env_password,
                    "db": int(path) if path else 0}
        return prefix, urlunsplit(parts._replace(query=urlencode(rest))), fast

    def _check_parameter(self, key: str, value: str, scheme: str) -> None:
        """Exit 2, naming it, for a URL parameter redis-py would fail on deep inside (exit 1)."""
        problem = None
        if key.startswith("ssl_") and scheme != "rediss":
            problem = "TLS parameters need a rediss:// URL"
        elif key in _SECONDS:
            try:
                number = float(value)
            except ValueError:
                number = float("nan")
            if not 0 < number <= 3600:  # NaN fails this too
                problem = "it must be a number of seconds above 0 and at most 3600"
        elif key in ("health_check_interval", "max_connections", "db", "ssl_min_version"):
            low = 1 if key == "max_connections" else 0
            if not (value.isascii() and value.isdigit() and len(value) <= 6 and int(value) >= low):
                problem = f"it must be a whole number from {low} to 999999"
        elif key in _FLAGS:
            if value.lower() not in _FLAG_WORDS:
                problem = "it must be true or false"
        elif key == "protocol":
            if value not in ("2", "3"):
                problem = "it must be 2 or 3"
        elif key == "ssl_cert_reqs":
            if value.lower() not in ("none", "optional", "required"):
                problem = "it must be none, optional or required"
            elif value.lower() == "none" and not _loopback(urlsplit(self._url).hostname):
                tls_warning(f"the Redis store {self.describe()} says ssl_cert_reqs=none: its server's certificate "
                            "is not checked, so anyone on the way can pose as it and read the password and the "
                            "tokens (give its CA with ssl_ca_certs=PATH instead).")
        if problem is not None:
            raise UsageError(f"The Redis store URL {self.describe()} has {shown(key, 40)}={shown(value, 40)!r}: "
                             f"{problem}.", hint="Correct that parameter in the URL, or leave it out.")

    def key(self, name: str) -> str:
        return self.prefix + name

    def _readers(self) -> str:
        return f"anyone with this Redis server's password, or an ACL user allowed the keys {self.prefix}*"

    # -- connections ---------------------------------------------------------------
    def _connect(self) -> Any:
        r = self._redis
        options = {
            # (no client_name: CLIENT SETNAME needs @connection, which a user limited to its keys lacks)
            "socket_connect_timeout": CONNECT_TIMEOUT, "socket_timeout": READ_TIMEOUT,
            **self._options,
            # One quick retry on a new connection (a connection the server killed, a server that
            # is back); every script here can run twice without harm (see _WRITE's writer).
            "retry": r.retry.Retry(r.backoff.ExponentialBackoff(cap=0.5, base=0.05), 1),
            "retry_on_error": [r.ConnectionError, r.TimeoutError],
        }
        # redis-py's own pure-Python parser, never hiredis' (which it picks when hiredis is installed,
        # and which allocates a list of whatever length a server declares before a single element
        # arrives): hiredis reads only the fast path's reply, behind resp.py's guard. (Passed for
        # the protocol asked for: redis-py 5 does not swap a RESP2 parser for a RESP3 one itself.)
        options["parser_class"] = r.connection._RESP3Parser if str(options.get("protocol")) == "3" \
            else r.connection._RESP2Parser
        return r.Redis(connection_pool=r.ConnectionPool(**options))

    @guarded
    def _data(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    @guarded
    def _drop_connection(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.connection_pool.disconnect()

    def _script(self, client: Any, name: str, text: str) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = client.register_script(text)
        return script

    def _run(self, client: Any, name: str, text: str, keys: list[str], args: list[Any], doing: str) -> Any:
        try:
            return self._script(client, name, text)(keys=keys, args=args, client=client)
        except self._redis.RedisError as exc:
            raise self._error(exc, doing) from None
        except (RecursionError, MemoryError):  # a reply nested thousands deep (its parser recurses), or absurdly long
            self._drop_connection()
            raise StoreRefused(f"The Redis store {self.describe()} answered {doing} with a reply nested far too "
                               "deep, or far too long: not a Redis server procore-setup can use.",
                               hint="Check that the URL names a Redis server. Nothing was changed.") from None
        except (AttributeError, TypeError, ValueError, IndexError, KeyError) as exc:
            # what redis-py does with an answer no Redis server gives (a handshake answered with
            # junk): the server is not one to use, which is not a bug of procore-setup
            self._drop_connection()
            raise StoreRefused(f"The Redis store {self.describe()} answered {doing} with something redis-py cannot "
                               f"read ({type(exc).__name__}): not a Redis server procore-setup can use.",
                               hint="Check that the URL names a Redis server. Nothing was changed.") from None

    def _error(self, exc: Any, doing: str) -> Exception:
        """The error a redis-py exception means, in words, without the password."""
        classes = {c.__name__ for c in type(exc).__mro__}
        if _tls_failure(exc):
            classes.add("SSLError")
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return self._say(_meaning(classes, text.split(" ", 1)[0], text), text, doing)

    def _fast_error(self, exc: RespFailure) -> Exception | None:
        """The error a failure of the fast read means (None: a dropped connection, which redis-py's
        reconnect may get past). Never retried through redis-py: it would only wait, or be refused, again."""
        if exc.kind == "closed":
            return None
        self.driver  # noqa: B018 - without redis-py nothing else would work either: say that first
        if exc.kind == "reply":
            # the words redis-py gives: the reply without the code it turns into its class
            text = exc.reason.split(" ", 1)[1] if exc.code in _CODES_REDIS_PY_DROPS and " " in exc.reason else exc.reason
            return self._say(_meaning(set(), exc.code, exc.reason), text, "reading")
        if exc.kind == "junk":
            return self._say("junk", exc.reason, "reading")
        late = f" (the whole read may take {self.read_deadline:g} s: {STATEMENT_DEADLINE_ENV})" \
            if exc.kind == "deadline" else ""
        return self._say("unreachable", exc.reason + late, "reading")

    def _say(self, meaning: str, text: str, doing: str) -> Exception:
        """The error for one meaning of _ERRORS, with the driver's or server's first line as its detail."""
        detail = self.scrub(text).rstrip(". ") or "no message"
        where = f"The Redis store {self.describe()}"
        if meaning == "login":
            if "password" not in self._options:
                return StoreRefused(f"{where} asks for a password, and none was given.",
                                    hint="Put it in the URL (redis://:PASSWORD@HOST:PORT/DB, in $PROCORE_SETUP_STORE) or "
                                    "in $REDISCLI_AUTH. Nothing was changed.")
            return StoreRefused(f"{where} refused the login: {detail}.",
                                hint="Check the password (and user) in the URL, or in $REDISCLI_AUTH. Nothing was changed.")
        if meaning == "permission":
            return StoreRefused(
                f"{where} refused {doing}: this user may not run the commands procore-setup needs on its keys ({detail}).",
                hint=f"Allow the user the keys {self.prefix}* and the commands of @read, @write and @scripting, e.g. "
                f"ACL SETUSER USER ~{self.prefix}* +@read +@write +@scripting +select -@dangerous. Nothing was changed.")
        if meaning == "readonly":
            return StoreRefused(f"{where} is a read-only replica: {detail}.",
                                hint="Point the URL at the primary. Nothing was changed.")
        if meaning == "tls":
            return StoreRefused(f"{where}: the TLS connection failed: {detail}.",
                                hint="Check rediss:// and the ssl_* parameters of the URL. Nothing was changed.")
        if meaning == "unreachable":
            return StoreUnavailable(
                f"{where} could not be reached, or dropped the connection, while {doing}: {detail}.",
                hint="Check that the server is up and reachable from here, then try again. Nothing was lost.",
            )
        if meaning == "junk":
            return StoreRefused(f"{where} answered something that is not a Redis reply procore-setup can use while "
                                f"{doing} ({detail}).", hint="Check that the URL names a Redis server. Nothing was changed.")
        if meaning == "oom":
            return StoreUnavailable(f"{where} is out of memory (maxmemory) and refused {doing}: {detail}.",
                                    hint="Free memory on the server, then try again. Nothing was lost.")
        if meaning == "wrongtype":
            return StoreRefused(f"{where} holds keys under {self.prefix} that procore-setup did not write: {detail}.",
                                hint="Use another prefix (?prefix= in the URL), or remove those keys.")
        if meaning == "no scripts":
            return StoreRefused(f"{where} does not allow Lua scripts ({detail}), which procore-setup needs for its "
                                "lock and its compare-and-set saves.", hint="Use a Redis that allows EVAL, or PostgreSQL.")
        return StoreRefused(f"{where} failed while {doing}: {detail}.", hint="Nothing was changed.")

    # -- the primitives -------------------------------------------------------------
    @guarded
    def _read(self) -> Revision:
        if self._fast is not None and self._client is None and self._driver is None and _fast_path():
            from . import resp

            try:
                reply = resp.run_script(**self._fast, timeout=CONNECT_TIMEOUT, wait=READ_TIMEOUT,
                                        deadline=self.read_deadline,
                                        script=_READ, sha=_READ_SHA, keys=[self.key("document"), self.key("profiles")],
                                        args=[self.prefix, MAX_DOCUMENT_BYTES, MAX_ROWS], max_items=_READ_ITEMS)
            except RespFailure as exc:
                failed = self._fast_error(exc)
                if failed is not None:
                    raise failed from None
            else:
                return self._parse_reply(reply)
        client = self._data()
        reply = self._run(client, "read", _READ, [self.key("document"), self.key("profiles")],
                          [self.prefix, MAX_DOCUMENT_BYTES, MAX_ROWS], "reading")
        return self._parse_reply(reply)

    def _parse_reply(self, reply: Any) -> Revision:
        where = f"The Redis store {self.describe()}"
        if not (isinstance(reply, list) and len(reply) <= _READ_ITEMS and all(isinstance(v, _SCALARS) for v in reply)):
            # the script returns one flat list: anything else (a list nested 1000 deep, which str()
            # would recurse into) is no Redis server of ours, refused before any of it is used
            raise self._say("junk", "a reply that is not one list of values", "reading")
        status = _text(reply[0]) if isinstance(reply, list) and reply else ""
        if status == "toomany":
            raise StoreRefused(f"{where} lists more than {MAX_ROWS} profiles under {self.prefix}: far too many for "
                               "procore-setup.", hint="Check that the URL names the right database. Nothing was changed.")
        if status == "toobig":
            raise StoreRefused(f"{where} holds more than {MAX_DOCUMENT_BYTES} bytes under {self.prefix}: far too big "
                               "for procore-setup.", hint="Check that the URL names the right database. Nothing was changed.")
        if status == "junk":
            raise StoreRefused(f"{where}: the version or schema in {self.key('document')} is far longer than any "
                               "number procore-setup writes (another client wrote it). Nothing was sent to Procore, "
                               "and nothing was changed.",
                               hint=f"Correct or delete {self.key('document')} if the store is procore-setup's.")
        if status != "ok" or len(reply) < 4 or len(reply) % 2:
            raise StoreRefused(f"{where} answered a read with something procore-setup cannot use.",
                               hint="Check that the URL names a Redis server. Nothing was changed.")
        version_text, schema_text, settings_text = (_text(v) for v in reply[1:4])
        if schema_text and not (schema_text.isascii() and schema_text.isdigit() and len(schema_text) <= 9):
            raise StoreRefused(
                f"{where}: the schema in {self.key('document')} is {shown(schema_text, 24)!r}, which procore-setup "
                "never writes (another client wrote it). Nothing was sent to Procore, and nothing was changed.",
                hint=f"Correct it (HSET {self.key('document')} schema {STORE_SCHEMA}) if the store is procore-setup's.")
        if schema_text and int(schema_text) > STORE_SCHEMA:
            raise StoreRefused(
                f"{where} was written by a newer procore-setup (store schema {schema_text}; this one "
                f"knows {STORE_SCHEMA}).",
                hint="Upgrade procore-setup (pip install -U 'procore-setup[redis]'). Nothing was changed.",
            )
        version = version_of(version_text) if version_text else 0
        odd: str | None = None
        if version is None:
            if not self._lenient_version:
                raise self._bad_version(repr(version_text), f"redis-cli -n DB HSET {shell_quote(self.key('document'))} "
                                        "version 1000000  (then run the command again)")
            version, odd = -1, version_text  # matched as text by the save over it (see _write)
        settings = self._object(settings_text, self.key("document")) if settings_text else None
        profiles: dict[str, dict[str, Any]] = {}
        for i in range(4, len(reply), 2):
            name, value = _text(reply[i]), reply[i + 1]
            if value is None:
                continue  # listed, but its key is gone (evicted, deleted by hand): a profile that vanished
            profiles[name] = self._object(_text(value), self.key("profile:" + name))
        return Revision(version, settings, profiles, odd)

    def _object(self, text: str, key: str) -> dict[str, Any]:
        try:
            value = decode(text)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise StoreRefused(f"The Redis store {self.describe()}: the key {self.scrub(key)!r} does not hold a JSON "
                               "object.", hint="Correct or delete that key.")
        return value

    @guarded
    def _write(self, expect: int, new: int, settings: dict[str, Any], upserts: dict[str, dict[str, Any]],
               deletes: list[str], *, create: bool, expect_text: str | None = None) -> bool:
        client = self._data()
        expected = expect_text if expect_text is not None else str(expect)
        args: list[Any] = [self.prefix, expected, str(new), STORE_SCHEMA, encode(settings), _token(),
                           time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), len(upserts)]
        for name, fields in upserts.items():
            args += [name, encode(fields)]
        args += deletes
        try:
            done = self._run(client, "write", _WRITE, [self.key("document"), self.key("profiles")], args, "saving")
        except StoreUnavailable:
            self._drop_connection()
            raise
        if done == -1:
            raise StoreRefused(
                f"The Redis store {self.describe()} was written by a newer procore-setup meanwhile; it was not changed.",
                hint="Upgrade procore-setup (pip install -U 'procore-setup[redis]').",
            )
        return done in (1, 2)

    @contextlib.contextmanager
    def _hold_lock(self, timeout: float) -> Iterator[None]:
        # Its own connections (the renewal thread uses them too), ended here when the block ends, or by
        # close() from this thread; never by another thread's close(), which would cut them under this
        # one mid-command.
        client = self._connect()
        key, token, lease_ms = self.key("lock"), _token(), max(1, int(self.lease * 1000))
        try:
            self._acquire(client, key, token, lease_ms, timeout)
            with self._held(client.connection_pool.disconnect) as ended:  # set at the block's end, or close()
                keeper = threading.Thread(target=self._keep, args=(client, key, token, lease_ms, ended),
                                          name="procore-setup lease", daemon=True)
                keeper.start()
                try:
                    yield
                finally:
                    ended.set()
                    keeper.join(READ_TIMEOUT)
                    with contextlib.suppress(Exception):  # unreachable: the lease runs out on its own
                        self._run(client, "release", _RELEASE, [key], [token], "releasing the lock")
        finally:
            with contextlib.suppress(Exception):
                client.connection_pool.disconnect()

    def _acquire(self, client: Any, key: str, token: str, lease_ms: int, timeout: float) -> None:
        """Take the lock, polling with backoff for at most `timeout` seconds. A server that is down
        meanwhile (restarting) is waited for too, within the same bound."""
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            lost: Exception | None = None
            try:
                if client.set(key, token, nx=True, px=lease_ms) or _text(client.get(key)) == token:
                    return  # ours (the second test: a SET that landed but whose answer was lost)
            except self._redis.RedisError as exc:
                lost = self._error(exc, "waiting for the lock")
                if not isinstance(lost, StoreUnavailable):
                    raise lost from None
            except _TORN as exc:
                lost = self._torn(exc, "waiting for the lock")
            if lost is None:
                self._check_lock_key(client, key)
            left = deadline - time.monotonic()
            if left <= 0:
                if lost is not None:
                    raise lost
                raise self._lock_timeout(timeout)
            import random  # here, not on the fast path of `token`

            time.sleep(min(left, delay * random.uniform(0.5, 1.0)))
            delay = min(delay * 1.5, 0.25)

    def _torn(self, exc: BaseException, doing: str) -> StoreUnavailable:
        """What redis-py raising a builtin error means (a connection closed under the command: a
        socket gone, a reader set to None): a dropped connection, said as one (exit 5)."""
        error = self._say("unreachable", f"the connection was closed during the command ({type(exc).__name__})", doing)
        assert isinstance(error, StoreUnavailable)
        return error

    def _check_lock_key(self, client: Any, key: str) -> None:
        """The lock is taken: refuse now (exit 6, naming the key and how to remove it) if what holds
        it is no lease of this program's: a key without an expiry (another client's SET, a PERSIST)
        would block every refresh forever, and the message would blame another procore-setup."""
        try:
            ttl = client.pttl(key)
            value = _text(client.get(key)) if ttl == -1 else ""
        except (self._redis.RedisError, *_TORN):
            return  # the wait goes on; an unreachable server is said by the next try
        if ttl != -1:
            return  # a lease that runs out (or gone already): wait for it
        ours = len(value) == 32 and all(c in "0123456789abcdef" for c in value)
        db = self._options.get("db", 0)
        raise StoreRefused(
            f"The lock key {self.scrub(key)!r} of the Redis store {self.describe()} has no expiry, so it would "
            "block every refresh forever: procore-setup only ever takes it with one"
            + (" (a PERSIST or a restore removed it)" if ours else ", so another client wrote it") + ".",
            hint=f"If no procore-setup run is working on this store, remove it: redis-cli -n {db} DEL "
            f"{shell_quote(key)} (with the store's host, port and password). Nothing was changed.",
        )

    def _keep(self, client: Any, key: str, token: str, lease_ms: int, ended: threading.Event) -> None:
        """While the lock is held: extend the lease every third of it, until the block ends or the
        store is closed (then the lease runs out on its own unless the block releases it first).
        Stops early when the lease turns out to be gone (another run has the lock now: the version
        check of each save protects the store from what this run still holds). Never dies on an
        error: a renewal that fails is tried again at the next tick, and if none succeeds the lease
        runs out, so the holder's save is refused by the fence."""
        import logging

        while not ended.wait(self.lease / 3):
            try:
                if not self._script(client, "extend", _EXTEND)(keys=[key], args=[token, lease_ms], client=client):
                    self.lease_lost = True
                    return
            except (self._redis.RedisError, *_TORN):
                continue  # the server is unreachable for now, or the connection was cut: the next tick
            except Exception as exc:  # noqa: BLE001 - no thread may end on a traceback, unsaid
                self.lease_lost = True
                logging.getLogger("procore_setup.stores").warning(
                    "procore-setup: the lease on the lock of the Redis store %s could not be renewed (%s): it runs "
                    "out in at most %g s, and a save after that is refused.", self.describe(), type(exc).__name__,
                    self.lease)
                return

    @guarded
    def server_identity(self) -> tuple[str, ...]:
        """What names this store however its URL is spelt (/00 for /0, another name of the host):
        the server's run id, the database number and the key prefix."""
        try:
            run_id = _text(self._data().info("server").get("run_id"))
        except self._redis.RedisError as exc:
            raise self._error(exc, "asking which server it is") from None
        return ("redis", run_id, str(int(self._options.get("db", 0) or 0)), self.prefix)

    @guarded
    def _prepare_write(self) -> None:
        if self._ready:
            return
        self._run(self._data(), "probe", _PROBE, [self.key("probe")], [], "checking that it may write")
        self._ready = True

    def schema_sql(self) -> str:
        return f"-- {self.url} needs no schema: its keys are made on first use."

    def url_identity(self) -> tuple[frozenset[str], tuple[Any, ...]] | None:
        """The host's addresses and (port, database, key prefix) as the URL spells them (/00 is /0)."""
        from urllib.parse import unquote

        try:
            parts = urlsplit(self.url)
            port = parts.port
        except ValueError:
            return None
        path = unquote(parts.path.lstrip("/"))
        if path.isdigit():
            path = str(int(path))
        host = unquote(parts.hostname or "") or "localhost"
        port = port or 6379
        return host_addresses(host, port), (port, path or "0", self.prefix)

    @guarded
    def init(self) -> str:
        """`store init`: nothing to create (keys are made on first use); check this user may write."""
        self._ready = False
        self._prepare_write()
        self._read()
        note = self.durability_note()
        return (f"{self.describe()} is ready: its keys (under {self.prefix}) are made on first use, and this user "
                "may read and write them." + (f" Note: {note}" if note else ""))

    # -- durability -------------------------------------------------------------------
    def durability_note(self) -> str | None:
        """A sentence when this server may lose what it holds (no persistence, eviction), else None.
        Never raises: a server that hides its configuration gets a note that says so."""
        if self._note is None:
            self._note = (self._durability(),)
        return self._note[0]

    @guarded
    def _durability(self) -> str | None:
        client = self._data()
        try:
            info = client.info("persistence")
            memory = client.info("memory")
        except self._redis.RedisError:
            return None  # INFO disabled (renamed away): nothing to say, and nothing to crash on
        notes = []
        if str(info.get("aof_enabled", "0")) != "1":
            save: str | None
            try:
                found = client.config_get("save")
                save = _text(found.get("save", found.get(b"save", b"")))
            except self._redis.RedisError:
                save = None  # CONFIG is disabled on many managed services
            if save == "":
                notes.append("this Redis server saves nothing to disk (no AOF, no RDB snapshots): a restart loses "
                             "every profile, and each needs a new login")
            elif save is None:
                notes.append("this Redis server has AOF off, and hides whether it takes RDB snapshots: check that it "
                             "persists its data, or a restart loses the profiles")
            else:
                notes.append("this Redis server takes RDB snapshots but has AOF off: a restart loses tokens refreshed "
                             "since the last snapshot, and their chains need a new login (turn on appendonly)")
        policy = str(memory.get("maxmemory_policy", "noeviction"))
        if policy.startswith("allkeys"):
            notes.append(f"its maxmemory-policy is {self.scrub(policy)}, so it may evict procore-setup's keys when "
                         "memory runs short (use noeviction or a volatile-* policy)")
        if not notes:
            return None
        text = "; ".join(notes) + "."
        return text[0].upper() + text[1:]


def _text(value: Any) -> str:
    """A reply as text (redis-py hands bytes back); bytes that are not UTF-8 are not ours."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# What a Redis error means, in one table (as httpx's map_exceptions), for redis-py's exceptions and
# the fast path's error replies alike. Each row: how it is recognised, and its meaning (see
# RedisStore._say). First match wins: a redis-py class (by name: the module is imported only when
# used; "SSLError" stands for a connection error caused by the TLS layer), else an error reply's
# code (its first word), else words of a reply whose code is the catch-all ERR, which redis-py's
# own parser also tells apart only by its words (its EXCEPTION_CLASSES["ERR"]).
# What _READ returns: one flat list of at most this many values (bytes, integers, nil).
_READ_ITEMS = 4 + 2 * MAX_ROWS
# SHA-1 of _READ, for EVALSHA on the fast path without importing hashlib there (tests check it).
_READ_SHA = "f663fb64e053b8dc011d2da74eaedcda77a0d25e"


def _token() -> str:
    """A random value naming this writer (lock owner, save): `secrets` only when writing."""
    import secrets

    return secrets.token_hex(16)
# What redis-py raises, besides its own errors, when a connection is closed under a command (its
# socket file closed: ValueError; its reader gone: AttributeError; the socket itself: OSError).
_TORN: tuple[type[Exception], ...] = (ValueError, AttributeError, OSError)
_SCALARS = (bytes, int, type(None))

_ERRORS: tuple[tuple[str, str, str], ...] = (
    ("class", "AuthenticationError", "login"),
    ("class", "InvalidResponse", "junk"),  # the parser's protocol error (hiredis' or redis-py's own)
    ("class", "NoPermissionError", "permission"),
    ("class", "ReadOnlyError", "readonly"),
    ("class", "OutOfMemoryError", "oom"),
    ("class", "SSLError", "tls"),
    ("class", "ConnectionError", "unreachable"),  # BusyLoadingError (LOADING) is one
    ("class", "TimeoutError", "unreachable"),
    ("code", "WRONGPASS", "login"),
    ("code", "NOAUTH", "login"),
    ("code", "NOPERM", "permission"),
    ("code", "READONLY", "readonly"),
    ("code", "OOM", "oom"),
    ("code", "LOADING", "unreachable"),
    ("code", "WRONGTYPE", "wrongtype"),
    ("words", "invalid password", "login"),
    ("words", "invalid username-password", "login"),
    ("words", "without any password", "login"),  # AUTH to a server that has none
    ("words", "no password is set", "login"),
    ("words", "max number of clients reached", "unreachable"),
    ("words", "can't run this command", "permission"),
    ("words", "no permissions to", "permission"),  # a command refused inside a script
    ("words", "unknown command", "no scripts"),
    ("words", "scripting", "no scripts"),
)
# The codes redis-py drops from an error reply's text when it turns them into its class: the fast
# path drops them too, so a message reads the same whichever way the store was read.
_CODES_REDIS_PY_DROPS = frozenset({"ERR", "OOM", "WRONGPASS", "EXECABORT", "LOADING", "NOSCRIPT", "READONLY",
                                   "NOAUTH", "NOPERM"})


def _meaning(classes: set[str], code: str, text: str) -> str:
    """The meaning _ERRORS gives an error: its classes' names, its reply code and its text."""
    low = text.lower()
    for how, what, meaning in _ERRORS:
        if (how == "class" and what in classes) or (how == "code" and code == what) or \
                (how == "words" and what.lower() in low):
            return meaning
    return "failed"


def _tls_failure(exc: BaseException) -> bool:
    """Whether a connection error was caused by the TLS layer (a certificate, a protocol mismatch):
    redis-py raises its ConnectionError from the ssl module's error."""
    import ssl

    seen: BaseException | None = exc
    for _ in range(10):
        seen = seen.__cause__ or seen.__context__ if seen is not None else None
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
    return False


def _fast_path() -> bool:
    from .resp import available

    return available()
