"""The shared store on PostgreSQL: one table, one row per profile plus one for the settings.

The lock is a transaction-level advisory lock held by a connection of its own for as long as
the refresh runs (read, decide, mark in flight, ask Procore, save): no other host can hold it
at the same time, `lock_timeout` bounds the wait, and it goes away with its connection, so a
killed holder never leaves it behind. Reads and writes go through a second connection in
autocommit mode, so the in-flight mark is committed before the request goes out. Every write
is one transaction that first moves the document row's version from the one this run read
(compare-and-set): a holder that lost its lock (its connection was terminated, the server
restarted) can never overwrite what the next holder saved.

psycopg 3 is imported here, and this module only when the store is a postgresql:// URL.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from ..errors import LibpqFailure, StoreRefused, StoreUnavailable, UsageError
from .. import hints
from .rows import (
    host_addresses,
    EMPTY,
    MAX_DOCUMENT_BYTES,
    MAX_ROWS,
    STORE_SCHEMA,
    Revision,
    SharedStore,
    decode,
    encode,
    guarded,
    version_of,
)

TABLE = "procore_setup"
CONNECT_TIMEOUT = 10  # seconds, unless the URL gives connect_timeout
# A server that takes our bytes and never answers (stopped, or behind a stalled proxy) must not
# hold a run forever: every statement gets this long, then its socket is shut (see _deadline).
STATEMENT_DEADLINE = 30.0
STATEMENT_DEADLINE_ENV = "PROCORE_SETUP_STORE_TIMEOUT"  # seconds: that deadline, for a slow link (or a test)
# The lock lives in a transaction that sits idle while Procore answers; if its host vanishes
# without closing the connection (a crash, a partition), the server ends it after this long
# instead of keeping every other host waiting for TCP to notice (hours). A live holder that
# takes longer loses the lock, which the version fence makes safe.
LOCK_IDLE_LIMIT_MS = 60000
WRITE_LOCK_TIMEOUT_MS = 10000  # a writer stopped inside its transaction holds the document row
LOCK_CLASS = 1347571523  # the advisory lock's first key ("PROC"); the second is hashtext(TABLE)

SCHEMA_SQL = f"""\
-- procore-setup's shared credentials store (schema {STORE_SCHEMA}). One row per profile
-- (kind 'profile'), plus one (kind 'document', name '') for the default profile, the
-- encryption parameters and the version that every save checks.
CREATE TABLE IF NOT EXISTS {TABLE} (
    kind           text        NOT NULL CHECK (kind IN ('document', 'profile')),
    name           text        NOT NULL,
    fields         jsonb       NOT NULL,
    version        bigint      NOT NULL,
    schema_version integer     NOT NULL DEFAULT {STORE_SCHEMA},
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, name)
);
"""

GRANT_SQL = f"""\
-- The role that cron jobs and scripts use needs these rights on this one table, and no others:
-- GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO the_runtime_role;
"""

MAX_NAME_BYTES = 1000  # a profile's name; a longer one is not ours, and is not downloaded

# Whose table it is, asked of the table the role finds through its search_path: one this role owns
# (or a role it belongs to), or the database's owner, or a superuser. Any other owner (a role with
# CREATE on a schema in the path, which made `procore_setup` first) would read every secret, and
# its triggers would run as this role: such a table is refused, before anything is read or written.
_OWNER = f"""SELECT pg_has_role(c.relowner, 'MEMBER')
       OR c.relowner = (SELECT datdba FROM pg_database WHERE datname = current_database())
       OR (SELECT rolsuper FROM pg_roles WHERE oid = c.relowner),
       n.nspname, pg_get_userbyid(c.relowner)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = '{TABLE}'::regclass"""

# The read: the table's owner check, then the rows. Sizes are measured by the server and a row's
# text is sent only while the running total stays under the cap (a table of 400 rows of 1 MB
# costs nothing here), and at most MAX_ROWS + 1 rows come back.
_SELECT = f"""SELECT o.*, r.kind, r.name, CASE WHEN r.total <= {MAX_DOCUMENT_BYTES} THEN r.fields END, r.size,
       r.version, r.schema_version
  FROM ({_OWNER}) o
  LEFT JOIN (SELECT left(kind, 20) AS kind,
                    CASE WHEN octet_length(name) <= {MAX_NAME_BYTES} THEN name END AS name,
                    fields::text AS fields, octet_length(fields::text) + octet_length(name) AS size,
                    sum(octet_length(fields::text) + octet_length(name))
                        OVER (ORDER BY kind, name ROWS UNBOUNDED PRECEDING) AS total,
                    version, schema_version
               FROM {TABLE} LIMIT {MAX_ROWS + 1}) r ON true"""


# The most _SELECT sends: the rows' text up to the cap, and per row its other columns (the owner
# check's names, the kind, a name of at most MAX_NAME_BYTES, numbers). A read that gets more is
# stopped there (a hostile server sending rows forever), never held whole.
_READ_BYTES = MAX_DOCUMENT_BYTES + (MAX_ROWS + 1) * (MAX_NAME_BYTES + 512)

WEAK_SSLMODES = {"disable", "allow", "prefer", "require", "verify-ca"}


def _tls_default(url: str, env: Any, shown_url: str) -> dict[str, str]:
    """{"sslmode": "verify-full"} when the URL reaches a host that is not this machine and neither
    it nor PGSSLMODE names a mode: libpq's own default (prefer) sends the password in clear to
    anything that refuses TLS and asks for it. A weaker mode named for such a host warns once."""
    from urllib.parse import unquote, unquote_plus

    from .rows import _loopback, split_url, tls_warning

    try:
        parts = split_url(url)
    except ValueError:
        return {}
    hosts: list[str] = []
    for entry in parts.hostport.split(","):
        entry = unquote(entry)
        if entry.startswith("["):
            hosts.append(entry[1:].split("]", 1)[0])
        elif entry:
            hosts.append(entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry)
    params: dict[str, str] = {}
    for pair in parts.query.split("&"):
        key, _, value = pair.partition("=")
        params[unquote_plus(key)] = unquote_plus(value)
    hosts += [h for h in params.get("host", "").split(",") if h]
    if not hosts:
        hosts += [h for h in env.get("PGHOST", "").split(",") if h]
    addresses = [a for a in (params.get("hostaddr") or env.get("PGHOSTADDR") or "").split(",") if a]
    remote = any(not _loopback(h) for h in hosts + addresses)
    mode = params.get("sslmode") or ("require" if params.get("requiressl") == "1" else "") or env.get("PGSSLMODE", "")
    if not remote:
        return {}
    if not mode:
        return {"sslmode": "verify-full"}
    if mode.lower() in WEAK_SSLMODES:
        tls_warning(f"the PostgreSQL store {shown_url} reaches another host with sslmode={mode[:20]}: the server's "
                    "name is not checked" + (", and the password may go in clear text" if mode.lower() in
                                             ("disable", "allow", "prefer") else "")
                    + " (procore-setup's default is sslmode=verify-full).")
    return {}


def _quoted(identifier: str) -> str:
    """An SQL identifier as written in a statement: bare when it is plainly one, else quoted."""
    plain = identifier[:1].isalpha() or identifier[:1] == "_"
    if plain and identifier.isascii() and identifier.islower() and identifier.replace("_", "").isalnum():
        return identifier
    return '"' + identifier.replace('"', '""') + '"'


class PostgresStore(SharedStore):
    """A PostgreSQL database that several hosts share. Built by `stores.open_store`."""

    kind = "PostgreSQL"
    driver_name, driver_extra = "psycopg", "postgres"
    password_sources = ("PGPASSWORD", "~/.pgpass")

    def __init__(self, url: str, *, environ: Any = None, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        import os

        from ..errors import env_seconds

        env = os.environ if environ is None else environ
        self.statement_deadline = env_seconds(STATEMENT_DEADLINE_ENV, STATEMENT_DEADLINE, 1, 600, environ=env)
        self._conn: Any = None
        self._ready = False  # the table is known to exist and be writable by this role
        self._table = TABLE  # schema-qualified once the owner check found it (see _check_owner)
        self._owner = ""
        self._tls = _tls_default(url, env, self.describe())  # {"sslmode": "verify-full"} or {}

    @property
    def _pg(self) -> Any:
        return self.driver

    def _readers(self) -> str:
        return f"any database role with rights on table {self._table}"

    def _check_owner(self, trusted: Any, schema: Any, owner: Any) -> None:
        """Refuse (exit 6) a table that a role this one does not trust made; else use it by its
        schema-qualified name from now on (a table made later earlier in the path is not taken)."""
        from ..checks import shown

        table = f"{_quoted(str(schema))}.{TABLE}"
        if trusted is not True:
            raise StoreRefused(
                f"The PostgreSQL store {self.describe()}: the table {shown(table, 120)} that this role finds is owned "
                f"by the role {shown(str(owner), 64)!r}, which is not this role, a role it belongs to, the database's "
                "owner or a superuser. Whoever owns it reads every secret written to it, and its triggers run as "
                "this role: procore-setup neither reads nor writes it. Nothing was sent to Procore.",
                hint=f"If the table is meant to be the store, have a superuser run: ALTER TABLE {shown(table, 120)} "
                "OWNER TO <this role>; else drop it, revoke CREATE on that schema from other roles, and run "
                f"{hints.command(self, 'store', 'init')} (or name a schema of this role's: ?options=-csearch_path%3DSCHEMA).",
            )
        self._table = table
        self._owner = str(owner)

    # -- connections -----------------------------------------------------------------
    def _connect(self, *, autocommit: bool) -> Any:
        kwargs: dict[str, Any] = {"autocommit": autocommit, "application_name": "procore-setup"}
        from .libpq import keepalives

        # dead peers found by TCP itself, with the options the libpq psycopg uses knows
        for key, value in {"connect_timeout": CONNECT_TIMEOUT, **keepalives(self._pg.pq.version())}.items():
            if key not in self._url:
                kwargs[key] = value
        kwargs.update(self._tls)
        try:
            return self._pg.connect(self._url, **kwargs)
        except self._pg.Error as exc:
            raise self._error(exc, "connecting") from None
        except ValueError:  # a URL libpq cannot parse: never echo it (it may hold the password)
            raise UsageError(
                f"The PostgreSQL store URL {self.describe()} does not parse.",
                hint="Use postgresql://USER@HOST:PORT/DATABASE (the password from PGPASSWORD or ~/.pgpass, or in the URL).",
            ) from None

    @guarded
    def _data(self) -> Any:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._drop_connection()
            self._conn = self._connect(autocommit=True)
        return self._conn

    @guarded
    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _error(self, exc: Any, doing: str) -> Exception:
        """The error a driver exception means, in words, without the password."""
        network = isinstance(exc, (self._pg.OperationalError, self._pg.InterfaceError))
        return self._failure(str(exc), getattr(exc, "sqlstate", None) or "", network, doing)

    def _failure(self, text: str, state: str, network: bool, doing: str) -> Exception:
        """The error that libpq's (or psycopg's) text and SQLSTATE mean (see _ERRORS), in words,
        without the password."""
        first = (text.strip().splitlines() or ["no message"])[0]
        detail = self.scrub(first)
        meaning = _meaning(state, first, network=network, connecting=doing == "connecting")
        where = f"The PostgreSQL store {self.describe()}"
        if meaning == "login":
            return StoreRefused(f"{where} refused the login: {detail}.",
                                hint="Check the user and password (in the URL, PGPASSWORD or ~/.pgpass). Nothing was changed.")
        if meaning == "no database":
            return StoreRefused(f"{where} names a database that does not exist: {detail}.",
                                hint="Check the database name in the URL, or create it (createdb). Nothing was changed.")
        if meaning == "no rights":
            return StoreRefused(
                f"{where} refused {doing}: this role has no rights on the table {self._table} ({detail}).",
                hint=f"As the table's owner, grant them: GRANT SELECT, INSERT, UPDATE, DELETE ON {self._table} TO <this role>; "
                f"({hints.command(self, 'store', 'init', '--print')} shows the SQL). Nothing was changed.",
            )
        if meaning == "bad url":  # libpq refused the URL itself (sslmode=bogus, an unknown parameter)
            return UsageError(f"{where}: the URL has something libpq refuses: {detail}.",
                              hint="Correct the URL (see libpq's connection URIs). Nothing was changed.")
        if meaning == "certificate":
            default = " (procore-setup asks for sslmode=verify-full to a host that is not this machine)" \
                if self._tls else ""
            return StoreRefused(f"{where}: the server's certificate could not be checked{default}: {detail}.",
                                hint="Give the server's CA with sslrootcert=PATH in the URL (or sslrootcert=system "
                                "for the system's CAs), or accept an unchecked server with sslmode=require (warned "
                                "on every run). Nothing was changed.")
        if meaning == "tls":
            return StoreRefused(f"{where}: {detail}.", hint="Check sslmode in the URL. Nothing was changed.")
        if meaning == "unreachable":
            return StoreUnavailable(
                f"{where} could not be reached, or dropped the connection, while {doing}: {detail}.",
                hint="Check that the server is up and reachable from here, then try again. Nothing was lost.",
            )
        return StoreRefused(f"{where} failed while {doing}: {detail}.",
                            hint=f"Check the store with: {hints.command(self, 'store', 'init', '--print')}. Nothing was changed.")

    # -- the primitives ----------------------------------------------------------------
    @guarded
    def _read(self) -> Revision:
        if self._conn is None and self._driver is None:
            fast = self._read_through_libpq()
            if fast is not None:
                return fast
        conn = self._data()
        try:
            with _deadline(conn, self.statement_deadline):
                rows = self._bounded(conn.cursor().stream(_SELECT))
        except self._pg.errors.UndefinedTable:
            self._ready = False
            return EMPTY
        except self._pg.Error as exc:
            if getattr(exc, "sqlstate", None) is None or isinstance(exc, self._pg.OperationalError):
                self._drop_connection()
            raise self._error(exc, "reading") from None
        return self._parse(rows)

    def _read_through_libpq(self) -> Revision | None:
        """The read of the fast path, without importing psycopg (see stores.libpq); None when no
        libpq can be loaded here (then psycopg reads)."""
        from . import libpq

        if not libpq.available():
            return None
        try:
            rows = libpq.read(self._url, _SELECT, connect_timeout=CONNECT_TIMEOUT, application_name="procore-setup",
                              deadline=self.statement_deadline, defaults=self._tls, max_bytes=_READ_BYTES,
                              max_rows=MAX_ROWS + 1, too_big=self._too_big)
        except LibpqFailure as exc:
            if exc.sqlstate == "42P01":  # undefined_table: no schema yet
                self._ready = False
                return EMPTY
            raise self._failure(exc.message, exc.sqlstate, exc.connecting or not exc.sqlstate,
                                "connecting" if exc.connecting else "reading") from None
        try:
            typed = [(trusted == "t", nsp, owner, kind, name, text, int(size or 0),
                      int(version) if version is not None else None, int(schema) if schema else None)
                     for trusted, nsp, owner, kind, name, text, size, version, schema in rows]
        except (TypeError, ValueError):
            raise StoreRefused(f"The PostgreSQL store {self.describe()} answered a read with values procore-setup "
                               f"cannot use (is {TABLE} its table?).", hint="Check the table. Nothing was changed.") from None
        return self._parse(typed)

    def _bounded(self, stream: Iterator[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The rows of a read, taken one at a time (psycopg's stream: libpq's single-row mode) and
        stopped, the connection dropped, past what _SELECT can send (the bound of the fast read)."""
        rows: list[tuple[Any, ...]] = []
        size = 0
        try:
            for row in stream:
                size += sum(len(v) for v in row if isinstance(v, str))
                rows.append(row)
                if size > _READ_BYTES or len(rows) > MAX_ROWS + 1:
                    self._drop_connection()
                    raise self._too_big()
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
        return rows

    def _too_big(self) -> StoreRefused:
        """What a read that held more than _SELECT can send is (a server that sends rows forever)."""
        return StoreRefused(f"The PostgreSQL store {self.describe()} holds more than {MAX_DOCUMENT_BYTES} bytes: far "
                            "too big for procore-setup.",
                            hint="Check that the URL names the right database. Nothing was changed.")

    def _parse(self, rows: list[tuple[Any, ...]]) -> Revision:
        where = f"The PostgreSQL store {self.describe()}"
        if len(rows) > MAX_ROWS:
            raise StoreRefused(f"{where} holds more than {MAX_ROWS} rows in {self._table}: far too many for procore-setup.",
                               hint="Check that the URL names the right database. Nothing was changed.")
        if rows:
            self._check_owner(*rows[0][:3])
        version, settings, profiles, total = 0, None, {}, 0
        for _, _, _, kind, name, text, size, row_version, schema in rows:
            if kind is None:
                continue  # the owner check's row of an empty table
            if name is None:
                raise StoreRefused(f"{where} holds a row in {self._table} whose name is longer than {MAX_NAME_BYTES} "
                                   "bytes: not procore-setup's.", hint="Delete that row. Nothing was changed.")
            if schema is not None and schema > STORE_SCHEMA:
                raise StoreRefused(
                    f"{where} was written by a newer procore-setup (store schema {schema}; this one knows {STORE_SCHEMA}).",
                    hint="Upgrade procore-setup (pip install -U 'procore-setup[postgres]'). Nothing was changed.",
                )
            total += size or 0
            if text is None or total > MAX_DOCUMENT_BYTES:
                raise StoreRefused(f"{where} holds more than {MAX_DOCUMENT_BYTES} bytes: far too big for procore-setup.",
                                   hint="Check that the URL names the right database. Nothing was changed.")
            try:
                value = decode(text)
            except ValueError:
                value = None
            if not isinstance(value, dict):
                raise StoreRefused(f"{where}: the row ({self.scrub(str(kind))}, {self.scrub(str(name))!r}) of {self._table} "
                                   "does not hold a JSON object.", hint="Correct or delete that row.")
            if kind == "document":
                sane = version_of(row_version)
                if sane is None and not (self._lenient_version and isinstance(row_version, int)):
                    raise self._bad_version(str(row_version), f"UPDATE {self._table} SET version = 1000000 WHERE "
                                            "kind = 'document';  (then run the command again)")
                version = sane if sane is not None else int(row_version)
                settings = value
            elif kind == "profile":
                profiles[name] = value
        return Revision(version, settings, profiles)

    @guarded
    def _write(self, expect: int, new: int, settings: dict[str, Any], upserts: dict[str, dict[str, Any]],
               deletes: list[str], *, create: bool, expect_text: str | None = None) -> bool:
        # (expect_text is for stores that keep the version as text: here it is a bigint, and even a
        # foreign one read leniently is matched by its value, `expect`)
        conn = self._data()
        try:
            with _deadline(conn, self.statement_deadline), conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = {WRITE_LOCK_TIMEOUT_MS}")
                if create:
                    cur = conn.execute(
                        f"INSERT INTO {self._table} (kind, name, fields, version, schema_version) "
                        "VALUES ('document', '', %s::jsonb, %s, %s) ON CONFLICT (kind, name) DO NOTHING",
                        (encode(settings), new, STORE_SCHEMA))
                else:
                    cur = conn.execute(
                        f"UPDATE {self._table} SET fields = %s::jsonb, version = %s, schema_version = %s, updated_at = now() "
                        "WHERE kind = 'document' AND name = '' AND version = %s",
                        (encode(settings), new, STORE_SCHEMA, expect))
                if cur.rowcount != 1:
                    raise _Stale
                if upserts:
                    conn.cursor().executemany(
                        f"INSERT INTO {self._table} (kind, name, fields, version, schema_version) "
                        "VALUES ('profile', %s, %s::jsonb, %s, %s) ON CONFLICT (kind, name) DO UPDATE "
                        "SET fields = EXCLUDED.fields, version = EXCLUDED.version, updated_at = now()",
                        [(name, encode(fields), new, STORE_SCHEMA) for name, fields in upserts.items()])
                if deletes:
                    conn.execute(f"DELETE FROM {self._table} WHERE kind = 'profile' AND name = ANY(%s)", (deletes,))
        except _Stale:
            return False
        except self._pg.Error as exc:
            err = self._error(exc, "saving")
            if isinstance(err, StoreUnavailable):
                self._drop_connection()
            raise err from None
        return True

    @contextlib.contextmanager
    def _hold_lock(self, timeout: float) -> Iterator[None]:
        # Its own connection: the lock lives in its transaction, and closing it (here, when the block
        # ends, or when this thread calls close() inside it) releases the lock. close() from another
        # thread leaves it alone: cut under the thread waiting on it, the wait would fail (libpq's
        # "connection pointer is NULL").
        conn = self._connect(autocommit=False)
        try:
            try:
                key = (LOCK_CLASS, TABLE)
                # first: the lock's own statement stays the session's last (what an operator sees)
                conn.execute(f"SET idle_in_transaction_session_timeout = {LOCK_IDLE_LIMIT_MS}")
                if timeout <= 0:
                    got = conn.execute("SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", key).fetchone()[0]
                    if not got:
                        raise self._lock_timeout(timeout)
                else:
                    with _deadline(conn, timeout + self.statement_deadline):
                        conn.execute(f"SET LOCAL lock_timeout = {max(1, int(timeout * 1000))}")
                        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", key)
            except self._pg.errors.LockNotAvailable:
                raise self._lock_timeout(timeout) from None
            except self._pg.Error as exc:
                raise self._error(exc, "waiting for the lock") from None
            with self._held(conn.close):
                yield
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    @guarded
    def _prepare_write(self) -> None:
        if self._ready:
            return
        conn = self._data()
        try:
            if conn.execute("SELECT to_regclass(%s) IS NULL", (TABLE,)).fetchone()[0]:
                self.create_schema()
            self._check_owner(*conn.execute(_OWNER).fetchone())
            rights = conn.execute(
                "SELECT " + " AND ".join(f"has_table_privilege(%s, '{p}')" for p in ("SELECT", "INSERT", "UPDATE", "DELETE")),
                (self._table,) * 4).fetchone()[0]
        except self._pg.Error as exc:
            raise self._error(exc, "checking the table") from None
        if not rights:
            raise StoreRefused(
                f"The PostgreSQL store {self.describe()}: this role may not read and write the table {self._table}.",
                hint=f"As the table's owner, grant it: GRANT SELECT, INSERT, UPDATE, DELETE ON {self._table} TO <this role>; "
                "Nothing was changed.",
            )
        self._ready = True

    @guarded
    def server_identity(self) -> tuple[str, ...]:
        """What names this database however its URL is spelt (a Unix socket, hostaddr=, a host
        given twice): the server's start time and port, and the database's name."""
        conn = self._data()
        try:
            row = conn.execute("SELECT pg_postmaster_start_time()::text, current_setting('port'), "
                               "current_database()").fetchone()
        except self._pg.Error as exc:
            raise self._error(exc, "asking which server it is") from None
        return ("postgres", *(str(v) for v in row))

    def url_identity(self) -> tuple[frozenset[str], tuple[Any, ...]] | None:
        """The host's addresses and (port, database) as libpq would read the URL, with the
        environment's defaults (PGHOST, PGPORT, PGUSER, PGDATABASE) where the URL is silent."""
        import os
        from urllib.parse import parse_qsl, unquote, urlsplit

        try:
            parts = urlsplit(self.url)
            port = parts.port
            query = dict(parse_qsl(parts.query))
        except ValueError:
            return None
        path = unquote(parts.path.lstrip("/"))
        env = os.environ
        host = query.get("host") or unquote(parts.hostname or "") or env.get("PGHOST") or "/tmp"
        port = port or _int(query.get("port")) or _int(env.get("PGPORT")) or 5432
        user = unquote(parts.username or "") or query.get("user") or env.get("PGUSER") or _os_user()
        database = path or query.get("dbname") or env.get("PGDATABASE") or user
        return host_addresses(host, port), (port, database, None)

    def schema_sql(self) -> str:
        """The SQL `store init --print` prints, for a database owner to run."""
        return SCHEMA_SQL + GRANT_SQL

    @guarded
    def init(self) -> str:
        """`store init`: create the table if it is missing, and check this role may use it."""
        created = self.create_schema()
        self._ready = False
        self._prepare_write()
        from ..checks import shown

        return ((f"Created the table {self._table} in {self.describe()}." if created else
                 f"{self.describe()} has the table {self._table} already.")
                + f" It is owned by the role {shown(self._owner, 64)!r}, which this role trusts (itself, a role it "
                "belongs to, the database's owner or a superuser); a table of any other owner would be refused. "
                "This role may read and write it.")

    @guarded
    def create_schema(self) -> bool:
        """Create the table if it is missing; True if this call created it."""
        conn = self._data()
        try:
            if not conn.execute("SELECT to_regclass(%s) IS NULL", (TABLE,)).fetchone()[0]:
                return False
            with conn.transaction():
                conn.execute(SCHEMA_SQL)
        except (self._pg.errors.DuplicateTable, self._pg.errors.UniqueViolation):
            return False  # another host made it at the same moment
        except self._pg.errors.InsufficientPrivilege:
            raise StoreRefused(
                f"The PostgreSQL store {self.describe()} has no {TABLE} table yet, and this role may not create it.",
                hint=f"Have the database's owner run the SQL that `{hints.command(self, 'store', 'init', '--print')}` prints "
                f"(or run `{hints.command(self, 'store', 'init')}` as a role that may). Nothing was changed.",
            ) from None
        except self._pg.Error as exc:
            raise self._error(exc, "creating the table") from None
        return True


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name to be had: libpq would fail the same way
        return ""


