"""The live 10-minute clock of an authorization code, read from the flow's (injectable) clock."""

from __future__ import annotations

from typing import Callable

from textual.widgets import Static

WARN_BELOW = 120.0


def clock_text(left: float | None) -> tuple[str, str]:
    """(text, CSS class) for `left` seconds of code life."""
    if left is None:
        return "The 10-minute code clock starts when you open the authorize address.", "ok"
    if left <= 0:
        return ("10 minutes have passed: a code from that login has expired. "
                "Press Esc to go back and get a new one."), "expired"
    whole = int(left + 0.999)  # 599.2 s shows as 10:00 -> 9:59 one second later, never 0:00 while valid
    text = f"Code clock: {whole // 60}:{whole % 60:02d} left (Procore's codes die 10 minutes after login)"
    return text, "warn" if left < WARN_BELOW else "ok"


class Countdown(Static):
    """Shows `seconds_left()` and updates it every second."""

    def __init__(self, seconds_left: Callable[[], float | None], *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self._seconds_left = seconds_left

    def on_mount(self) -> None:
        self.tick()
        self.set_interval(1.0, self.tick)

    def tick(self) -> None:
        text, kind = clock_text(self._seconds_left())
        self.remove_class("ok", "warn", "expired")
        self.add_class(kind)
        self.update(text)
