"""Find the line of a table or key in TOML source, so errors can name it.

``tomllib`` returns plain dicts without positions; this scanner walks the text once and
records where each table header and key stands. It understands what can hide a key
(comments, single- and multi-line strings, arrays over several lines) and arrays of
tables, whose entries it numbers from 0 as the parsed lists do (TOML 1.0 §Array of Tables).
"""

from __future__ import annotations

Path = tuple[str | int, ...]


class _Scanner:
    """Tracks string and bracket state across lines."""

    def __init__(self) -> None:
        self.ml: str | None = None  # '"""' or "'''" while inside a multi-line string
        self.depth = 0  # [] and {} nesting of values

    @property
    def at_statement(self) -> bool:
        return self.ml is None and self.depth == 0

    def scan(self, text: str) -> None:
        i, n = 0, len(text)
        while i < n:
            if self.ml is not None:
                end = text.find(self.ml, i)
                if end < 0:
                    return
                if self.ml == '"""':
                    # An escaped quote does not close a basic string.
                    backslashes = 0
                    j = end - 1
                    while j >= i and text[j] == "\\":
                        backslashes += 1
                        j -= 1
                    if backslashes % 2:
                        i = end + 1
                        continue
                i = end + 3
                while i < n and text[i] == self.ml[0]:  # up to two quotes may end the content
                    i += 1
                self.ml = None
                continue
            c = text[i]
            if c == "#":
                return
            if text.startswith('"""', i) or text.startswith("'''", i):
                self.ml = text[i : i + 3]
                i += 3
                continue
            if c == '"':
                i = _skip_basic(text, i + 1)
                continue
            if c == "'":
                end = text.find("'", i + 1)
                i = n if end < 0 else end + 1
                continue
            if c in "[{":
                self.depth += 1
            elif c in "]}":
                self.depth = max(0, self.depth - 1)
            i += 1


def _skip_basic(text: str, i: int) -> int:
    """Index just past the closing quote of a basic string that opened before ``i``."""
    n = len(text)
    while i < n:
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i + 1
        i += 1
    return n


def _parse_key(text: str) -> tuple[list[str], int] | None:
    """Parse a dotted key at the start of ``text``; return its parts and the end index."""
    parts: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return None
        if text[i] == '"':
            end = _skip_basic(text, i + 1)
            parts.append(text[i + 1 : end - 1].encode().decode("unicode_escape", "replace"))
            i = end
        elif text[i] == "'":
            end = text.find("'", i + 1)
            if end < 0:
                return None
            parts.append(text[i + 1 : end])
            i = end + 1
        else:
            start = i
            while i < n and (text[i].isalnum() or text[i] in "-_"):
                i += 1
            if i == start:
                return None
            parts.append(text[start:i])
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == ".":
            i += 1
            continue
        return parts, i


class Locator:
    """Line numbers (1-based) of the tables and keys in one TOML document."""

    def __init__(self, source: str) -> None:
        self.tables: dict[Path, int] = {}
        self.keys: dict[tuple[Path, str], int] = {}
        counts: dict[tuple[str, ...], int] = {}
        current: Path = ()
        scanner = _Scanner()
        for lineno, line in enumerate(source.splitlines(), start=1):
            if not scanner.at_statement:
                scanner.scan(line)
                continue
            stripped = line.lstrip()
            if stripped.startswith("["):
                array = stripped.startswith("[[")
                parsed = _parse_key(stripped[2 if array else 1 :])
                if parsed is not None:
                    names = parsed[0]
                    if array:
                        index = counts.get(tuple(names), -1) + 1
                        counts[tuple(names)] = index
                        current = (*self._resolve(names[:-1], counts), names[-1], index)
                    else:
                        current = self._resolve(names, counts)
                    self.tables.setdefault(current, lineno)
                continue
            parsed = _parse_key(line)
            if parsed is not None and parsed[1] < len(line) and line[parsed[1]] == "=":
                names, end = parsed
                table = (*current, *names[:-1])
                self.keys.setdefault((table, names[-1]), lineno)
                self.tables.setdefault(table, lineno)
                scanner.scan(line[end + 1 :])
            else:
                scanner.scan(line)

    @staticmethod
    def _resolve(names: list[str], counts: dict[tuple[str, ...], int]) -> Path:
        """Insert the current entry index after every array-of-tables prefix."""
        out: list[str | int] = []
        for depth in range(len(names)):
            out.append(names[depth])
            prefix = tuple(names[: depth + 1])
            if prefix in counts:
                out.append(counts[prefix])
        return tuple(out)

    def line_of(self, table: Path, key: str | None = None) -> int | None:
        """The line of ``key`` in ``table``, else of the table itself, else ``None``."""
        if key is not None:
            if (table, key) in self.keys:
                return self.keys[(table, key)]
            for path in ((*table, key), (*table, key, 0)):  # the key names a table
                if path in self.tables:
                    return self.tables[path]
        while table:
            if table in self.tables:
                return self.tables[table]
            table = table[:-1]
        return None
