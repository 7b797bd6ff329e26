"""The text format read back: ``parse(print_graph(g))`` rebuilds ``g`` (``ir.printer``).

A small recursive-descent parser over a cursor that lexes on demand, since what a token
means depends on where it stands (``-`` starts a number in an attribute, belongs to a name
after ``%``). Values are looked up by name in one table for the whole text, so anything the
printer writes (even an IR that breaks region scoping) parses and ``verify`` can judge it.
"""

from __future__ import annotations

import json
import re

from .errors import ParseError
from .graph import ROLES, Graph, Node, Region, Value
from .types import DType, TensorType

_SPACE = re.compile(r"[ \t\r]*")
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_NUMBER = re.compile(r"-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?")
_SYM = r"[A-Za-z_][A-Za-z0-9_]*"
_DIM = re.compile(rf"(?:\d+\*)?{_SYM}(?:\*{_SYM})*|\d+")  # 64, B, 5*B, 4*B*S
_WORDS = {"none": None, "true": True, "false": False, "inf": float("inf"),
          "nan": float("nan")}
_NEGATED = {"inf": float("-inf"), "nan": float("nan")}
_LOC = re.compile(r"\S*:\S*")


def parse(text: str) -> Graph:
    """Parse IR text; raise ``ParseError`` naming the line and column of the first error."""
    return _Parser(text).graph()


