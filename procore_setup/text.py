"""Text from outside (server answers, the credentials file) made safe to print and to store.

A name or an error message from a server can hold terminal control sequences (screen clears,
window titles, OSC 52 clipboard writes), bidi overrides that make it read differently from what
it says, lone surrogates that cannot even be written out as UTF-8, or simply megabytes. `clean`
turns any of it into one printable line of bounded length. Standard library only: it sits on
the headless fast path (`status`).
"""

from __future__ import annotations

NAME_LIMIT = 200  # a user's name or login, a company name
ERROR_LIMIT = 100  # an OAuth `error` code (Doorkeeper's are about 20 characters)
DESCRIPTION_LIMIT = 300  # an `error_description`, a server's header or exception text
ELLIPSIS = "…"


def _escaped(ch: str) -> str:
    if ch.isprintable():
        return ch
    import unicodedata  # only for text that needs escaping: not on the fast path
    if ch == "\t" or unicodedata.category(ch) == "Zs":  # a no-break or ideographic space: still a space
        return " "
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def clean(text: object, limit: int) -> str:
    """`text` as one line of at most `limit` printable characters.

    Control and format characters (ESC, CR, LF, BEL, U+202E...) are shown escaped, as `\\x1b` or
    `\\u202e`, so they can neither drive a terminal nor hide; other separators become a space.
    Longer text is cut and ends in "…". Not a str: its str() (a number from JSON, say).
    """
    if not isinstance(text, str):
        text = str(text)
    if limit < 1:
        return ""
    out: list[str] = []
    used = 0
    # Only the head can be shown, however long the text: never walk megabytes.
    for i, ch in enumerate(text[: limit + 1]):
        piece = _escaped(ch)
        if used + len(piece) > limit or (i == limit):
            break
        out.append(piece)
        used += len(piece)
    else:
        return "".join(out)
    # Cut: make room for the ellipsis, at a character (or escape) boundary.
    while out and used + len(ELLIPSIS) > limit:
        used -= len(out.pop())
    return "".join(out) + ELLIPSIS


def clean_or_none(value: object, limit: int = NAME_LIMIT) -> str | None:
    """`clean` for an optional text field of a server answer: None for anything but a string or a number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return clean(value, limit)
    if isinstance(value, str):
        return clean(value, limit)
    return None


def duration(seconds: float) -> str:
    """A span of time for people: "45 s", "12 min", "1 h 30 min", "3 days" (the one formatter)."""
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 48 * 3600:
        h, rest = divmod(seconds, 3600)
        return f"{h} h {rest // 60} min" if rest >= 60 else f"{h} h"
    return f"{seconds // 86400} days"


def time_left(seconds: float | None) -> str:
    """`duration` of what is left: "12 min left", "expired 3 min ago", "unknown"."""
    if seconds is None:
        return "unknown"
    if seconds < 0:
        return f"expired {duration(-seconds)} ago"
    return f"{duration(seconds)} left"
