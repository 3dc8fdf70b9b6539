"""Edit a TOML file in place, with nothing but the Python standard library: a scanner and one-value edits.

The modules that use this run on the managed host, where Python may be 3.10 (Ubuntu 22.04: no ``tomllib``) and
no TOML writer exists in the standard library. Rewriting the whole file would also lose its comments and layout.
So the edit works on the text: a scanner finds every table header and every key/value statement with its exact
place in the file; a value is replaced where it stands, a missing key is added to its table, a missing table is
created next to its parent. Everything else stays byte for byte as it was.

The scanner reads all of TOML 1.0 that can appear in a config file (dotted and quoted keys, every string form,
multi-line arrays, inline tables, arrays of tables). It refuses, with the line number, a file it cannot read and a
change it cannot make safely (a value inside an inline table or an array of tables), rather than guess: both raise
``EditError``. Knows nothing of any program's settings (``containerd_config.py`` holds containerd's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

KeyPath = tuple[str, ...]


class EditError(ValueError):
    """The file cannot be read, or the change cannot be made safely; the message says where and why."""


# --- Values -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Opaque:
    """A value the edit never needs to understand (a float, a date): kept as written."""

    raw: str


class InlineTable(dict):
    """A table written inline (``{ a = 1 }``): readable, but its members cannot be edited in place."""


def same_value(left: Any, right: Any) -> bool:
    """Equality that tells ``true`` from ``1``, as TOML does and Python does not."""
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(same_value(a, b) for a, b in zip(left, right, strict=True))
    return type(left) is type(right) and left == right


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_BLANKS = re.compile(r"[ \t]*")
_SPACE = re.compile(r"[ \t\r\n]*")
_PLAIN = re.compile(r'[^"\\\n\r]+')
_SCALAR = re.compile(r"[^\s#,\]}]+")
# A date and a time may be separated by a space, which would otherwise end the scalar.
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?", re.IGNORECASE)
_INTEGER = re.compile(r"[+-]?(0|[1-9](_?[0-9])*)")
_PREFIXED_INTEGER = re.compile(r"0(x[0-9A-Fa-f](_?[0-9A-Fa-f])*|o[0-7](_?[0-7])*|b[01](_?[01])*)")
_OTHER_SCALAR = re.compile(r"[+-]?(inf|nan|[0-9][0-9_:.eE+\-TtZz]*)")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", "e": "\x1b", '"': '"', "\\": "\\"}


def format_string(value: str, quote: str = '"') -> str:
    """A TOML string for ``value``: literal (``'...'``) when ``quote`` asks for it and the value allows it."""
    if quote == "'" and "'" not in value and not any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        return f"'{value}'"
    escaped = []
    for char in value:
        if char in ('"', "\\"):
            escaped.append("\\" + char)
        elif char in "\b\t\n\f\r":
            escaped.append("\\" + "btnfr"["\b\t\n\f\r".index(char)])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def format_value(value: Any, quote: str = '"') -> str:
    """TOML for the values the edit writes: booleans, integers, strings and arrays of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return format_string(value, quote)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(item, quote) for item in value) + "]"
    raise TypeError(f"cannot write a {type(value).__name__} as a TOML value")


def format_key(path: KeyPath, quote: str = '"') -> str:
    """A dotted TOML key for ``path``, quoting only the parts that need it."""
    return ".".join(part if _BARE_KEY.fullmatch(part) else format_string(part, quote) for part in path)


# --- Scanning -----------------------------------------------------------------------------------------------------


