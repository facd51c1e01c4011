"""``server.toml``: the sketch server's settings file, one key per long option of ``clipasso-server``.

The file lives in CLIPasso's configuration folder (``platformdirs.user_config_dir("clipasso")``, i.e.
``$XDG_CONFIG_HOME/clipasso/server.toml`` on Linux), beside the Inkscape extension's settings. A key is a
long option with underscores for dashes (``port = 9000``, ``loss_weights = "~/models/rn101.pt"``,
``unload_after = 2.5``); a flag is ``true`` or ``false``. What is in force comes from, in this order: the
command line, the environment (``CLIPASSO_SERVER_TOKEN``), this file, the defaults. A missing file is no
error; an unknown key or a value of the wrong kind is one sentence naming the file, the key and what is
allowed (limits are checked with the options, naming the key and the file likewise).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from platformdirs import user_config_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SETTINGS_NAME = "server.toml"
NOT_SETTINGS = frozenset({"help", "print_config"})
"""Options that are not settings: they ask the command to do something else."""
COMMAND_LINE = "command line"
DEFAULT = "default"


class SettingsError(Exception):
    """The settings file cannot be used; ``str(error)`` says why in one sentence."""


def settings_path() -> Path:
    """Where ``clipasso-server`` looks for its settings file."""
    return Path(user_config_dir("clipasso")) / SETTINGS_NAME


def settings_in_force(make_parser: Callable[[], argparse.ArgumentParser], argv: Sequence[str], path: Path,
                      environment: Mapping[str, str], variables: Mapping[str, str]
                      ) -> tuple[argparse.Namespace, dict[str, str]]:
    """The options in force for ``argv`` and where each came from: the command line, an environment variable
    (``variables`` maps an option to the one its parser default reads), the file, or the default.

    argparse exits on a bad command line; a bad file raises :class:`SettingsError`.
    """
    given = given_on_command_line(make_parser(), argv)
    parser = make_parser()
    from_file = read_settings(path, parser)
    sources = {dest: COMMAND_LINE for dest in given}
    for action in settings_actions(parser):
        variable = variables.get(action.dest)
        if action.dest in given:
            continue
        if variable and environment.get(variable):
            sources[action.dest] = from_environment(variable)
        elif action.dest in from_file:
            parser.set_defaults(**{action.dest: from_file[action.dest]})
            sources[action.dest] = str(path)
        else:
            sources[action.dest] = DEFAULT
    return parser.parse_args(argv), sources


def from_environment(variable: str) -> str:
    """The source of a setting read from the environment variable ``variable``."""
    return f"environment ({variable})"


def given_on_command_line(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The options ``argv`` sets explicitly (by their ``dest``)."""
    for action in parser._actions:  # noqa: SLF001 - argparse has no public list of its actions
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def settings_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's options that the settings file may set, in the order ``--help`` lists them."""
    return [action for action in parser._actions  # noqa: SLF001
            if action.option_strings and action.dest not in NOT_SETTINGS]


def read_settings(path: Path, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The settings in ``path`` as option values by ``dest`` (``{}`` when there is no such file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"The settings file {path} cannot be read: {getattr(error, 'strerror', None) or error}.")
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"The settings file {path} is not valid TOML: {error}.") from None
    actions = {action.dest: action for action in settings_actions(parser)}
    values = {}
    for key, value in table.items():
        action = actions.get(key)
        if action is None:
            raise SettingsError(f"{path}: unknown setting {key!r}; the settings are {', '.join(sorted(actions))}.")
        values[action.dest] = _convert(path, key, value, action)
    return values


def _convert(path: Path, key: str, value: Any, action: argparse.Action) -> Any:
    """``value`` as the option's type; :class:`SettingsError` naming the file, the key and what is allowed."""
    def refuse(allowed: str) -> SettingsError:
        return SettingsError(f"{path}: {key} must be {allowed}, not {_toml(value)}.")

    if action.nargs == 0:  # a flag
        if not isinstance(value, bool):
            raise refuse("true or false")
        return value
    kind = action.type
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise refuse("a whole number")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise refuse("a number")
        value = float(value)
    elif not isinstance(value, str):
        raise refuse("a quoted string" if kind is not Path else "a file or folder path in quotes")
    elif kind is Path:
        value = Path(value).expanduser()
    if action.choices is not None and value not in action.choices:
        raise refuse("one of " + ", ".join(map(str, action.choices)))
    return value


def describe(args: argparse.Namespace, sources: Mapping[str, str], parser: argparse.ArgumentParser,
             path: Path, secret: frozenset[str] = frozenset({"token"})) -> str:
    """The settings in force as the lines of a ``server.toml``, each with where its value came from."""
    lines = [f"# clipasso-server settings in force: the command line, then the environment, then {path}"
             f"{'' if path.is_file() else ' (there is no such file)'}, then the defaults."]
    for action in settings_actions(parser):
        value, source = getattr(args, action.dest), sources.get(action.dest, DEFAULT)
        key = action.dest
        if value is None:
            lines.append(f"# {key} is not set  # {source}")
        elif action.dest in secret:
            lines.append(f"# {key} is set (not shown)  # {source}")
        else:
            lines.append(f"{key} = {_toml(value)}  # {source}")
    return "\n".join(lines)


def _toml(value: Any) -> str:
    """``value`` written as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)
