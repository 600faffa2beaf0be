"""Serve a fake Procore login + API server until Ctrl+C: `python -m procore_setup.testing`."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import FakeProcore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m procore_setup.testing",
        description="Run a fake Procore login + API server (one base URL) for offline testing.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on; 0 picks a free one (default 8765)")
    parser.add_argument("--token-life", type=int, default=5400, metavar="SECONDS",
                        help="access token lifetime, expires_in (default 5400)")
    parser.add_argument("--client-id", default="demo-client-id")
    parser.add_argument("--client-secret", default="demo-client-secret")
    parser.add_argument("--strict-replay", action="store_true",
                        help="replaying a used refresh token revokes the whole grant")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    fake = FakeProcore(
        client_id=args.client_id,
        client_secret=args.client_secret,
        access_token_life=args.token_life,
        host=args.host,
        port=args.port,
        strict_replay=args.strict_replay,
        verbose=args.verbose,
    )

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Also when started in the background (where SIGINT may be ignored) or stopped with SIGTERM;
    # set before the address is printed, so a Ctrl+C as soon as it shows stops the server cleanly.
    signal.signal(signal.SIGINT, _interrupt)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        fake.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        url = fake.url
        print(f"Fake Procore (demo) serving login and API at {url}")
        print(f"client id: {args.client_id}   client secret: {args.client_secret}")
        print(f"redirect URI: urn:ietf:wg:oauth:2.0:oob   access token life: {args.token_life} s")
        # a code to paste as it is (--code takes no JSON): the JSON answer's one field, unwrapped
        print("get a code without a browser: curl -s -X POST " + url + "/_fake/code"
              " | python3 -c 'import json, sys; print(json.load(sys.stdin)[\"code\"])'")
        print(f"counters: curl -s {url}/_fake/stats   (Ctrl+C to stop)", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