class _Scanner:
    """Reads keys and values from a position in the text; every method leaves ``pos`` just after what it read."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> EditError:
        return EditError(f"line {self.text.count(chr(10), 0, self.pos) + 1}: {message}")

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def startswith(self, prefix: str) -> bool:
        return self.text.startswith(prefix, self.pos)

    def skip_blanks(self) -> None:
        self.pos = _BLANKS.match(self.text, self.pos).end()

    def skip_comment(self) -> None:
        if self.peek() == "#":
            end = self.text.find("\n", self.pos)
            self.pos = len(self.text) if end < 0 else end
            if self.text[self.pos - 1 : self.pos] == "\r":
                self.pos -= 1

    def skip_newline(self) -> bool:
        for newline in ("\r\n", "\n"):
            if self.startswith(newline):
                self.pos += len(newline)
                return True
        return False

    def skip_space_and_comments(self) -> None:
        """Blanks, comments and line breaks, as allowed between the items of an array."""
        while True:
            self.skip_blanks()
            self.skip_comment()
            if not self.skip_newline():
                return

    def end_of_line(self) -> None:
        self.skip_blanks()
        self.skip_comment()
        if not self.at_end() and not self.skip_newline():
            raise self.error(f"unexpected {self.peek()!r} after a complete statement")

    # Keys

    def key(self) -> KeyPath:
        parts = [self.key_part()]
        while True:
            start = self.pos
            self.skip_blanks()
            if self.peek() != ".":
                self.pos = start
                return tuple(parts)
            self.pos += 1
            self.skip_blanks()
            parts.append(self.key_part())

    def key_part(self) -> str:
        if self.startswith('"""') or self.startswith("'''"):
            raise self.error("a multi-line string cannot be a key")
        if self.peek() == '"':
            return self.basic_string()
        if self.peek() == "'":
            return self.literal_string()
        match = _BARE_KEY.match(self.text, self.pos)
        if not match:
            raise self.error(f"expected a key, found {self.peek() or 'the end of the file'!r}")
        self.pos = match.end()
        return match.group()

    # Values

    def value(self) -> Any:
        if self.startswith('"""'):
            return self.multiline_string('"')
        if self.startswith("'''"):
            return self.multiline_string("'")
        char = self.peek()
        if char == '"':
            return self.basic_string()
        if char == "'":
            return self.literal_string()
        if char == "[":
            return self.array()
        if char == "{":
            return self.inline_table()
        return self.scalar()

    def escape(self) -> str:
        """One escape sequence; ``pos`` is at the backslash."""
        code = self.text[self.pos + 1 : self.pos + 2]
        if code in _ESCAPES:
            self.pos += 2
            return _ESCAPES[code]
        if code in ("u", "U"):
            size = 4 if code == "u" else 8
            digits = self.text[self.pos + 2 : self.pos + 2 + size]
            if len(digits) != size or not all(char in "0123456789abcdefABCDEF" for char in digits):
                raise self.error(f"invalid unicode escape \\{code}{digits}")
            self.pos += 2 + size
            return chr(int(digits, 16))
        raise self.error(f"invalid escape sequence \\{code}")

    def basic_string(self) -> str:
        self.pos += 1
        chars = []
        while True:
            char = self.peek()
            if char in ("", "\n", "\r"):
                raise self.error("unterminated string")
            if char == '"':
                self.pos += 1
                return "".join(chars)
            if char == "\\":
                chars.append(self.escape())
            else:
                run = _PLAIN.match(self.text, self.pos)
                chars.append(run.group())
                self.pos = run.end()

    def literal_string(self) -> str:
        end = self.text.find("'", self.pos + 1)
        line_end = self.text.find("\n", self.pos + 1)
        if end < 0 or 0 <= line_end < end:
            raise self.error("unterminated string")
        value = self.text[self.pos + 1 : end]
        self.pos = end + 1
        return value

    def multiline_string(self, quote: str) -> str:
        delimiter = quote * 3
        opening = self.pos
        self.pos += 3
        self.skip_newline()  # a line break right after the opening delimiter is not part of the string
        chars = []
        while True:
            if self.at_end():
                self.pos = opening
                raise self.error("unterminated multi-line string")
            if self.startswith(delimiter):
                # Up to two quotes may stand right before the closing delimiter and belong to the string.
                rest = self.text[self.pos :]
                extra = min(len(rest) - len(rest.lstrip(quote)) - 3, 2)
                chars.append(quote * extra)
                self.pos += 3 + extra
                return "".join(chars)
            char = self.peek()
            if quote == '"' and char == "\\":
                after = self.pos + 1
                rest = self.text[after:]
                stripped = rest.lstrip(" \t")
                if stripped.startswith(("\n", "\r\n")):
                    # A line-ending backslash trims the break and all white space up to the next text.
                    self.pos = after + (len(rest) - len(stripped))
                    self.skip_space_only()
                    continue
                chars.append(self.escape())
                continue
            chars.append(char)
            self.pos += 1

    def skip_space_only(self) -> None:
        self.pos = _SPACE.match(self.text, self.pos).end()

    def array(self) -> list[Any]:
        self.pos += 1
        items: list[Any] = []
        while True:
            self.skip_space_and_comments()
            if self.peek() == "]":
                self.pos += 1
                return items
            items.append(self.value())
            self.skip_space_and_comments()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() == "]":
                self.pos += 1
                return items
            else:
                raise self.error(f"expected ',' or ']' in an array, found {self.peek() or 'the end of the file'!r}")

    def inline_table(self) -> InlineTable:
        self.pos += 1
        table = InlineTable()
        while True:
            self.skip_space_and_comments()
            if self.peek() == "}":
                self.pos += 1
                return table
            path = self.key()
            self.skip_blanks()
            if self.peek() != "=":
                raise self.error("expected '=' after a key in an inline table")
            self.pos += 1
            self.skip_blanks()
            target = table
            for part in path[:-1]:
                target = target.setdefault(part, InlineTable())
            target[path[-1]] = self.value()
            self.skip_space_and_comments()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "}":
                raise self.error(f"expected ',' or '}}' in an inline table, found {self.peek() or 'the end'!r}")

    def scalar(self) -> Any:
        date_time = _DATE_TIME.match(self.text, self.pos)
        match = date_time or _SCALAR.match(self.text, self.pos)
        if not match:
            raise self.error(f"expected a value, found {self.peek() or 'the end of the file'!r}")
        raw = match.group()
        self.pos = match.end()
        if raw in ("true", "false"):
            return raw == "true"
        if _INTEGER.fullmatch(raw):
            return int(raw.replace("_", ""))
        if _PREFIXED_INTEGER.fullmatch(raw):
            return int(raw.replace("_", ""), 0)
        if date_time or _OTHER_SCALAR.fullmatch(raw):
            return Opaque(raw)
        raise self.error(f"invalid value {raw!r}")


