"""Daemon settings from a YAML file, as Sensu's ``agent.yml``: keys are the long flag names.

    # agent.yml
    name: web1
    subscriptions: [linux, web]
    statsd-addr: 127.0.0.1:8125
    statsd-percentiles: [90, 99]

Values go through the same parsing as the flags (lists may be written as YAML lists); flags
given on the command line win over the file. An unknown key or a bad value is an error
naming the file and the key.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

CONFIG_FILE_FLAG = "--config-file"


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())  # labels: {team: ops}
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    found = {}
    for action in parser._actions:  # argparse offers no public view of its options
        for option in action.option_strings:
            if option.startswith("--"):
                found[option[2:]] = action
    return found


def file_defaults(parser: argparse.ArgumentParser, path: Path) -> dict[str, Any]:
    """The settings in ``path`` as parser defaults (dest -> value)."""
    import yaml  # here: the operator commands, which read no settings file, do not pay for the loader

    from pipeline.config.strict_yaml import StrictLoader, yaml_error

    try:
        # StrictLoader: nesting bounded, list keys and repeated keys refused, as in resource files
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=StrictLoader) or {}
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: an integer over 4300 digits
        raise ConfigError(str(path), f"cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise yaml_error(str(path), exc) from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "expected a mapping of setting: value")
    options = {k: v for k, v in _options(parser).items() if k not in ("help", "config-file", "version")}
    defaults: dict[str, Any] = {}
    for key, value in data.items():
        action = options.get(str(key))
        if action is None:
            raise ConfigError(str(path), f"{key}: unknown setting (expected one of {', '.join(sorted(options))})")
        defaults[action.dest] = _convert(action, value, path, str(key))
    return defaults


def _convert(action: argparse.Action, value: Any, path: Path, key: str) -> Any:
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise ConfigError(str(path), f"{key}: expected true or false, got {value!r}")
        return value
    converter = action.type if callable(action.type) else str
    try:
        converted = converter(_as_text(value))
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise ConfigError(str(path), f"{key}: {exc}") from None
    return [converted] if isinstance(action, argparse._AppendAction) else converted


def config_file_in(argv: Sequence[str]) -> Path | None:
    """The ``--config-file`` given in ``argv``, if any."""
    for i, arg in enumerate(argv):
        if arg == CONFIG_FILE_FLAG and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith(CONFIG_FILE_FLAG + "="):
            return Path(arg.split("=", 1)[1])
    return None
