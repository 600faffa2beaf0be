"""Small TCP servers of the tests' own (a would-be proxy, a forwarder): stopping them for real.

`sock.close()` from the test's thread does not stop a thread blocked in `sock.accept()`: the
kernel socket stays open under that call and keeps listening, so the port answers one more
connection after the test has ended. Worse, when the close lands after the thread has read the
descriptor number but before its accept() system call starts (a thread preempted on a loaded
machine), the thread accepts on whatever socket takes that number next, typically the next
test's FakeProcore, and answers one of that test's requests itself. That is how a wizard test
once saw "127.0.0.1 refused the request (HTTP 403) while listing companies": the empty-bodied 403
of tests/test_hostile_server.py's would-be proxy, not anything FakeProcore says.

`stop_serving` shuts the listening socket down first (which makes a blocked or later accept()
fail at once), waits for the serving thread to end, and only then closes the descriptor.
"""

from __future__ import annotations

import socket
import threading


def stop_serving(sock: socket.socket, *threads: threading.Thread, timeout: float = 10.0) -> None:
    """Stop a listening socket served by `threads`: no accept() after this returns, on any socket."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # never listened, or already shut down
    for thread in threads:
        if thread is not threading.current_thread():
            thread.join(timeout)
            assert not thread.is_alive(), f"a test server's thread {thread.name} did not stop"
    sock.close()