@contextlib.contextmanager
def _deadline(conn: Any, seconds: float) -> Iterator[None]:
    """Shut the connection's socket if the block takes longer than `seconds`: the blocked call then
    fails as a dropped connection (exit 5, or a reconnect and retry), instead of waiting forever on
    a server that stopped answering. psycopg has no read timeout of its own."""
    from .libpq import shutdown_later

    with shutdown_later(conn.pgconn.socket, seconds):
        yield


# What a PostgreSQL error means, in one table (as httpx's map_exceptions), for psycopg's exceptions
# and the fast path's LibpqFailure alike. Each row: a SQLSTATE (a class, its first two characters,
# or a whole code; "" for any), words that must all be in the first line of the message (each a
# choice of "|"-separated ones), when it applies ("network": an OperationalError or a libpq failure
# without a server's answer; "url": such a failure while connecting, with no SQLSTATE), and its
# meaning (see PostgresStore._failure). First match wins. Words only where there is no SQLSTATE to
# go by: a connection refused by the server reaches libpq as text alone (PQerrorMessage), and
# libpq's own refusals (a URL it cannot take, a certificate) never had one.
_ERRORS: tuple[tuple[str, tuple[str, ...], str, str], ...] = (
    ("28", (), "", "login"),  # invalid_authorization_specification, invalid_password
    ("", ("password authentication failed",), "", "login"),
    ("", ("no password supplied",), "", "login"),
    ("", ("role", "does not exist"), "", "login"),
    ("3D000", (), "", "no database"),  # invalid_catalog_name
    ("", ("database", "does not exist"), "", "no database"),
    ("42501", (), "", "no rights"),  # insufficient_privilege
    ("", ("invalid", "value|option|uri|parameter|connection string"), "url", "bad url"),
    ("", ("root certificate",), "", "certificate"),
    ("", ("certificate", "verif"), "", "certificate"),
    ("", ("ssl", "required"), "", "tls"),
    ("", (), "network", "unreachable"),
    ("08", (), "", "unreachable"),  # connection_exception
    ("57", (), "", "unreachable"),  # operator_intervention: admin_shutdown, a terminated backend
    ("53", (), "", "unreachable"),  # insufficient_resources: too many connections, disk full
)


def _meaning(state: str, text: str, *, network: bool, connecting: bool) -> str:
    """The meaning _ERRORS gives an error with this SQLSTATE and first line."""
    low = text.lower()
    for prefix, words, when, meaning in _ERRORS:
        if prefix and not state.startswith(prefix):
            continue
        if when == "network" and not network:
            continue
        if when == "url" and (state or not network or not connecting):
            continue
        if all(any(w in low for w in choice.split("|")) for choice in words):
            return meaning
    return "failed"


class _Stale(Exception):
    """The document row no longer holds the version this run read: roll back, write nothing."""
