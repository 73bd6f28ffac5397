"""Read a configuration file (or the embedded default) with stdlib ``tomllib``."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

from appliance.config.schema import Config
from appliance.config.validate import ConfigIssue, build_config

DEFAULT_NAME = "(embedded default config)"


class ConfigError(Exception):
    """A configuration that cannot be used; ``issues`` says why, one line each."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


def default_config_text() -> str:
    """The commented default configuration shipped in the package."""
    return resources.files("appliance.config").joinpath("default.toml").read_text("utf-8")


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def parse_config_text(text: str, file: str) -> tuple[Config | None, list[ConfigIssue]]:
    """Parse and validate TOML text; syntax errors become issues with their line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        line = int(match.group(1)) if match else None
        if match:
            message = f"{message[: match.start()]} (column {match.group(2)})"
        return None, [ConfigIssue(file, line, (), "", f"invalid TOML: {message}")]
    config, issues = build_config(data, file=file, source=text)
    return config, issues


def read_config(path: Path | None) -> tuple[Config | None, list[ConfigIssue]]:
    """Read and validate ``path`` (``None``: the embedded default)."""
    if path is None:
        return parse_config_text(default_config_text(), DEFAULT_NAME)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return None, [ConfigIssue(str(path), None, (), "", f"cannot read the file: {reason}")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [
            ConfigIssue(
                str(path),
                line,
                (),
                "",
                f"expected UTF-8 text (TOML 1.0), found byte 0x{raw[exc.start]:02x}",
            )
        ]
    return parse_config_text(text, str(path))


def load_config(path: Path | None) -> Config:
    """The validated configuration; raises :class:`ConfigError` listing every problem."""
    config, issues = read_config(path)
    if config is None:
        raise ConfigError(issues)
    return config
