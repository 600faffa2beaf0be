"""procore-setup: walk Procore's OAuth installed-app flow once, then keep the token chain alive.

The library surface for users' scripts is small and imported lazily, so that
`import procore_setup` stays cheap and never pulls in httpx or textual:

    from procore_setup import get_token, ProcoreAuth, ProcoreClient, AsyncProcoreClient
"""

from __future__ import annotations

from .version import __version__

__all__ = ["__version__", "get_token", "ProcoreAuth", "ProcoreClient", "AsyncProcoreClient", "ProcoreSetupError"]


def __getattr__(name: str):  # PEP 562: lazy exports keep the headless path light
    if name == "get_token":
        from .refresh import get_token

        return get_token
    if name == "ProcoreAuth":
        from .auth import ProcoreAuth

        return ProcoreAuth
    if name in ("ProcoreClient", "AsyncProcoreClient"):
        from . import client

        return getattr(client, name)
    if name == "ProcoreSetupError":
        from .errors import ProcoreSetupError

        return ProcoreSetupError
    raise AttributeError(f"module 'procore_setup' has no attribute {name!r}")
