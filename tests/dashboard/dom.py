"""Just enough HTML reading for the page tests: elements by id, table rows, their attributes."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""
    children: list[Element] = field(default_factory=list)


_VOID = {"meta", "link", "input", "br", "img", "line", "rect", "polygon", "polyline", "hr"}


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in _VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element.text += data


def parse(html: str) -> Element:
    tree = _Tree()
    tree.feed(html)
    return tree.root


def walk(element: Element) -> list[Element]:
    found = [element]
    for child in element.children:
        found.extend(walk(child))
    return found


def by_id(root: Element, element_id: str) -> Element:
    for element in walk(root):
        if element.attrs.get("id") == element_id:
            return element
    raise AssertionError(f"no element with id {element_id!r}")


def rows(root: Element, table_id: str) -> list[Element]:
    """The body rows of a table (``<tr>`` that hold ``<td>`` cells)."""
    table = by_id(root, table_id)
    return [e for e in walk(table) if e.tag == "tr" and any(c.tag == "td" for c in e.children)]


def cells(row: Element) -> list[Element]:
    return [c for c in row.children if c.tag == "td"]
