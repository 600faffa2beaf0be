"""Writing the credentials file's TOML, keeping the comments a person wrote in it.

Most files never see a hand edit, and are written with tomli-w (small, fast). A file that
holds a comment is rewritten through tomlkit instead, which keeps comments, blank lines and
key order: only the values that changed are touched. tomlkit is imported only then.

Whatever tomlkit produces is parsed back with tomllib and compared with what tomli-w would
have written; if they differ in any value, the tomli-w text is used. Losing a comment is a
nuisance, writing a wrong value into a credentials file is not an option.
"""

from __future__ import annotations

import tomllib
from typing import Any


def render(data: dict[str, Any], previous: bytes = b"") -> bytes:
    """The file's new bytes for `data`, keeping the comments of `previous` (its old bytes)."""
    import tomli_w

    plain = tomli_w.dumps(data)
    if b"#" not in previous:  # no comment, so nothing to keep (a '#' in a value just takes the slow path)
        return plain.encode("utf-8")
    try:
        kept = _with_comments(data, previous.decode("utf-8"))
        if tomllib.loads(kept) == tomllib.loads(plain):
            return kept.encode("utf-8")
    except Exception:  # noqa: BLE001 - any trouble in the nicety falls back to the plain rewrite
        pass
    return plain.encode("utf-8")


def _with_comments(data: dict[str, Any], text: str) -> str:
    import tomlkit

    doc = tomlkit.parse(text)
    _merge(doc, data)
    return tomlkit.dumps(doc)


def _merge(box: Any, data: dict[str, Any]) -> None:
    """Make the tomlkit container `box` hold `data`, touching only what differs."""
    for key in [k for k in box.keys() if k not in data]:
        del box[key]
    for key, value in data.items():
        if key in box:
            old = box[key]
            if isinstance(value, dict) and isinstance(old, dict):  # tomlkit tables are dicts
                _merge(old, value)
                continue
            if _plain(old) == value and type(_plain(old)) is type(value):
                continue  # unchanged: keep its formatting and any comment on its line
        box[key] = value


def _plain(item: Any) -> Any:
    unwrap = getattr(item, "unwrap", None)
    return unwrap() if unwrap is not None else item
