"""What the tests share, so that no test module imports another.

- `cli`: the installed executable, the fake's client id and secret, a clean environment, and
  `CLI`, which runs the executable against one credentials file.
- `secret_guard`: the secret guard behind tests/conftest.py's autouse `secret_guard` fixture.
- `engine`: the engine tests' secret-checking runner (`Engine`), file snapshots, time travel
  and `wait_for` (a bounded poll on state).
- `stores`: two "hosts" sharing one store (`Shared`, `Host`) and what the store tests look at
  inside PostgreSQL.
- `wizard`: driving the Textual wizard through Pilot (tests/tui).

The fixtures built on these live in tests/conftest.py and tests/tui/conftest.py; the real
PostgreSQL and Redis servers in tests/servers.py. tests/ is on sys.path (pytest puts the
directory of the rootdir conftest.py there), so test modules say `from helpers.cli import EXE`.
"""