def split_location(comment: str) -> tuple[str, str]:
    """``"scope  file.py:12"`` -> (scope, loc); either part may be missing."""
    scope, sep, loc = comment.strip().rpartition("  ")
    if sep:
        return scope.strip(), loc.strip()
    return ("", loc) if _LOC.fullmatch(loc) else (loc, "")


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.values: dict[str, Value] = {}

    # ---- the cursor -----------------------------------------------------------------

    def error(self, message: str, pos: int | None = None) -> ParseError:
        pos = self.pos if pos is None else pos
        start = self.text.rfind("\n", 0, pos) + 1
        end = self.text.find("\n", pos)
        line_text = self.text[start:end if end >= 0 else len(self.text)]
        line = self.text.count("\n", 0, pos) + 1
        column = pos - start + 1
        err = ParseError(f"{message} at line {line}, column {column}:\n  {line_text}\n"
                         f"  {' ' * (column - 1)}^\n"
                         "Hint: the text format is what ir.print_graph writes; "
                         "compare with a printed graph.")
        err.line, err.column, err.text = line, column, line_text
        return err

    def space(self, newlines: bool = False) -> None:
        """Skip blanks; with ``newlines``, also line breaks and comment-only lines."""
        while True:
            self.pos = _SPACE.match(self.text, self.pos).end()
            if not newlines or self.pos >= len(self.text):
                return
            ch = self.text[self.pos]
            if ch == "\n":
                self.pos += 1
            elif ch == "#":
                self.comment()
            else:
                return

    def peek(self) -> str:
        self.space()
        return self.text[self.pos:self.pos + 1]

    def found(self) -> str:
        if self.pos >= len(self.text):
            return "the end of the text"
        rest = self.text[self.pos:].split("\n", 1)[0].strip()
        return f"{rest[:20]!r}" if rest else "the end of the line"

    def accept(self, literal: str) -> bool:
        self.space()
        if self.text.startswith(literal, self.pos):
            self.pos += len(literal)
            return True
        return False

    def expect(self, literal: str) -> None:
        if not self.accept(literal):
            raise self.error(f"expected {literal!r}, found {self.found()}")

    def match(self, pattern: re.Pattern, what: str) -> str:
        self.space()
        m = pattern.match(self.text, self.pos)
        if not m:
            raise self.error(f"expected {what}, found {self.found()}")
        self.pos = m.end()
        return m.group()

    def comment(self) -> str:
        """A trailing ``# ...`` comment (after the ``#``), or ''."""
        self.space()
        if not self.text.startswith("#", self.pos):
            return ""
        end = self.text.find("\n", self.pos)
        end = len(self.text) if end < 0 else end
        body, self.pos = self.text[self.pos + 1:end], end
        return body

    def end_of_line(self) -> str:
        """The optional comment and the line break ending a statement."""
        body = self.comment()
        if self.pos < len(self.text) and not self.accept("\n"):
            raise self.error(f"expected the end of the line, found {self.found()}")
        return body

    def comma_list(self, close: str, item, newlines: bool = False) -> list:
        """Items up to ``close``; a trailing comma is allowed, as in ``(1,)``."""
        items = []
        self.space(newlines)
        if self.accept(close):
            return items
        while True:
            items.append(item())
            self.space(newlines)
            if self.accept(close):
                return items
            if not self.accept(","):
                raise self.error(f"expected ',' or {close!r}, found {self.found()}")
            self.space(newlines)
            if self.accept(close):
                return items

    # ---- names, types, attributes ---------------------------------------------------

    def name(self, what: str) -> str:
        self.space()
        if self.text.startswith('"', self.pos):
            return self.string()
        return self.match(_NAME, what)

    def string(self) -> str:
        start = self.pos
        literal = self.match(_STRING, "a string")
        try:
            return json.loads(literal)
        except json.JSONDecodeError as e:
            raise self.error(f"bad string literal ({e.msg})", start) from None

    def value_name(self) -> tuple[str, int]:
        self.expect("%")
        start = self.pos
        return self.name("a value name after '%'"), start

    def use(self) -> Value:
        name, start = self.value_name()
        if name not in self.values:
            raise self.error(f"%{name} is used before it is defined", start)
        return self.values[name]

    def define(self, name: str, start: int, value: Value) -> Value:
        if name in self.values:
            raise self.error(f"%{name} is defined twice", start)
        self.values[name] = value
        return value

    def typed_value(self) -> tuple[str, int, TensorType]:
        name, start = self.value_name()
        self.expect(":")
        return name, start, self.type()

    def type(self) -> TensorType:
        self.space()
        start = self.pos
        word = self.match(_IDENT, "a type such as f32[2,3]")
        try:
            dtype = DType(word)
        except ValueError:
            names = ", ".join(d.value for d in DType)
            raise self.error(f"unknown dtype {word!r} (expected one of {names})", start) from None
        self.expect("[")
        dims = self.comma_list("]", lambda: self.match(_DIM, "a dimension (size or symbol)"))
        return TensorType(dtype, tuple(int(d) if d.isdigit() else d for d in dims))

    def attrs(self) -> dict:
        attrs: dict = {}
        if not self.accept("["):
            return attrs

        def item():
            start = self.pos
            key = self.match(_IDENT, "an attribute name")
            if key in attrs:
                raise self.error(f"attribute {key!r} given twice", start)
            self.expect("=")
            attrs[key] = self.attr_value()

        self.comma_list("]", item)
        return attrs

    def attr_value(self):
        ch = self.peek()
        if ch == '"':
            return self.string()
        if ch == "(":
            self.pos += 1
            return tuple(self.comma_list(")", self.attr_value))
        if ch.isalpha():
            start = self.pos
            word = self.match(_IDENT, "an attribute value")
            if word not in _WORDS:
                raise self.error(f"unknown attribute value {word!r}", start)
            return _WORDS[word]
        if self.text.startswith("-", self.pos) and self.text[self.pos + 1:self.pos + 2].isalpha():
            self.pos += 1
            word = self.match(_IDENT, "a number")
            if word not in _NEGATED:
                raise self.error(f"unknown attribute value '-{word}'", self.pos - len(word) - 1)
            return _NEGATED[word]
        literal = self.match(_NUMBER, "an attribute value (number, string, bool, none, tuple)")
        return float(literal) if any(c in literal for c in ".eE") else int(literal)

    # ---- statements -----------------------------------------------------------------

    def graph(self) -> Graph:
        self.space(newlines=True)
        self.expect("graph")
        if self.text[self.pos:self.pos + 1] not in (" ", "\t"):
            raise self.error("expected a space after 'graph'")
        self.space()
        name = "" if self.peek() == "(" else self.name("the graph's name")
        graph = Graph(name)
        self.expect("(")

        def graph_input():
            name, start, type_ = self.typed_value()
            role = "input"
            if self.peek().isalpha():
                role_start = self.pos
                role = self.match(_IDENT, "a role")
                if role not in ROLES:
                    raise self.error(f"unknown role {role!r} (expected one of {ROLES})",
                                     role_start)
            self.define(name, start, graph.add_input(name, type_, role))

        self.comma_list(")", graph_input, newlines=True)
        self.expect("{")
        self.end_of_line()
        graph.nodes, graph.outputs = self.block(graph)
        self.space(newlines=True)
        if self.pos < len(self.text):
            raise self.error(f"unexpected text after the graph: {self.found()}")
        return graph

    def block(self, graph: Graph | None) -> tuple[list[Node], list[Value]]:
        """Statements up to the closing ``}``: the graph's body and ``return``, or a
        region's (graph=None) body and ``yield``."""
        nodes: list[Node] = []
        while True:
            self.space(newlines=True)
            start = self.pos
            if self.pos >= len(self.text):
                raise self.error("expected '}' before the end of the text")
            word_m = _IDENT.match(self.text, self.pos)
            word = word_m.group() if word_m else ""
            after = ""
            if word_m:
                after_at = _SPACE.match(self.text, word_m.end()).end()
                after = self.text[after_at:after_at + 1]
            if word == "write" and after == "%" and graph is not None:
                self.pos = word_m.end()
                self.write(graph)
            elif word in ("return", "yield") and after in ("%", "\n", "#", ""):
                if (word == "return") != (graph is not None):
                    raise self.error(f"'{word}' is not allowed here", start)
                self.pos = word_m.end()
                results = self.comma_list_plain() if after == "%" else []
                self.end_of_line()
                self.space(newlines=True)
                self.expect("}")
                return nodes, results
            elif self.text.startswith("}", self.pos):
                what = "return" if graph is not None else "yield"
                raise self.error(f"expected '{what}' before '}}'")
            else:
                nodes.append(self.node())

    def comma_list_plain(self) -> list[Value]:
        values = [self.use()]
        while self.accept(","):
            values.append(self.use())
        return values

    def write(self, graph: Graph) -> None:
        name, start = self.value_name()
        if name in graph.writes:
            raise self.error(f"%{name} is written twice", start)
        self.expect("=")
        graph.writes[name] = self.use()
        self.end_of_line()

    def node(self) -> Node:
        outs: list[tuple[str, int, TensorType]] = []
        if self.peek() == "%":
            outs.append(self.typed_value())
            while self.accept(","):
                outs.append(self.typed_value())
            self.expect("=")
        op = self.match(_IDENT, "an op name or a statement")
        attrs = self.attrs()
        self.expect("(")
        inputs = self.comma_list(")", self.use)
        outputs = [self.define(n, s, Value(t)) for n, s, t in outs]
        params = None
        if self.accept("("):
            params = [self.define(n, s, Value(t))
                      for n, s, t in self.comma_list(")", self.typed_value)]
            self.expect("{")
        scope, loc = split_location(self.end_of_line())
        region = None
        if params is not None:
            body, results = self.block(None)
            region = Region(tuple(params), tuple(body), tuple(results))
            self.end_of_line()
        return Node(op, inputs, outputs, attrs, scope=scope, loc=loc, region=region)
