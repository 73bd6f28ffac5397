"""Turn parsed TOML into the typed :class:`~appliance.config.schema.Config`, or into errors.

The walk is generic over the schema's dataclasses: it reports every problem it finds
(unknown keys, missing keys, wrong types, values out of range, failed checks, rules
across keys), each naming the file, line, table and key, what was expected and what
was found. Nothing here raises on bad input.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import typing
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin, get_type_hints

from appliance.config.fields import meta
from appliance.config.locate import Locator, Path
from appliance.config.schema import Config


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a configuration file."""

    file: str
    line: int | None
    table: Path
    key: str
    message: str

    @property
    def table_name(self) -> str:
        """``[sip.upstream]``, ``[[sip.accounts]] #2`` or ``(top level)``."""
        return table_label(self.table)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.key}:" if self.key else ""
        return f"{where}: {self.table_name}{key} {self.message}"


def table_label(table: Path) -> str:
    """How a table path is written in messages."""
    if not table:
        return "(top level)"
    if isinstance(table[-1], int):
        names = ".".join(str(p) for p in table[:-1] if not isinstance(p, int))
        return f"[[{names}]] #{table[-1] + 1}"
    return "[" + ".".join(str(p) for p in table if not isinstance(p, int)) + "]"


def describe(value: Any) -> str:
    """Name a TOML value's type and show it, for 'found ...' in messages."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a float ({value})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f'a string ("{shown}")'
    if isinstance(value, list):
        return f"an array of {len(value)} element(s)"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return f"a date/time ({value.isoformat()})"
    return type(value).__name__


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


class _Walker:
    def __init__(self, file: str, locator: Locator) -> None:
        self.file = file
        self.locator = locator
        self.issues: list[ConfigIssue] = []

    def issue(self, table: Path, key: str, message: str) -> None:
        line = self.locator.line_of(table, key or None)
        self.issues.append(ConfigIssue(self.file, line, table, key, message))

    def build(self, cls: type[Any], data: dict[str, Any], table: Path) -> Any:
        """Build dataclass ``cls`` from ``data``; ``None`` if anything in it was wrong."""
        before = len(self.issues)
        hints = get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in data:
            if key not in fields:
                hint = difflib.get_close_matches(key, list(fields), n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
                known = ", ".join(fields)
                self.issue(table, key, f"unknown key (known keys: {known}){suggestion}")
        kwargs: dict[str, Any] = {}
        for name, f in fields.items():
            if name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    self.issue(
                        table,
                        name,
                        f"required key is missing (expected {self.expected(hints[name])})",
                    )
                continue
            ok, value = self.convert(hints[name], data[name], table, name)
            if ok:
                ok = self.check_field(f, value, table, name)
            if ok:
                kwargs[name] = value
        if len(self.issues) > before:
            return None
        obj = cls(**kwargs)
        problems = getattr(obj, "problems", None)
        if problems is not None:
            for key, message in problems():
                self.issue(*self.blame(table, key), message)
        return None if len(self.issues) > before else obj

    def blame(self, table: Path, key: str) -> tuple[Path, str]:
        """Resolve a key named by a ``problems()`` rule to a table path and a key.

        ``routes.0.gateway`` is key ``gateway`` of the first ``[[routes]]`` entry;
        ``web.port|msrp.port`` names keys in conflict: the last one written in the
        file is blamed (the one most likely just changed), else the first.
        """
        candidates = []
        for alternative in key.split("|"):
            *sub, leaf = alternative.split(".")
            path = tuple(int(p) if p.isdigit() else p for p in sub)
            candidates.append(((*table, *path), leaf))
        located = [c for c in candidates if (c[0], c[1]) in self.locator.keys]
        if located:
            return max(located, key=lambda c: self.locator.keys[(c[0], c[1])])
        return candidates[0]

    def expected(self, tp: Any) -> str:
        origin = get_origin(tp)
        if origin is Literal:
            return "one of " + ", ".join(f'"{a}"' for a in get_args(tp))
        if origin is list:
            (inner,) = get_args(tp)
            if dataclasses.is_dataclass(inner):
                return "an array of tables"
            return f"an array of {self.expected(inner).removeprefix('a ').removeprefix('an ')}s"
        if dataclasses.is_dataclass(tp):
            return "a table"
        return _TYPE_NAMES.get(tp, str(tp))

    def convert(self, tp: Any, value: Any, table: Path, key: str) -> tuple[bool, Any]:
        origin = get_origin(tp)
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                self.issue(table, key, f"expected a table, found {describe(value)}")
                return False, None
            obj = self.build(typing.cast(type, tp), value, (*table, key))
            return obj is not None, obj
        if origin is list:
            (inner,) = get_args(tp)
            if not isinstance(value, list):
                self.issue(table, key, f"expected {self.expected(tp)}, found {describe(value)}")
                return False, None
            out = []
            ok = True
            for index, element in enumerate(value):
                if dataclasses.is_dataclass(inner):
                    if not isinstance(element, dict):
                        self.issue(
                            table,
                            key,
                            f"expected an array of tables, found element "
                            f"{index + 1} to be {describe(element)}",
                        )
                        ok = False
                        continue
                    obj = self.build(typing.cast(type, inner), element, (*table, key, index))
                    ok = ok and obj is not None
                    out.append(obj)
                else:
                    good, converted = self.scalar(inner, element)
                    if not good:
                        self.issue(
                            table,
                            key,
                            f"expected {self.expected(tp)}, found element "
                            f"{index + 1} to be {describe(element)}",
                        )
                        ok = False
                    out.append(converted)
            return ok, out
        good, converted = self.scalar(tp, value)
        if not good:
            self.issue(table, key, f"expected {self.expected(tp)}, found {describe(value)}")
        return good, converted

    @staticmethod
    def scalar(tp: Any, value: Any) -> tuple[bool, Any]:
        if get_origin(tp) is Literal:
            return value in get_args(tp) and isinstance(value, str), value
        if tp is bool:
            return isinstance(value, bool), value
        if tp is int:
            return isinstance(value, int) and not isinstance(value, bool), value
        if tp is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            return ok, float(value) if ok else value
        if tp is str:
            return isinstance(value, str), value
        return False, value

    def check_field(self, f: dataclasses.Field[Any], value: Any, table: Path, key: str) -> bool:
        m = meta(f)
        low, high, unit = m.get("min"), m.get("max"), m.get("unit") or ""
        number = isinstance(value, int | float) and not isinstance(value, bool)
        too_low = number and low is not None and value < low
        too_high = number and high is not None and value > high
        if too_low or too_high:
            if low is not None and high is not None:
                expected = f"a value from {low:g} to {high:g}"
            elif low is not None:
                expected = f"a value of at least {low:g}"
            else:
                expected = f"a value of at most {high:g}"
            suffix = f" {unit}" if unit else ""
            self.issue(table, key, f"expected {expected}{suffix}, found {value:g}")
            return False
        check = m.get("check")
        if check is not None:
            problem = check(value)
            if problem is not None:
                self.issue(
                    table,
                    key,
                    f"expected {problem}, found {describe(value)}"
                    if not isinstance(value, list)
                    else f"expected {problem}",
                )
                return False
        return True


def build_config(
    data: dict[str, Any],
    *,
    file: str,
    source: str,
    cls: type[Any] | None = None,
    table: Path = (),
) -> tuple[Any, list[ConfigIssue]]:
    """Validate parsed TOML ``data``; return the config object (or ``None``) and the issues.

    ``table`` is where ``data`` sits in ``source`` when it is one section (``("network",)``).
    """
    walker = _Walker(file, Locator(source))
    obj = walker.build(cls or Config, data, table)
    issues = sorted(walker.issues, key=lambda i: i.line or 0)
    return (obj if not issues else None), issues