# --- The document -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """A ``[table]`` or ``[[array.of.tables]]`` line."""

    path: KeyPath
    array: bool
    start: int
    end: int
    indent: str
    line: int


@dataclass(frozen=True)
class Entry:
    """A ``key = value`` statement, which may span several lines; ``end`` is past its last line break."""

    table: KeyPath
    key: KeyPath
    header: int
    start: int
    value_start: int
    value_end: int
    end: int
    indent: str
    line: int
    value: Any

    @property
    def path(self) -> KeyPath:
        return self.table + self.key


@dataclass
class Document:
    text: str
    headers: list[Header] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)

    def entry(self, path: KeyPath) -> Entry | None:
        found = [entry for entry in self.entries if entry.path == path]
        if len(found) > 1:
            raise EditError(f"{format_key(path)} is set twice (lines {found[0].line} and {found[1].line})")
        return found[0] if found else None

    def value(self, path: KeyPath, default: Any = None) -> Any:
        entry = self.entry(path)
        return default if entry is None else entry.value

    def header(self, path: KeyPath) -> Header | None:
        return next((header for header in self.headers if header.path == path and not header.array), None)

    def section(self, index: int) -> list[Entry]:
        return [entry for entry in self.entries if entry.header == index]

    def quote(self) -> str:
        """The file's own string quoting, so added text looks like its neighbours."""
        literal = sum(1 for entry in self.entries if self.text[entry.value_start] == "'")
        basic = sum(1 for entry in self.entries if self.text[entry.value_start] == '"')
        return "'" if literal > basic else '"'

    def newline(self) -> str:
        return "\r\n" if "\r\n" in self.text else "\n"

    def steps(self) -> tuple[str, str]:
        """How far the file indents a sub-table's header from its parent's, and keys from their header."""
        header_step = key_step = None
        for header in self.headers:
            parent = self.header(header.path[:-1])
            if header_step is None and parent and header.indent.startswith(parent.indent):
                header_step = header.indent[len(parent.indent) :]
        for index, header in enumerate(self.headers):
            members = self.section(index)
            if key_step is None and members and members[0].indent.startswith(header.indent):
                key_step = members[0].indent[len(header.indent) :]
        return header_step or "", key_step or ""

    def has_content_below(self, path: KeyPath) -> bool:
        """Whether any table header or value lies inside ``path``."""
        paths = [header.path for header in self.headers] + [entry.path for entry in self.entries]
        return any(below(other, path) for other in paths)


