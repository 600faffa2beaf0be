"""A request as the fake Procore reads it and an answer as it sends it: plain data, no I/O."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import parse_qs

__all__ = ["Request", "Response", "json_bytes"]


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


@dataclass
class Response:
    """An answer to send. `drop`: no answer, the connection is reset; `stream`: sent after `body`,
    as it is made (Content-Length set by the maker); `cut`: the headers promise the whole body,
    half of it is sent, then the connection closes."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False
    stream: Iterable[bytes] | None = None
    cut: bool = False

    @classmethod
    def json(cls, status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> "Response":
        return cls(status, json_bytes(obj), [("Content-Type", "application/json; charset=utf-8"), *headers])

    @classmethod
    def html(cls, status: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> "Response":
        return cls(status, text.encode("utf-8"), [("Content-Type", "text/html; charset=utf-8"), *headers])


@dataclass
class Request:
    """A request as read off the socket: header names lower-cased, the whole body."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def query_params(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.query, keep_blank_values=True).items()}

    def params(self) -> dict[str, str]:
        """Query parameters overlaid with the body (form-encoded or JSON), like Rails' params."""
        params = self.query_params()
        ctype = self.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        raw = self.body.decode("utf-8", "replace")
        if not raw.strip():
            return params
        if ctype == "application/json" or (not ctype and raw.lstrip().startswith("{")):
            try:
                data = json.loads(raw)
            except ValueError:
                return params
            if isinstance(data, dict):
                for k, v in data.items():
                    if v is None:
                        continue
                    params[str(k)] = v if isinstance(v, str) else json.dumps(v)
            return params
        for k, v in parse_qs(raw, keep_blank_values=True).items():
            params[k] = v[0]
        return params

    def json_body(self) -> Any:
        raw = self.body.decode("utf-8", "replace").strip()
        return json.loads(raw) if raw else {}

    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        return value.strip()

    def basic(self) -> tuple[str, str] | None:
        auth = self.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, pw = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user, pw
