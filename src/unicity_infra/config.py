"""Settings file ``unicity-infra.toml``: find it, parse it, and check it against the CLI's options.

Top-level keys set global options such as ``stack``. A table per command, such as
``[up]`` or ``[edge.up]``, sets that command's options by their long names, with
dashes or underscores. ``cli.py`` hands the result to click as ``default_map``.
That makes flags and environment variables win over the file, and the file win
over built-in defaults.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import click

from unicity_infra.errors import SettingsError

__all__ = [
    "CONFIG_ENVVAR",
    "DEFAULT_CONFIG_FILE",
    "ConfigFileError",
    "FileSettings",
    "find_settings_file",
    "load_settings",
    "parse_settings",
]

DEFAULT_CONFIG_FILE = "unicity-infra.toml"
CONFIG_ENVVAR = "UNICITY_INFRA_CONFIG"

# Options a file may not set, keyed by option name with underscores, with the reason shown to the user.
COMMAND_LINE_ONLY = {
    "config": f"name another settings file with --config or {CONFIG_ENVVAR}",
    "debug": "give --debug on the command line",
    "fresh": "it removes data, so give --fresh on the command line each time",
    "wipe": "it removes data, so give --wipe on the command line each time",
    "wipe_certificates": "it removes data, so give --wipe-certificates on the command line each time",
    "yes": "it confirms removing data, so give --yes on the command line each time",
    "force": "it overwrites data, so give --force on the command line each time",
    "haproxy_api_key": "keep secrets out of the settings file; set haproxy-api-key-file or the "
                       "UNICITY_HAPROXY_API_KEY variable",
}


class ConfigFileError(SettingsError):
    """The settings file is missing, unreadable or sets something the CLI does not accept."""

    def __init__(self, file: Path, problem: str, *, key: str | None = None, line: int | None = None) -> None:
        self.file = file
        self.key = key
        self.line = line
        where = f"{file}, line {line}" if line else str(file)
        # SettingsError's message shape ("invalid value for OPTION") does not fit a file, but its
        # attributes are kept so that callers reading option, value and accepted still work.
        self.option = key or str(file)
        self.value = None
        self.accepted = problem
        Exception.__init__(self, f"invalid settings file {where}: {problem}")


@dataclass(frozen=True)
class FileSettings:
    """Checked contents of a settings file.

    ``global_options`` maps global option names (``stack``) to values.
    ``default_map`` is the nested mapping click reads: command name, then
    subcommand name, then option name (click's parameter name, e.g. ``timeout_s``).
    ``sources`` maps a command path and parameter name to where the file sets it,
    e.g. ``key 'relay-domain' in table [up] of unicity-infra.toml, line 4``.
    """

    path: Path | None = None
    global_options: dict[str, object] = field(default_factory=dict)
    default_map: dict[str, object] = field(default_factory=dict)
    sources: dict[tuple[str, ...], dict[str, str]] = field(default_factory=dict)

    def source_of(self, command_path: tuple[str, ...], parameter: str) -> str | None:
        """Describe where the file sets PARAMETER of the command at COMMAND_PATH, or return None if it does not."""
        return self.sources.get(command_path, {}).get(parameter)


def find_settings_file(explicit: str | None, *, source: str) -> Path | None:
    """Return the settings file to read: EXPLICIT if given, else ./unicity-infra.toml if it exists.

    SOURCE names where EXPLICIT came from (``--config`` or the variable) for the message.
    Raises ConfigFileError when an explicitly named file does not exist. A missing
    default file only means that there are no file settings.
    """
    if explicit is None:
        default = Path(DEFAULT_CONFIG_FILE)
        return default if default.is_file() else None

    path = Path(explicit).expanduser()
    if not path.exists():
        raise ConfigFileError(path, f"no such file (named by {source}); check the path, or drop {source} to "
                                    f"read ./{DEFAULT_CONFIG_FILE} when it exists")
    if not path.is_file():
        raise ConfigFileError(path, f"not a regular file (named by {source}); name a TOML file")
    return path


def load_settings(path: Path, *, root: click.Group) -> FileSettings:
    """Read PATH and check it against the options of ROOT and its subcommands.

    Raises ConfigFileError for an unreadable file, invalid TOML, unknown tables or
    keys and values of the wrong type.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigFileError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc
    except OSError as exc:
        raise ConfigFileError(path, f"cannot be read: {exc.strerror}") from exc
    return parse_settings(text, file=path, root=root)


def parse_settings(text: str, *, file: Path, root: click.Group) -> FileSettings:
    """Parse TEXT, the contents of FILE, into settings for ROOT's options; see load_settings."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(file, f"not valid TOML: {exc}", line=getattr(exc, "lineno", None)) from exc

    checker = _Checker(file=file, text=text)
    default_map = checker.check_table(document, root, ())
    global_options = {name: default_map.pop(name) for name in list(default_map)
                      if not isinstance(default_map[name], dict)}
    return FileSettings(path=file, global_options=global_options, default_map=default_map, sources=checker.sources)


@dataclass
class _Checker:
    """Walker over a TOML document alongside the click command tree, recording where each option is set."""

    file: Path
    text: str
    keys: dict[tuple[str, ...], dict[str, str]] = field(default_factory=dict)
    sources: dict[tuple[str, ...], dict[str, str]] = field(default_factory=dict)

    def check_table(self, table: dict[str, object], command: click.Command,
                    path: tuple[str, ...]) -> dict[str, object]:
        options = _file_options(command)
        subcommands = command.commands if isinstance(command, click.Group) else {}
        checked: dict[str, object] = {}
        for key, value in table.items():
            if key in subcommands:
                checked[key] = self._check_subtable(value, subcommands[key], (*path, key))
                continue

            option = options.get(key.replace("-", "_"))
            if option is None:
                raise self._unknown_key(key, value, path, options, subcommands)
            if option.name in checked:
                raise self._error(f"{self._describe(path, key)} sets --{_long_name(option)} a second time "
                                  f"(as {self.keys[path][option.name]!r} too); keep one of them", path, key)
            checked[option.name] = self._check_value(value, option, path, key)
            self.keys.setdefault(path, {})[option.name] = key  # type: ignore[index] - option.name is set
            line = _find_line(self.text, path, key)
            self.sources.setdefault(path, {})[option.name] = (  # type: ignore[index]
                f"{self._describe(path, key)} of {self.file}" + (f", line {line}" if line else ""))
        return checked

    def _check_subtable(self, value: object, command: click.Command, path: tuple[str, ...]) -> dict[str, object]:
        if not isinstance(value, dict):
            raise self._error(f"{path[-1]!r} {self._place(path[:-1])} names the command "
                              f"'{' '.join(path)}'; its options go in a table [{'.'.join(path)}]",
                              path[:-1], path[-1])
        return self.check_table(value, command, path)

    def _check_value(self, value: object, option: click.Option, path: tuple[str, ...], key: str) -> object:
        converted, expected = _convert(value, option)
        if expected is not None:
            raise self._error(f"{self._describe(path, key)} has the value {value!r}; expected {expected}", path, key)
        return converted

    def _unknown_key(self, key: str, value: object, path: tuple[str, ...], options: dict[str, click.Option],
                     subcommands: dict[str, click.Command]) -> ConfigFileError:
        if key.replace("-", "_") in COMMAND_LINE_ONLY:
            reason = COMMAND_LINE_ONLY[key.replace("-", "_")]
            return self._error(f"{self._describe(path, key)} cannot be set in a file: {reason}", path, key)

        accepted = sorted({_long_name(option) for option in options.values()})
        tables = sorted(f"[{'.'.join((*path, name))}]" for name in subcommands)
        choices = []
        if accepted:
            choices.append(f"the key{'s' if len(accepted) > 1 else ''} {', '.join(accepted)}")
        if tables:
            choices.append(f"the table{'s' if len(tables) > 1 else ''} {', '.join(tables)}")
        if isinstance(value, dict):
            problem = f"unknown table [{'.'.join((*path, key))}]"
        else:
            problem = f"unknown key {key!r} {self._place(path)}"
        command = " ".join(("unicity-infra", *path, "--help"))
        accepted_here = " and ".join(choices) or "no keys"
        return self._error(f"{problem}; accepted {self._place(path)}: {accepted_here} (see '{command}')", path, key)

    def _describe(self, path: tuple[str, ...], key: str) -> str:
        return f"key {key!r} {self._place(path)}"

    @staticmethod
    def _place(path: tuple[str, ...]) -> str:
        return f"in table [{'.'.join(path)}]" if path else "at the top level"

    def _error(self, problem: str, path: tuple[str, ...], key: str) -> ConfigFileError:
        return ConfigFileError(self.file, problem, key=".".join((*path, key)), line=_find_line(self.text, path, key))


def _file_options(command: click.Command) -> dict[str, click.Option]:
    """Map each long option name of COMMAND, with underscores, to its option, leaving out command-line-only ones."""
    options: dict[str, click.Option] = {}
    for parameter in command.params:
        if not isinstance(parameter, click.Option) or parameter.is_eager or not parameter.expose_value:
            continue
        for flag in parameter.opts:
            if flag.startswith("--"):
                name = flag.removeprefix("--").replace("-", "_")
                if name not in COMMAND_LINE_ONLY:
                    options[name] = parameter
    return options


def _long_name(option: click.Option) -> str:
    return next(flag for flag in option.opts if flag.startswith("--")).removeprefix("--")


def _convert(value: object, option: click.Option) -> tuple[object, str | None]:
    """Convert VALUE to what click expects for OPTION.

    Returns the converted value and None, or None and a description of the accepted values.
    """
    if option.multiple:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            return None, "a list of strings, e.g. [\"a\", \"b\"]"
        converted = []
        for item in items:
            single, expected = _convert_single(item, option)
            if expected is not None:
                return None, f"a list whose items are each {expected}"
            converted.append(single)
        return converted, None
    return _convert_single(value, option)


def _convert_single(value: object, option: click.Option) -> tuple[object, str | None]:
    parameter_type = option.type
    if option.is_flag:
        return (value, None) if isinstance(value, bool) else (None, "true or false")
    if isinstance(parameter_type, click.Choice):
        choices = [str(choice) for choice in parameter_type.choices]
        return (value, None) if value in choices else (None, f"one of: {', '.join(choices)}")
    if isinstance(parameter_type, click.types.FloatParamType):
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        return (float(value), None) if is_number else (None, "a number")  # type: ignore[arg-type]
    if isinstance(parameter_type, click.types.IntParamType):
        is_integer = isinstance(value, int) and not isinstance(value, bool)
        return (value, None) if is_integer else (None, "an integer")
    if option.metavar == "BOOL" and isinstance(value, bool):
        return ("true" if value else "false"), None
    # Ports and ids are string options on the command line; a TOML integer for them reads naturally.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value), None
    if isinstance(value, str):
        return value, None
    return None, "true or false" if option.metavar == "BOOL" else "a string"


_TABLE_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\]?", re.MULTILINE)
_KEY = re.compile(r"^\s*[\"']?([A-Za-z0-9_\-]+)[\"']?\s*=")


def _find_line(text: str, path: tuple[str, ...], key: str) -> int | None:
    """Return the 1-based line where KEY is set in the table PATH, or None when no simple match is found.

    Finds ``key = ...`` under a ``[table]`` header and a ``[path.key]`` header; keys set
    through dotted keys or inline tables are not located.
    """
    key_header = ".".join((*path, key))
    table: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _TABLE_HEADER.match(line)
        if header:
            table = header.group(1).replace('"', "").replace(" ", "")
            if table == key_header:
                return number
            continue
        match = _KEY.match(line)
        if match and match.group(1) == key and (table or "") == ".".join(path):
            return number
    return None