def parse(text: str) -> Document:
    """Read the statements of a TOML document, keeping where each one stands in ``text``."""
    scanner = _Scanner(text)
    document = Document(text)
    table: KeyPath = ()
    while not scanner.at_end():
        start = scanner.pos
        scanner.skip_blanks()
        char = scanner.peek()
        if char in ("", "#", "\n", "\r"):
            scanner.end_of_line()
            continue
        indent = text[start : scanner.pos]
        line = text.count("\n", 0, start) + 1
        if char == "[":
            array = scanner.startswith("[[")
            scanner.pos += 2 if array else 1
            scanner.skip_blanks()
            table = scanner.key()
            scanner.skip_blanks()
            closing = "]]" if array else "]"
            if not scanner.startswith(closing):
                raise scanner.error(f"expected {closing!r} to close the table header")
            scanner.pos += len(closing)
            scanner.end_of_line()
            document.headers.append(Header(table, array, start, scanner.pos, indent, line))
            continue
        key = scanner.key()
        scanner.skip_blanks()
        if scanner.peek() != "=":
            raise scanner.error(f"expected '=' after the key {format_key(key)}")
        scanner.pos += 1
        scanner.skip_blanks()
        value_start = scanner.pos
        value = scanner.value()
        value_end = scanner.pos
        scanner.end_of_line()
        document.entries.append(
            Entry(
                table, key, len(document.headers) - 1, start, value_start, value_end, scanner.pos, indent, line, value
            )
        )
    return document


# --- Setting one value --------------------------------------------------------------------------------------------


def below(path: KeyPath, prefix: KeyPath) -> bool:
    """Whether ``path`` lies strictly inside ``prefix``."""
    return len(path) > len(prefix) and path[: len(prefix)] == prefix


def _check_path_is_editable(document: Document, path: KeyPath) -> None:
    """Fail on what a text edit cannot change safely: values inside inline tables or arrays of tables."""
    name = format_key(path)
    for header in document.headers:
        if header.array and below(path, header.path):
            raise EditError(
                f"{name} lies inside the array of tables [[{format_key(header.path)}]] (line {header.line}); "
                "it cannot be edited safely"
            )
        if header.path == path or below(header.path, path):
            raise EditError(f"{name} is a table (line {header.line}), not a value")
    for entry in document.entries:
        if below(path, entry.path):
            kind = "an inline table" if isinstance(entry.value, dict) else "a value, not a table"
            raise EditError(
                f"{format_key(entry.path)} (line {entry.line}) is {kind}, so {name} cannot be set there; "
                "write it as a [table] section"
            )
        if below(entry.path, path):
            raise EditError(f"{name} is a table (defined by {format_key(entry.path)}, line {entry.line})")


