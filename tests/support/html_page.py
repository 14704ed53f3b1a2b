"""A strict little HTML tree for the report tests (stdlib html.parser): every non-void element
must be closed in order, so a user string that leaked markup into a page breaks the parse."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        """Descendants named `tag` whose attributes equal `attrs` (`class_` matches one class)."""
        want_class = attrs.pop("class_", None)
        return [
            n
            for n in self.iter()
            if n.tag == tag
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
            and (want_class is None or want_class in n.classes())
        ]

    def find(self, tag: str, **attrs: str) -> Node:
        (found,) = self.find_all(tag, **attrs)
        return found


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document")
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        open_tag = self.stack[-1].tag
        if open_tag != tag:
            raise AssertionError(f"</{tag}> closes <{open_tag}> at line {self.getpos()[0]}")
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(page: str) -> Node:
    """The page as a tree; raises AssertionError when an element is left open or closed wrongly."""
    builder = _Builder()
    builder.feed(page)
    builder.close()
    if len(builder.stack) != 1:
        raise AssertionError(f"unclosed elements: {[n.tag for n in builder.stack[1:]]}")
    return builder.root


def rows(table: Node) -> list[list[str]]:
    """A table's rows as the text of each cell (header cells included)."""
    return [[c.text() for c in tr.children if isinstance(c, Node)] for tr in table.find_all("tr")]
