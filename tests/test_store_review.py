"""What a review of the shared stores found, each through the real executable on PostgreSQL:
a mark dated by a clock far ahead, a server that stops answering mid-save, URLs that this
program and libpq would read differently, hostile rows, a restore onto a store without its
document row, and a URL option libpq refuses."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta
from typing import Any

import pytest

from procore_setup.profile import utcnow
from procore_setup.testing import Fault
from helpers.engine import wait_for
from helpers.stores import NO_WAIT, TOKEN_PATH, Shared
from helpers.net import stop_serving

pytestmark = pytest.mark.parametrize("shared", ["postgres"], indirect=True)


def test_a_mark_dated_by_a_clock_far_ahead_does_not_hold_the_lock_until_then(shared: Shared) -> None:
    """Another host, its clock a century ahead, died mid-refresh; the chain is then refused. The
    wait for that host's answer is bounded from now, not from its date."""
    one, two = shared.hosts
    one.login()
    # its limits, written into its mark, are short: at most 3 + 6 s of waiting from now
    shared.edit(lambda doc: doc.profiles["default"].set(refresh_started_at=utcnow() + timedelta(days=36500),
                                                        refresh_budget=3, refresh_step=3))
    shared.fake.revoke_all()
    r = two.run("token", env=NO_WAIT, timeout=90)
    assert r.returncode == 4, r.stderr
    assert shared.profile()["reauth_required"] is True


class _Proxy:
    """A TCP forwarder to PostgreSQL that can stop forwarding (a server, or a link, that stalls)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.stalled = threading.Event()
        self.closed_by_client = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    if from_client and self.stalled.is_set():
                        self.closed_by_client += 1
                    break
                while self.stalled.is_set() and not from_client:
                    threading.Event().wait(0.05)  # hold the server's answers back
                dst.sendall(data)
        except OSError:
            if from_client and self.stalled.is_set():
                self.closed_by_client += 1
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        stop_serving(self.sock, self._thread)  # sock.close() alone leaves the thread accepting


def test_a_server_that_stops_answering_mid_save_is_cut_off_and_the_pair_saved_when_it_answers(
        shared: Shared, pg_server: Any) -> None:
    """The store stops answering (its answers held back) just as Procore's answer arrives: the save's
    statement is cut off after PROCORE_SETUP_STORE_TIMEOUT instead of waiting forever, and once the
    store answers again the reconnect saves the pair."""
    proxy = _Proxy(pg_server.port)
    try:
        url = shared.url.replace(f":{pg_server.port}/", f":{proxy.port}/")
        one, two = shared.hosts
        one.login()
        release = threading.Event()
        def stall() -> None:
            proxy.stalled.set()
            release.wait(60)

        shared.fake.inject(Fault(hook=stall, paths=TOKEN_PATH))
        proc = one.popen("refresh", "--force", env={"PROCORE_SETUP_STORE": url, "PROCORE_SETUP_STORE_TIMEOUT": "2"})
        release.set()
        wait_for(lambda: proxy.closed_by_client >= 1, timeout=60, what="the client to give up on the stalled statement")
        proxy.stalled.clear()
        r = one.collect(proc, timeout=120)
        assert r.returncode == 0, r.stderr
        stored = shared.profile()
        assert shared.fake.refresh_token_state(stored["refresh_token"]) == "active"
        assert two.token() == stored["access_token"]
    finally:
        proxy.close()


@pytest.mark.parametrize("bad", ["an @ in the password", "a [ that does not close"])
def test_a_url_read_two_ways_is_refused_before_libpq_sees_it_and_never_shown(shared: Shared, bad: str,
                                                                                secret_guard: Any) -> None:
    one, _ = shared.hosts
    password = "S3c@r3tPw-xyzzy" if bad.startswith("an @") else "S3cr3tPw-plugh"
    secret_guard.add(password, "a password in a malformed URL")
    host = "[127.0.0.1" if bad.startswith("a [") else "127.0.0.1"
    r = one.run("status", env={"PROCORE_SETUP_STORE": f"postgresql://app:{password}@{host}:5432/app"})
    assert r.returncode == 2, r.stderr
    for piece in (password, *password.split("@")):
        assert piece not in r.stderr + r.stdout
    assert "percent-encoded" in r.stderr


def test_rows_nested_thousands_deep_are_refused_not_a_crash(shared: Shared, pg_server: Any) -> None:
    one, two = shared.hosts
    one.login()
    deep = '{"a": ' + "[" * 3000 + "]" * 3000 + "}"
    pg_server.superuser_sql(shared.url, "UPDATE procore_setup SET fields = %s::jsonb WHERE kind = 'profile'", (deep,))
    for args in (("token",), ("status",)):
        r = two.run(*args)
        assert r.returncode == 6, (args, r.stderr)
        assert "internal error" not in r.stderr and "does not hold a JSON object" in r.stderr


def test_a_refresh_put_back_on_a_store_without_its_document_row_leaves_it_readable(shared: Shared,
                                                                                     pg_server: Any) -> None:
    one, two = shared.hosts
    one.login()
    pg_server.superuser_sql(shared.url, "DELETE FROM procore_setup WHERE kind = 'document'")
    shared.fake.inject(Fault(status=404, times=5, paths=TOKEN_PATH))  # refused before Procore used anything: put back
    r = two.run("refresh", "--force")
    assert r.returncode == 5, r.stderr
    status = two.run("status")
    assert status.returncode == 0, status.stderr
    assert two.token() == shared.profile()["access_token"]


def test_a_url_option_libpq_refuses_is_a_usage_error(shared: Shared) -> None:
    one, _ = shared.hosts
    r = one.run("status", env={"PROCORE_SETUP_STORE": shared.url + "?sslmode=bogus"})
    assert r.returncode == 2, r.stderr
    assert "sslmode" in r.stderr and "try again" not in r.stderr
