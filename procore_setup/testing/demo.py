"""`--demo`: the fake Procore server on loopback plus a throwaway credentials file.

Used by the wizard (`procore-setup --demo`) and by `login --plain --demo`, so a
newcomer can walk the whole flow without a Procore account. Standard library only.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.request
from html import unescape
from typing import Any

from .server import FakeProcore

_CODE_RE = re.compile(r'<code id="authorization_code">([^<]+)</code>')


class DemoSession:
    """A running fake Procore and a config path in a private temporary directory.

    `start()` (or `with`) starts both; `stop()` stops the server and deletes the
    directory with the file in it.
    """

    def __init__(self) -> None:
        self.fake = FakeProcore(host="127.0.0.1", port=0)
        self.client_id: str = self.fake.client_id
        self.client_secret: str = self.fake.client_secret
        self.url: str = ""
        self.config_path: str = ""
        self._dir: str | None = None

    def __repr__(self) -> str:
        return f"DemoSession(url={self.url!r}, config_path={self.config_path!r})"

    def start(self) -> DemoSession:
        if self._dir is not None:
            return self
        self._dir = tempfile.mkdtemp(prefix="procore-setup-demo-")  # 0700, as the file store wants
        try:
            self.fake.start()
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            raise
        self.url = self.fake.url
        self.config_path = os.path.join(self._dir, "credentials.toml")
        return self

    def stop(self) -> None:
        self.fake.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> DemoSession:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def fetch_code(self, authorize_url: str, timeout: float = 10.0) -> str:
        """Open the fake authorize page as a browser would and read the code it shows.

        Only for the demo server's own URLs: this is how the demo is walked over SSH,
        where no browser can be opened.
        """
        if not self.url or not authorize_url.startswith(self.url + "/"):
            raise ValueError("fetch_code only opens the demo server's own authorize page")
        # urllib follows the 302 to /oauth/authorize/<CODE> (a plain path on the same host);
        # no proxy: the server is on loopback, and an http_proxy in the environment must not see the code
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(authorize_url, timeout=timeout) as resp:  # noqa: S310 - loopback only
            page = resp.read(65536).decode("utf-8", "replace")
        m = _CODE_RE.search(page)
        if not m:
            raise ValueError("the demo authorize page shows no code (is the client id the demo one?)")
        return unescape(m.group(1))


__all__ = ["DemoSession"]
