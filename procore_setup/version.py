"""The package's version, in a module of its own so that whatever names it (the User-Agent, --version)
imports no more than this."""

__version__ = "0.1.0"
