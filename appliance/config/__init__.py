"""Configuration: typed schema, loading with file/line/key errors, comment-keeping edits."""

from appliance.config.edit import ConfigEditor, atomic_write
from appliance.config.load import (
    DEFAULT_NAME,
    ConfigError,
    default_config_text,
    load_config,
    parse_config_text,
    read_config,
)
from appliance.config.schema import Config
from appliance.config.validate import ConfigIssue

__all__ = [
    "DEFAULT_NAME",
    "Config",
    "ConfigEditor",
    "ConfigError",
    "ConfigIssue",
    "atomic_write",
    "default_config_text",
    "load_config",
    "parse_config_text",
    "read_config",
]
