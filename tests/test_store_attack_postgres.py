"""Issue 17: the PostgreSQL store attacked, through the real executable and a real server.

A hostile database user (another role on the same database), a careless operator (a URL that
libpq and Python read differently, a Unix-socket URL, a secret in a URL parameter) and a foreign
write into the store's rows (a version the program never writes). Each test runs `procore-setup`
in subprocesses on "hosts" sharing one fresh database (tests/servers.py) and the fake Procore
over HTTP, and fails without its fix (each was checked against the code before it).
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from helpers.cli import EXE, base_env
from helpers.engine import wait_for
from helpers.stores import hold_answers, Shared

FAKE_ROLE_PASSWORD_CHARS = "abcdefghijkmnpqrstuvwxyz23456789"


def _db(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?", 1)[0]


def _role(pg_server: Any, db: str, password: str, secret_guard: Any, *, name: str | None = None,
          create_on_public: bool = False) -> str:
    """A new login role that may connect to `db`; its name. Dropped with the database."""
    from psycopg import sql

    role = name or f"r_{secrets.token_hex(4)}"
    secret_guard.add(password, "a PostgreSQL role's password")
    pg_server.superuser_sql(None, sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
        sql.Identifier(role), sql.Literal(password)))
    pg_server._roles.setdefault(db, []).append(role)  # noqa: SLF001 - dropped with the database
    pg_server.superuser_sql(None, sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
        sql.Identifier(db), sql.Identifier(role)))
    if create_on_public:
        pg_server.superuser_sql(db, sql.SQL("GRANT CREATE, USAGE ON SCHEMA public TO {}").format(sql.Identifier(role)))
    return role


def _run(host: Any, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return host.run(*args, env=env, timeout=timeout)


# -- 1. a password that holds an unencoded `?` ---------------------------------------------------------

@pytest.mark.parametrize("shape", ["?{}", "pw12?{}", "user?"])
def test_a_url_whose_password_holds_a_question_mark_is_refused_without_showing_it(
        pg: Shared, pg_server: Any, secret_guard: Any, tmp_path: Path, shape: str) -> None:
    """libpq reads `qrole:?Secret@host` as user and password; urlsplit stops the host part at `?`,
    so the URL "without its password" showed the password. Now: exit 2, the URL never echoed, for
    every command that shows the store, and `store move` writes no tombstone naming it."""
    tail = secrets.token_urlsafe(12).replace("-", "x").replace("_", "y")
    db = _db(pg.url)
    if shape == "user?":
        password = "Pw" + tail
        role = _role(pg_server, db, password, secret_guard, name=f"q?{tail[:6]}")
        secret_guard.add(tail[:6], "the part of a user name after its `?`")
        url = f"postgresql://{role}:{password}@127.0.0.1:{pg_server.port}/{db}"
    else:
        password = shape.format("Secret" + tail)
        _role(pg_server, db, password, secret_guard, name="qrole_" + tail[:6].lower())
        url = f"postgresql://qrole_{tail[:6].lower()}:{password}@127.0.0.1:{pg_server.port}/{db}"
    one, two = pg.hosts
    one.login()
    before = pg.profile()
    for args in (("status",), ("status", "--json"), ("token",), ("refresh", "--all"), ("store", "init")):
        r = two.run(*args, env={"PROCORE_SETUP_STORE": url})
        assert r.returncode == 2, (args, r.stderr)
        assert "percent-encoded" in r.stderr and "not shown" in r.stderr, r.stderr
        assert "Secret" not in r.stdout + r.stderr and tail not in r.stdout + r.stderr
    # a move into such a URL: refused before anything is written, no tombstone names it
    r = one.run("store", "move", "--all", "--to", url)
    assert r.returncode == 2, r.stderr
    assert pg.profile() == before
    assert tail not in pg.raw()
    # the same password percent-encoded works, and is shown nowhere
    good = url.replace(password, quote(password, safe=""), 1).replace(url.split("://")[1].split(":")[0],
                                                                          quote(url.split("://")[1].split(":")[0], safe=""), 1)
    r = two.run("status", "--json", env={"PROCORE_SETUP_STORE": good})
    assert r.returncode in (0, 6), r.stderr  # this role has no rights on the table: exit 6, said so
    assert "Secret" not in r.stdout + r.stderr


# -- 3 and 10. a version the program never writes ------------------------------------------------------

def _set_version(pg_server: Any, url: str, version: int) -> None:
    pg_server.superuser_sql(url, "UPDATE procore_setup SET version = %s WHERE kind = 'document'", (version,))


@pytest.mark.parametrize("version", [-1, 0, (1 << 62) + 5])
def test_a_foreign_version_is_exit_6_before_anything_is_sent(pg: Shared, pg_server: Any, version: int) -> None:
    """A document row at version -1 (a foreign write, a bad restore): the in-flight mark moved it
    to 0, the new pair's save was taken for the first insert and failed: "the new tokens are lost".
    Now it is exit 6 at the read, before the mark and before Procore is asked."""
    one, two = pg.hosts
    one.login()
    pg.expire()
    _set_version(pg_server, pg.url, version)
    sent = dict(pg.fake.counts)
    r = two.run("token")
    assert r.returncode == 6, r.stderr
    assert "never writes" in r.stderr and "Nothing was sent to Procore" in r.stderr, r.stderr
    assert "UPDATE public.procore_setup SET version" in r.stderr
    assert dict(pg.fake.counts) == sent
    assert pg.fake.refresh_token_state(pg_server.superuser_sql(
        pg.url, "SELECT fields->>'refresh_token' FROM procore_setup WHERE kind = 'profile'")[0][0]) == "active"
    # the hint's fix works
    _set_version(pg_server, pg.url, 1000000)
    assert two.run("token").returncode == 0


def test_a_version_spoilt_while_procore_answers_does_not_lose_the_pair(pg: Shared, pg_server: Any) -> None:
    """The save after Procore answered must not depend on the version being sane: a -1 written
    while the request is out makes the save's compare-and-set fail, and the last-resort save goes
    over it (with a version above both) instead of losing the pair."""
    one, two = pg.hosts
    one.login()
    pg.expire()
    held = pg.profile()["refresh_token"]
    release = hold_answers(pg.fake)
    proc = two.popen("token")
    try:
        wait_for(lambda: pg.fake.refresh_token_state(held) == "used", what="Procore to use the refresh token",
                 timeout=30)
        _set_version(pg_server, pg.url, -1)
    finally:
        release.set()
    r = two.collect(proc)
    assert r.returncode == 0, r.stderr
    rows = pg_server.superuser_sql(pg.url, "SELECT version, fields->>'refresh_token' FROM procore_setup "
                                   "WHERE kind = 'document' OR kind = 'profile' ORDER BY kind")
    assert rows[0][0] >= 1, rows
    assert pg.fake.refresh_token_state(rows[1][1]) == "active"
    assert one.run("token").returncode == 0


# -- 8. a Unix-socket URL -----------------------------------------------------------------------------

def test_a_unix_socket_url_is_shown_and_printed_so_that_the_printed_commands_run(pg: Shared, pg_server: Any,
                                                                                tmp_path: Path) -> None:
    """`postgresql:///db?host=/run/postgresql` was shown as `postgresql:/db?...`: the printed cron
    line then failed with exit 3, and `store move` printed `--config 'postgresql:/...'`."""
    url = f"postgresql:///{_db(pg.url)}?host={pg_server.dir}&port={pg_server.port}&user=app"
    env = {"PROCORE_SETUP_STORE": url, "PGPASSWORD": pg_server.app_password}
    one, two = pg.hosts
    r = one.login()  # through the TCP URL; the socket URL names the same database
    r = one.run("status", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["store"] == url
    # the cron line printed by a login through the socket URL runs as printed
    fake = pg.fake
    from helpers.cli import CLIENT_ID, CLIENT_SECRET

    r = two.run("login", "--plain", "--profile", "sock", "--environment", "custom", "--login-url", fake.url,
                "--api-url", fake.url, "--client-id", CLIENT_ID, "--code=" + fake.issue_code(), input="1\n",
                env=dict(env, PROCORE_CLIENT_SECRET=CLIENT_SECRET))
    assert r.returncode == 0, r.stderr
    cron = next(line for line in r.stdout.splitlines() if "refresh --profile" in line).strip()
    command = cron.split(" ", 5)[5].replace("\\%", "%")
    assert "postgresql:///" in command and "--config" not in command
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60,
                          env=base_env(HOME=str(tmp_path), PATH=str(Path(EXE).parent) + ":/usr/bin:/bin",
                                       PGPASSWORD=pg_server.app_password))
    pg.check(done, token=False)
    assert done.returncode == 0, done.stderr
    # a move out of the socket URL prints a --store that names it, never --config
    elsewhere = tmp_path / "elsewhere" / "credentials.toml"
    r = two.run("--store", str(elsewhere), "store", "move", "--profile", "sock", "--to", url,
                env={"PROCORE_SETUP_STORE": "", "PGPASSWORD": pg_server.app_password})
    assert r.returncode in (0, 3), r.stderr
    r = two.run("store", "move", "--profile", "sock", "--to", str(elsewhere), env=env)
    assert r.returncode == 0, r.stderr
    assert "--config 'postgresql:" not in r.stdout + r.stderr
    gone = two.run("token", "--profile", "sock", env=env)
    assert gone.returncode == 3 and str(elsewhere) in gone.stderr


# -- 9. a secret-bearing URL parameter ------------------------------------------------------------------

def test_sslpassword_is_never_shown_nor_stored_in_a_tombstone(pg: Shared, tmp_path: Path, secret_guard: Any) -> None:
    """`sslpassword=` (a client key's passphrase) was shown in `status` and written into the
    tombstone that `store move` leaves in the source."""
    phrase = "keyphrase" + secrets.token_hex(8)
    secret_guard.add(phrase, "an sslpassword in the store URL")
    url = pg.url + f"?sslpassword={phrase}&application_name=x"
    one, _ = pg.hosts
    r = one.run("status", "--json", env={"PROCORE_SETUP_STORE": url})
    assert r.returncode == 3, r.stderr  # nothing in it yet: said without the phrase
    source = tmp_path / "src" / "credentials.toml"
    env = {"PROCORE_SETUP_STORE": str(source)}
    fake = pg.fake
    from helpers.cli import CLIENT_ID, CLIENT_SECRET

    r = one.run("login", "--plain", "--profile", "default", "--environment", "custom", "--login-url", fake.url,
                "--api-url", fake.url, "--client-id", CLIENT_ID, "--code=" + fake.issue_code(), input="1\n",
                env=dict(env, PROCORE_CLIENT_SECRET=CLIENT_SECRET))
    assert r.returncode == 0, r.stderr
    r = one.run("store", "move", "--all", "--to", url, env=env)
    assert r.returncode == 0, r.stderr
    assert phrase not in source.read_text()
    assert "application_name=x" in source.read_text()
    r = one.run("status", "--json", env={"PROCORE_SETUP_STORE": url})
    assert r.returncode == 0, r.stderr
    assert phrase not in r.stdout and "sslpassword" not in json.loads(r.stdout)["store"]


# -- 12. a short password is not masked inside ordinary words ---------------------------------------------

def test_a_short_wrong_password_is_not_masked_inside_the_servers_words(pg: Shared, pg_server: Any) -> None:
    """Scrubbing every "e" of a message spelt the password out ("us****r"); now only the URL's own
    text is scrubbed, and a long secret as a whole word."""
    one, two = pg.hosts
    one.login()
    url = pg.url.replace(quote(pg_server.app_password, safe=""), "e", 1)
    r = two.run("token", env={"PROCORE_SETUP_STORE": url})
    assert r.returncode == 6, r.stderr
    assert "refused the login" in r.stderr
    assert re.search(r'password authentication failed for user "app"', r.stderr), r.stderr
    assert "****" not in r.stderr


# -- 4. a table another role made first (search_path hijack) ---------------------------------------------

def test_a_table_another_role_made_first_is_refused_and_gets_no_secret(pg: Shared, pg_server: Any,
                                                                      secret_guard: Any) -> None:
    """A role with CREATE on `public` makes `procore_setup` before the team's `store init`: the
    table's owner reads every secret written to it, and its triggers run as the victim. `store
    init` said all was fine and the login's secrets went into it; now every command refuses it
    (exit 6, naming its owner), and a login spends no code."""
    db = _db(pg.url)
    password = "mallory-" + secrets.token_hex(8)
    mallory = _role(pg_server, db, password, secret_guard, create_on_public=True)
    hostile = f"postgresql://{mallory}:{password}@127.0.0.1:{pg_server.port}/{db}"
    import psycopg

    with psycopg.connect(hostile, autocommit=True) as conn:
        conn.execute("CREATE TABLE procore_setup (kind text NOT NULL, name text NOT NULL, fields jsonb NOT NULL, "
                     "version bigint NOT NULL, schema_version integer NOT NULL DEFAULT 1, "
                     "updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (kind, name))")
        conn.execute("GRANT ALL ON procore_setup TO PUBLIC")
    one, two = pg.hosts
    r = one.run("store", "init")
    assert r.returncode == 6, r.stderr
    assert f"owned by the role '{mallory}'" in r.stderr and "ALTER TABLE" in r.stderr, r.stderr
    codes = dict(pg.fake.counts)
    fake = pg.fake
    from helpers.cli import CLIENT_ID, CLIENT_SECRET

    r = one.run("login", "--plain", "--profile", "default", "--environment", "custom", "--login-url", fake.url,
                "--api-url", fake.url, "--client-id", CLIENT_ID, "--code=" + fake.issue_code(), input="1\n",
                env={"PROCORE_CLIENT_SECRET": CLIENT_SECRET})
    assert r.returncode == 6, r.stderr
    assert dict(pg.fake.counts) == codes  # the code was never sent
    for args in (("token",), ("status",)):
        r = two.run(*args)
        assert r.returncode == 6 and mallory in r.stderr, r.stderr
    assert pg_server.superuser_sql(pg.url, "SELECT count(*) FROM public.procore_setup") == [(0,)]
    # the way out the message names: the table's owner changed to the team's role
    pg_server.superuser_sql(pg.url, "ALTER TABLE public.procore_setup OWNER TO app")
    r = one.run("store", "init")
    assert r.returncode == 0, r.stderr
    assert "owned by the role 'app'" in r.stdout, r.stdout
    one.login()
    assert two.run("token").returncode == 0


def test_the_rows_are_measured_before_they_are_downloaded(pg: Shared, pg_server: Any) -> None:
    """400 rows of about 1 MB each: the read was refused only after downloading them all (800 MB
    in memory). Now the server measures them and sends no row past the cap: refused quickly, in
    little memory (the run's peak RSS is checked through /usr/bin/time's report, if it exists)."""
    one, two = pg.hosts
    one.login()
    pg_server.superuser_sql(pg.url, "INSERT INTO procore_setup (kind, name, fields, version) SELECT 'profile', "
                            "'junk' || i, jsonb_build_object('x', repeat('y', 1000000)), 1 FROM generate_series(1, 60) i")
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    r = two.run("token")
    assert r.returncode == 6, r.stderr
    assert "far too big" in r.stderr
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert peak < 45 * 1024 or peak == before, f"the run peaked at {peak} KB"


# -- 5. TLS by default to a host that is not this machine ---------------------------------------------------

def test_a_server_that_refuses_tls_and_asks_for_the_password_in_clear_never_gets_it(tmp_path: Path,
                                                                                     secret_guard: Any) -> None:
    """libpq's default, sslmode=prefer, sent the password in clear text to anything that refused TLS
    and asked for it. A host that is not this machine (db.example.com, reached here through
    hostaddr=127.0.0.1) now gets sslmode=verify-full unless the URL says otherwise."""
    from helpers.hostile_stores import HostilePostgres

    password = "pw-" + secrets.token_hex(10)
    secret_guard.add(password, "the password sent to a hostile PostgreSQL")
    with HostilePostgres() as server:
        url = f"postgresql://app:{password}@db.example.com:{server.port}/app?hostaddr=127.0.0.1&connect_timeout=5"
        env = base_env(HOME=str(tmp_path), PROCORE_SETUP_STORE=url)
        for args in (["token"], ["store", "init"]):
            r = subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=60)
            assert r.returncode == 6, r.stderr
            assert "SSL" in r.stderr or "TLS" in r.stderr, r.stderr
        assert server.tls_requests >= 1
        assert server.passwords == []
        # asked for in the URL, the weaker mode is used, and said once per run
        r = subprocess.run([EXE, "token"], capture_output=True, text=True, timeout=60,
                           env=dict(env, PROCORE_SETUP_STORE=url + "&sslmode=prefer"))
        assert r.stderr.count("warning") == 1 and "sslmode=prefer" in r.stderr, r.stderr
        assert server.passwords == [password.encode()]


@pytest.mark.parametrize("host", ["127.0.0.08", "127.0.0.1%25x.evil.example", "localhost.", "ip6-localhost"])
def test_a_host_name_that_only_looks_like_this_machine_gets_tls_by_default(tmp_path: Path, secret_guard: Any,
                                                                           host: str) -> None:
    """These were taken for loopback, so libpq kept its default (prefer) and sent the password in
    clear to a server that refused TLS: each is a name a resolver answers (here reached through
    hostaddr=127.0.0.1), so it now gets sslmode=verify-full like any other host."""
    from helpers.hostile_stores import HostilePostgres

    password = "pw-" + secrets.token_hex(10)
    secret_guard.add(password, "the password sent to a hostile PostgreSQL")
    with HostilePostgres() as server:
        url = f"postgresql://app:{password}@{host}:{server.port}/app?hostaddr=127.0.0.1&connect_timeout=5"
        r = subprocess.run([EXE, "token"], capture_output=True, text=True, timeout=60,
                           env=base_env(HOME=str(tmp_path), PROCORE_SETUP_STORE=url))
        assert server.passwords == []
    assert r.returncode == 6, r.stderr
    assert "SSL" in r.stderr or "TLS" in r.stderr, r.stderr


def test_a_server_that_sends_rows_forever_is_refused_after_a_few_mb(tmp_path: Path) -> None:
    """The fast read kept every row libpq received until the deadline (1.5 GB in 2 s); now it reads
    one row at a time and stops past what the read can hold. The child's address space is capped so
    that the old read fails by running out of it, not by using the machine's memory."""
    from helpers.hostile_stores import HostilePostgres

    with HostilePostgres(flood=True) as server:
        url = f"postgresql://app@127.0.0.1:{server.port}/app"
        r = subprocess.run(["sh", "-c", 'ulimit -v 1000000 && exec "$0" token', EXE], capture_output=True, text=True,
                           timeout=60, env=base_env(HOME=str(tmp_path), PROCORE_SETUP_STORE=url,
                                                    PROCORE_SETUP_STORE_TIMEOUT="20"))
    assert r.returncode == 6, r.stderr
    assert "holds more than 1048576 bytes: far too big" in r.stderr, r.stderr
    assert server.sent < 200 << 20  # the rest of what it sent was never taken in


def test_a_server_that_sends_rows_forever_under_the_lock_is_refused_after_a_few_mb(pg: Shared) -> None:
    """The same through psycopg (the read under the lock, after the fast read found the token
    expired), whose fetchall() kept every row: the fast read is answered with the real store's rows,
    the lock with yes, and the read under the lock with 1 MiB rows forever."""
    import psycopg

    from helpers.hostile_stores import HostilePostgres
    from procore_setup.stores.postgres import _SELECT

    one, _ = pg.hosts
    one.login()
    pg.expire()
    with psycopg.connect(pg.url) as conn:
        rows = [tuple(None if v is None else ("t" if v is True else "f" if v is False else str(v)) for v in row)
                for row in conn.execute(_SELECT).fetchall()]
    with HostilePostgres(flood=True, read_rows=rows) as server:
        url = f"postgresql://app@127.0.0.1:{server.port}/app"
        r = subprocess.run(["sh", "-c", 'ulimit -v 1000000 && exec "$0" refresh --force', EXE], capture_output=True,
                           text=True, timeout=60, env=dict(one.env, PROCORE_SETUP_STORE=url,
                                                           PROCORE_SETUP_STORE_TIMEOUT="20"))
        assert server.answered and len(server.flooded) == 1, (server.flooded, r.stderr)
    assert r.returncode == 6, r.stderr
    assert "holds more than 1048576 bytes: far too big" in r.stderr, r.stderr
    assert pg.fake.counts.get("token:refresh_token", 0) == 0


def test_a_loopback_host_keeps_libpqs_default_and_says_nothing(pg: Shared) -> None:
    one, _ = pg.hosts
    one.login()
    r = one.run("status")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


# -- 11. one store spelt another way -----------------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["socket", "hostaddr", "twice"])
def test_a_move_onto_the_same_database_spelt_another_way_is_refused_at_once(pg: Shared, pg_server: Any,
                                                                           spelling: str) -> None:
    """A move onto its own store waited on its own lock for the whole timeout, then blamed another
    process. The server is asked which database it is, however the URL spells it."""
    db, port = _db(pg.url), pg_server.port
    pw = quote(pg_server.app_password, safe="")
    other = {
        "socket": f"postgresql:///{db}?host={pg_server.dir}&port={port}&user=app",
        "hostaddr": f"postgresql://app:{pw}@db.internal:{port}/{db}?hostaddr=127.0.0.1&sslmode=disable",
        "twice": f"postgresql://app:{pw}@127.0.0.1:{port},127.0.0.1:{port}/{db}",
    }[spelling]
    one, _ = pg.hosts
    one.login()
    before = pg.profile()
    r = one.run("store", "move", "--all", "--to", other,
                env={"PROCORE_SETUP_LOCK_TIMEOUT": "20", "PGPASSWORD": pg_server.app_password})
    assert r.returncode == 2, r.stderr
    assert "is the store the profiles are in already" in r.stderr and "held the lock" not in r.stderr, r.stderr
    assert pg.profile() == before
