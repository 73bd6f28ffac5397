"""The configuration reference in Markdown, generated from the schema.

``python -m appliance.config.reference --update README.md`` rewrites the block between
the README's reference markers; a test fails when the README and the schema differ.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from appliance.config.fields import meta
from appliance.config.schema import Config

START = "<!-- config-reference:start (generated from appliance/config/schema.py) -->"
END = "<!-- config-reference:end -->"


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " \\| ".join(f'"{a}"' for a in get_args(tp))
    if origin is list:
        (inner,) = get_args(tp)
        return f"array of {_type_name(inner)}"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, str(tp))


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, list):
        return "`[" + ", ".join(f'"{v}"' for v in value) + "]`"
    return f"`{value}`"


def _limits(f: dataclasses.Field[Any]) -> str:
    m = meta(f)
    parts = []
    if m.get("min") is not None:
        parts.append(f"{m['min']:g} to {m['max']:g}")
    if m.get("unit"):
        parts.append(m["unit"])
    return " ".join(parts)


def _sections(cls: type[Any], prefix: str, array: bool) -> list[str]:
    hints = get_type_hints(cls)
    header = f"[[{prefix}]]" if array else f"[{prefix}]"
    summary = (cls.__doc__ or "").split(":", 1)[-1].strip()
    lines = [f"#### `{header}`", "", summary[:1].upper() + summary[1:], ""]
    rows: list[str] = []
    nested: list[str] = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        inner = get_args(tp)[0] if get_origin(tp) is list else None
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            nested += _sections(tp, f"{prefix}.{f.name}", array=False)
            continue
        if isinstance(inner, type) and dataclasses.is_dataclass(inner):
            nested += _sections(inner, f"{prefix}.{f.name}", array=True)
            continue
        doc = str(meta(f).get("doc", "")).replace("|", "\\|")
        rows.append(f"| `{f.name}` | {_type_name(tp)} | {_default(f)} | {_limits(f)} | {doc} |")
    if rows:
        lines += ["| key | type | default | range / unit | meaning |", "|---|---|---|---|---|"]
        lines += [*rows, ""]
    return [*lines, *nested]


def reference() -> str:
    """The whole reference, one table per TOML table."""
    hints = get_type_hints(Config)
    out: list[str] = []
    for f in dataclasses.fields(Config):
        tp = hints[f.name]
        if get_origin(tp) is list:
            out += _sections(get_args(tp)[0], f.name, array=True)
        else:
            out += _sections(tp, f.name, array=False)
    return "\n".join(out).rstrip() + "\n"


def replace_block(text: str, block: str) -> str:
    """``text`` with the part between the markers replaced by ``block``."""
    start = text.index(START) + len(START)
    end = text.index(END)
    return text[:start] + "\n\n" + block + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    """Print the reference, or rewrite it into a Markdown file with ``--update``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--update", type=Path, help="Markdown file holding the markers")
    args = parser.parse_args(argv)
    if args.update is None:
        sys.stdout.write(reference())
        return 0
    text = args.update.read_text("utf-8")
    args.update.write_text(replace_block(text, reference()), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
