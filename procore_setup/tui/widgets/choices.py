"""A short fixed list of choices drawn as plain lines (how scripts sign in, the environment), lighter
than an OptionList.

Textual's OptionList is a scroll view with a line cache, per-option visuals and a second layout
pass once it has measured its lines (its virtual size changes in its first render); for two
choices known in advance that was a fifth of the first screen's work before its first frame
(docs/performance.md). This widget is one render of a few lines, with the same keys (up, down,
home, end, page up, page down, Enter), a click that chooses, and the same look; a choice longer
than the list is wide wraps onto more lines, as in an OptionList.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple, Sequence

from textual import events
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget


class Choice(NamedTuple):
    """One line of the list: its id (the answer) and its label (the program's own text)."""

    id: str
    prompt: str


class _ChoiceMessage(Message):
    """What both of ChoiceLines' messages carry: the list, and the choice."""

    def __init__(self, choices: ChoiceLines, choice: Choice) -> None:
        super().__init__()
        self.choices = choices
        self.choice = choice

    @property
    def control(self) -> ChoiceLines:
        return self.choices


class ChoiceLines(Widget, can_focus=True):
    """A list of a few choices that all fit on the screen; Enter (or a click) chooses the highlighted one."""

    ALLOW_SELECT = False  # as OptionList: a press that slides along a line selects no text

    DEFAULT_CSS = """
    ChoiceLines {
        height: auto;
        background: $surface;
        & > .choices--highlighted {
            color: $foreground;
            background: $block-cursor-blurred-background;
        }
        &:focus {
            background-tint: $foreground 5%;
            & > .choices--highlighted {
                color: $block-cursor-foreground;
                background: $block-cursor-background;
                text-style: $block-cursor-text-style;
            }
        }
    }
    """
    # choices--hover's rule is in later.tcss: no mouse is over the list before the first frame.
    COMPONENT_CLASSES: ClassVar[set[str]] = {"choices--highlighted", "choices--hover"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "Continue"),
        Binding("down", "move(1)", "Down", show=False),
        Binding("up", "move(-1)", "Up", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        # OptionList moves a page of lines; every line of this list is on screen, so a page is all of them.
        Binding("pagedown", "jump(-1)", "Last", show=False),
        Binding("pageup", "jump(0)", "First", show=False),
    ]

    highlighted: reactive[int] = reactive(0)

    class Highlighted(_ChoiceMessage):
        """Another choice is highlighted (a key, a click, or the program setting `highlighted`)."""

    class Selected(_ChoiceMessage):
        """A choice was made (Enter, or a click on it). (Not a Highlighted: handlers of a message
        class hear its subclasses too.)"""

    def __init__(self, *choices: Choice, highlighted: int = 0, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.choices: Sequence[Choice] = choices
        self.set_reactive(ChoiceLines.highlighted, self._clamp(highlighted))
        self.hovered: int | None = None  # the choice under the mouse, if any
        self._rows_at: tuple[int, list[tuple[int, Content]]] | None = None  # (width, rows) last laid out

    def _clamp(self, index: int) -> int:
        return max(0, min(index, len(self.choices) - 1))

    @property
    def highlighted_option(self) -> Choice | None:
        """The highlighted choice (OptionList's name for it, so callers read both alike)."""
        return self.choices[self.highlighted] if self.choices else None

    @property
    def option_count(self) -> int:
        return len(self.choices)

    def validate_highlighted(self, index: int) -> int:
        return self._clamp(index)

    def watch_highlighted(self, index: int) -> None:  # not called for the value given to __init__
        if self.choices:
            self._scroll_to_highlight()
            self.post_message(self.Highlighted(self, self.choices[index]))

    def _scroll_to_highlight(self) -> None:
        """Bring the highlighted choice's lines into view when the list is taller than what holds
        it (a terminal of a few rows): an OptionList, at most that high, scrolls its own lines."""
        container = self.parent
        if not isinstance(container, Widget) or not container.allow_vertical_scroll:
            return  # everything is on screen: the usual case, nothing to do
        rows = [y for y, (index, _) in enumerate(self._rows(self.content_size.width)) if index == self.highlighted]
        if rows:
            box = self.virtual_region
            top = box.y + self.styles.gutter.top + rows[0]
            container.scroll_to_region(Region(box.x, top, box.width, len(rows)), animate=False, immediate=True)

    def _rows(self, width: int) -> list[tuple[int, Content]]:
        """The lines drawn at `width`, each with the index of its choice: one per choice that
        fits, more for one that does not (wrapped at spaces, as an OptionList wraps it)."""
        if self._rows_at is not None and self._rows_at[0] == width:
            return self._rows_at[1]
        rows: list[tuple[int, Content]] = []
        for index, choice in enumerate(self.choices):
            prompt = Content(choice.prompt)
            if width <= 0 or prompt.cell_length <= width:
                rows.append((index, prompt))
            else:
                rows.extend((index, line) for line in prompt.wrap(width))
        self._rows_at = (width, rows)
        return rows

    def get_content_height(self, container: object, viewport: object, width: int) -> int:
        return len(self._rows(width))

    def render(self) -> Content:
        width = self.content_size.width
        lines = []
        for index, line in self._rows(width):
            line = line.pad_right(max(0, width - line.cell_length))  # lit to the edge
            if index == self.highlighted:  # the highlight wins over the hover, as in OptionList
                line = line.stylize(self.get_visual_style("choices--highlighted"))
            elif index == self.hovered:
                line = line.stylize(self.get_visual_style("choices--hover"))
            lines.append(line)
        return Content("\n").join(lines)

    def action_move(self, step: int) -> None:
        self.highlighted = self._clamp(self.highlighted + step)

    def action_jump(self, index: int) -> None:
        self.highlighted = len(self.choices) - 1 if index < 0 else index

    def action_select(self) -> None:
        choice = self.highlighted_option
        if choice is not None:
            self.post_message(self.Selected(self, choice))

    def _line_at(self, event: events.MouseEvent) -> int | None:
        """The choice drawn where the mouse is (None: on the frame, the padding, or below the lines)."""
        offset = event.get_content_offset(self)
        rows = self._rows(self.content_size.width)
        if offset is None or not 0 <= offset.y < len(rows):
            return None
        return rows[offset.y][0]

    def _hover(self, line: int | None) -> None:
        if line != self.hovered:
            self.hovered = line
            self.refresh()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        self._hover(self._line_at(event))

    def on_leave(self, event: events.Leave) -> None:
        self._hover(None)

    def on_click(self, event: events.Click) -> None:
        line = self._line_at(event)
        if line is None:
            return
        event.stop()
        self.highlighted = line
        self.action_select()