def _insert(text: str, position: int, block: str, newline: str) -> str:
    """Insert whole lines at ``position``, which is at the start of a line or at the end of the text."""
    before = text[:position]
    if before and not before.endswith("\n"):
        block = newline + block
    return before + block + text[position:]


def _replace(document: Document, entry: Entry, value: Any) -> str:
    """The text with ``entry``'s value replaced where it stands, quoted as it was."""
    text = document.text
    written = text[entry.value_start : entry.value_end]
    quote = written[0] if written[:1] in ("'", '"') else document.quote()
    return text[: entry.value_start] + format_value(value, quote) + text[entry.value_end :]


def _add_to_section(document: Document, header: Header | None, statement: str) -> str:
    """Add a statement after the last one of a table's section (``header`` None: the root table)."""
    index = document.headers.index(header) if header is not None else -1
    members = document.section(index)
    if members:
        position, indent = members[-1].end, members[-1].indent
    elif header is not None:
        position, indent = header.end, header.indent + document.steps()[1]
    else:
        position, indent = 0, ""
    return _insert(document.text, position, indent + statement + document.newline(), document.newline())


def _region_end(document: Document, ancestor: KeyPath) -> int:
    """Past the last statement of ``ancestor``'s table and of all the tables under it."""
    end = 0
    for index, header in enumerate(document.headers):
        if header.path == ancestor or below(header.path, ancestor):
            members = document.section(index)
            end = max(end, members[-1].end if members else header.end)
    return end


def _new_table(document: Document, table: KeyPath, statement: str) -> str:
    """Add ``[table]`` holding ``statement`` beside its relatives: before its first sub-table, else after its parent."""
    header_step, key_step = document.steps()
    newline = document.newline()
    ancestors = [header for header in document.headers if not header.array and below(table, header.path)]
    parent = max(ancestors, key=lambda header: len(header.path), default=None)
    indent = (parent.indent + header_step * (len(table) - len(parent.path))) if parent else ""
    block = f"{indent}[{format_key(table, document.quote())}]{newline}{indent}{key_step}{statement}{newline}"
    children = [header.start for header in document.headers if below(header.path, table)]
    if children:
        return _insert(document.text, min(children), block, newline)
    relatives = [
        size
        for size in range(len(table) - 1, 0, -1)
        if any(header.path[:size] == table[:size] for header in document.headers)
    ]
    if relatives:
        return _insert(document.text, _region_end(document, table[: relatives[0]]), newline + block, newline)
    text = document.text
    if text and not text.endswith("\n"):
        text += newline
    return text + (newline if text else "") + block


def set_value(text: str, path: KeyPath, value: Any) -> tuple[str, bool]:
    """Return ``text`` with ``path`` set to ``value``, and whether that changed anything.

    An existing value is replaced where it stands, in the quoting it had. A missing key joins its table (after the
    table's last key); a table defined only by dotted keys gets another dotted key; a missing table is created.
    """
    document = parse(text)
    _check_path_is_editable(document, path)
    entry = document.entry(path)
    if entry is not None:
        return (text, False) if same_value(entry.value, value) else (_replace(document, entry, value), True)
    table, key = path[:-1], path[-1]
    quote = document.quote()
    header = document.header(table)
    if header is not None or not table:
        return _add_to_section(document, header, f"{format_key((key,), quote)} = {format_value(value, quote)}"), True
    dotted = [entry for entry in document.entries if below(entry.path, table) and below(table, entry.table)]
    if dotted:
        # The table exists only through dotted keys in a parent table: another dotted key there extends it.
        last = dotted[-1]
        relative = (*table[len(last.table) :], key)
        statement = f"{last.indent}{format_key(relative, quote)} = {format_value(value, quote)}{document.newline()}"
        return _insert(text, last.end, statement, document.newline()), True
    return _new_table(document, table, f"{format_key((key,), quote)} = {format_value(value, quote)}"), True
