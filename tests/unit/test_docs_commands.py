"""Every `unicity-infra …` command in the fenced shell blocks of README.md and docs/*.md parses with the real CLI.

Each command is split the way a shell would, its command path is resolved through
the click groups, and the leaf command's context is made with resilient parsing off.
So a renamed command, a removed option, a flag given a value, a missing argument or
an invalid choice in the docs fails here. Nothing is executed: the Docker tests
cover what the commands do.

Blocks count as shell when their info string is empty, sh, bash, shell, console
or zsh. A block with a line that starts with `$ ` is a transcript: only those
lines are commands and the rest is output.

Synopsis notation is understood. `[…]` marks an optional part, and ` | ` inside
brackets separates alternatives. `a|b|c` as one word lists values, and each is
checked. `…` or `...` stands for further options. An upper-case word or `<word>`
is a placeholder, replaced by a valid value only where the option's type demands
one (a choice or a number).

A line is left out only when it ends with a visible reason, for example
`# docs-test: skip (needs a second host)`.

The same blocks are checked for two facts that change with releases: `docker
pull` of an upstream image names the pinned reference, and a wrapper image
tag in an instruction (outside transcripts) is the current version.
"""

from __future__ import annotations

import itertools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from unicity_infra import __version__
from unicity_infra.cli import cli
from unicity_infra.settings import UPSTREAM_IMAGES

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGUAGES = {"", "sh", "bash", "shell", "console", "zsh"}
PROGRAM = "unicity-infra"
SKIP_MARK = re.compile(r"#\s*docs-test:\s*skip\b(?P<reason>.*)$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\s`]*)")
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>>", "2>&1", "&>", ")"}
ELLIPSES = {"…", "...", "[…]", "[...]"}
# click 8.2 and later raise this for a group called without a command; older versions exit with its help.
NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", click.exceptions.Exit)
PLACEHOLDER = re.compile(r"^(<[^<>]+>|[^a-z]*[A-Z][^a-z]*)$")


@dataclass(frozen=True)
class DocCommand:
    """One `unicity-infra …` command found in a doc: where it is, its text and its arguments."""

    source: str
    line: int
    text: str
    args: tuple[str, ...]
    skip_reason: str | None = None

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}"


# Extraction --------------------------------------------------------------------------


def iter_shell_blocks(text: str) -> list[tuple[int, list[str]]]:
    """Return (first line number, lines) of each fenced block whose info string is a shell language."""
    blocks: list[tuple[int, list[str]]] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        language = opening["info"].lower()
        body: list[str] = []
        index += 1
        while index < len(lines):
            closing = lines[index].strip()
            if closing.startswith(fence[0] * len(fence)) and closing.strip(fence[0]) == "":
                break
            # A fence indented in a list item indents its lines too; remove that much.
            body.append(lines[index][indent:] if not lines[index][:indent].strip() else lines[index].lstrip())
            index += 1
        if language in SHELL_LANGUAGES:
            blocks.append((index - len(body) + 1, body))
        index += 1
    return blocks


def logical_lines(first_line: int, body: list[str]) -> list[tuple[int, str]]:
    """Join continuation lines; in a transcript keep only the lines starting with `$ `, without the prompt.

    A line continues the previous one when that one ends with a backslash, or, in a
    synopsis, when it is indented and starts with `[` or `-`.
    """
    is_transcript = any(line.startswith("$ ") for line in body)
    result: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for offset, raw in enumerate(body):
        line = raw.rstrip()
        if not pending:
            start = first_line + offset
            if is_synopsis_continuation(line) and result and not is_transcript:
                start, previous = result.pop()
                pending.append(previous)
            elif is_transcript:
                if not line.startswith("$ "):
                    continue
                line = line[2:]
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        result.append((start, " ".join(part.strip() for part in pending)))
        pending = []
    if pending:
        result.append((start, " ".join(part.strip() for part in pending)))
    return result


def is_synopsis_continuation(line: str) -> bool:
    return line[:1].isspace() and line.lstrip()[:1] in ("[", "-")


def split_substitutions(line: str) -> tuple[str, list[str]]:
    """Replace each `$(…)` with a placeholder word and return the line and the inner commands."""
    inner: list[str] = []
    while (start := line.find("$(")) != -1:
        depth, end = 0, start + 1
        for end in range(start + 1, len(line)):
            depth += {"(": 1, ")": -1}.get(line[end], 0)
            if depth == 0:
                break
        inner.append(line[start + 2:end])
        line = line[:start] + "SUBSTITUTED" + line[end + 1:]
    return line, inner


def commands_in_line(line: str) -> list[list[str]]:
    """Return the argument lists after each `unicity-infra` word of a shell LINE, substitutions included.

    Raises ValueError when the line does not split as shell words (an unbalanced quote).
    """
    outer, substitutions = split_substitutions(line)
    found: list[list[str]] = []
    for text in [outer, *substitutions]:
        words = shlex.split(text, comments=True)
        for index, word in enumerate(words):
            if word == PROGRAM:
                found.append(_words_until_operator(words[index + 1:]))
    return found


def _words_until_operator(words: list[str]) -> list[str]:
    """Return WORDS up to the first shell operator; a `|` inside synopsis brackets separates alternatives."""
    command_words: list[str] = []
    depth = 0
    for word in words:
        if word in SHELL_OPERATORS and not (word == "|" and depth > 0):
            break
        if word.endswith(";"):
            command_words.append(word[:-1])
            break
        depth += word.count("[") - word.count("]")
        command_words.append(word)
    return command_words


def collect_commands(text: str, source: str) -> list[DocCommand]:
    """Return every `unicity-infra` command in the shell blocks of TEXT, the content of file SOURCE.

    A line that does not split as shell words (an unbalanced quote) becomes a
    command with the word `--unparseable-line`, so the check reports it.
    """
    commands: list[DocCommand] = []
    for first_line, body in iter_shell_blocks(text):
        for line_number, line in logical_lines(first_line, body):
            if PROGRAM not in line:
                continue
            mark = SKIP_MARK.search(line)
            skip_reason = mark["reason"].strip(" -—:()") if mark else None
            try:
                argument_lists = commands_in_line(line)
            except ValueError as exc:
                argument_lists = [["--unparseable-line"]]
                line = f"{line}  (shell split failed: {exc})"
            for args in argument_lists:
                commands.append(DocCommand(source, line_number, line, tuple(args), skip_reason))
    return commands


def collect_file(path: Path) -> list[DocCommand]:
    return collect_commands(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))


def documented_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


# Synopsis notation --------------------------------------------------------------------


def expand_synopsis(args: tuple[str, ...]) -> list[list[str]]:
    """Strip brackets and ellipses, drop alternation bars, and return one argument list per `a|b|c` value."""
    words: list[list[str]] = []
    for raw in args:
        word = _strip_brackets(raw)
        if word in ELLIPSES or raw in ELLIPSES or word in {"|", ""}:
            continue
        word = word.removesuffix("…").removesuffix("...")
        if "|" in word and not word.startswith("<"):
            words.append(word.split("|"))
        else:
            words.append([word])
    return [list(choice) for choice in itertools.product(*words)]


def _strip_brackets(word: str) -> str:
    """Remove optional-part brackets around WORD but keep brackets that belong to it, as in `[HOST:]PORT`."""
    opened = len(word) - len(word.lstrip("["))
    closed = len(word) - len(word.rstrip("]"))
    inner = word[opened:len(word) - closed] if closed else word[opened:]
    while opened and inner.count("]") > inner.count("["):
        opened -= 1
        inner = "[" + inner
    while closed and inner.count("[") > inner.count("]"):
        closed -= 1
        inner += "]"
    return inner


def is_placeholder(word: str) -> bool:
    return bool(PLACEHOLDER.match(word)) and not word.startswith("-")


def _sample_value(param: click.Parameter, word: str) -> str:
    """Return WORD, or a value PARAM's type accepts when WORD is a placeholder the type would reject."""
    if not is_placeholder(word):
        return word
    kind = param.type
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, (click.types.IntParamType, click.types.FloatParamType)):
        return "1"
    if isinstance(kind, click.types.BoolParamType):
        return "true"
    return word


def _find_option(command: click.Command, name: str) -> click.Option | None:
    for param in command.params:
        if isinstance(param, click.Option) and name in (*param.opts, *param.secondary_opts):
            return param
    return None


def fill_placeholders(command: click.Command, words: list[str], *, options_only: bool) -> list[str]:
    """Replace placeholders that COMMAND's option and argument types would reject with valid values.

    With OPTIONS_ONLY (a group), stop at the first positional word: the subcommand.
    """
    filled: list[str] = []
    arguments = [param for param in command.params if isinstance(param, click.Argument)]
    index = 0
    while index < len(words):
        word = words[index]
        if word.startswith("-") and word != "-":
            name, has_value, value = word.partition("=")
            option = _find_option(command, name)
            takes_value = option is not None and not option.is_flag and not option.count
            if has_value:
                filled.append(f"{name}={_sample_value(option, value) if option else value}")
            elif takes_value and index + 1 < len(words):
                filled.extend([word, _sample_value(option, words[index + 1])])
                index += 1
            else:
                filled.append(word)
        elif options_only:
            return filled + words[index:]
        else:
            argument = arguments[0] if arguments else None
            filled.append(_sample_value(argument, word) if argument else word)
            if argument is not None and argument.nargs != -1:
                arguments.pop(0)
        index += 1
    return filled


# Checking ------------------------------------------------------------------------------


def check_against_cli(args: list[str]) -> None:
    """Resolve ARGS through the CLI's groups and parse them strictly; raise click's error when they do not parse."""
    command: click.Command = cli
    parent: click.Context | None = None
    info_name = PROGRAM
    remaining = list(args)
    while True:
        is_group = isinstance(command, click.Group)
        words = fill_placeholders(command, remaining, options_only=is_group)
        try:
            context = command.make_context(info_name, words, parent=parent, resilient_parsing=False)
        except click.exceptions.Exit:  # --help or --version: valid, nothing more to check
            return
        except NO_ARGS_IS_HELP as exc:  # a group given nothing prints its help as the error
            raise click.UsageError(f"'{info_name}' needs a command: one of {', '.join(command.commands)}") from exc
        if not is_group:
            return
        rest = [*context._protected_args, *context.args]
        if not rest:
            if command.invoke_without_command:
                return
            raise click.UsageError(f"'{context.command_path}' needs a command: one of {', '.join(command.commands)}")
        info_name, subcommand, remaining = command.resolve_command(context, rest)
        assert subcommand is not None  # resolve_command raises UsageError for an unknown name
        command, parent = subcommand, context


def problem_of(args: list[str]) -> str | None:
    """Return click's message when ARGS do not parse against the CLI, else None."""
    for variant in expand_synopsis(tuple(args)):
        try:
            check_against_cli(variant)
        except click.ClickException as exc:
            return f"{' '.join(variant)!r}: {exc.format_message()}"
    return None


ALL_COMMANDS = [command for path in documented_files() for command in collect_file(path)]
WRAPPER_TAG = re.compile(r"\bunicity-infra/(?:relay|faucet|aggregator-proxy|edge):(?P<tag>[\w.-]+)")


def instruction_lines() -> list[tuple[str, str]]:
    """Return (location, text) of every shell line in the docs that is not in a transcript."""
    found = []
    for path in documented_files():
        source = str(path.relative_to(ROOT))
        for first_line, body in iter_shell_blocks(path.read_text(encoding="utf-8")):
            if any(line.startswith("$ ") for line in body):
                continue
            found += [(f"{source}:{number}", text) for number, text in logical_lines(first_line, body)]
    return found


def pulled_references(text: str) -> list[str]:
    """Return the image references of each `docker pull` in the shell line TEXT."""
    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        return []
    return [words[index + 2] for index in range(len(words) - 2)
            if words[index:index + 2] == ["docker", "pull"] and not words[index + 2].startswith("-")]


def repository_of(reference: str) -> str:
    """Return REFERENCE without its tag or digest: `mongo:7.0` → `mongo`."""
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda command: command.location)
def test_documented_command_parses(command: DocCommand) -> None:
    if command.skip_reason is not None:
        assert command.skip_reason, f"{command.location}: a docs-test skip mark needs a reason after it"
        pytest.skip(f"{command.location}: {command.skip_reason}")

    problem = problem_of(list(command.args))

    assert problem is None, f"{command.location}: {command.text}\n  {problem}"


def test_docs_contain_commands() -> None:
    per_file = {path.name: len(collect_file(path)) for path in documented_files()}

    for name in ("README.md", "deploy.md", "aggregator-genesis.md", "operations.md", "edge.md", "harness.md"):
        assert per_file.get(name, 0) >= 3, f"{name} has {per_file.get(name, 0)} checked commands; the extraction broke"


def test_skip_marks_give_reasons() -> None:
    unexplained = [command.location for command in ALL_COMMANDS
                   if command.skip_reason is not None and not command.skip_reason]

    assert unexplained == []


def test_documented_pulls_use_pins() -> None:
    pins = {repository_of(reference): reference for reference in UPSTREAM_IMAGES.values()}
    pulls = [(location, reference) for location, text in instruction_lines() for reference in pulled_references(text)]
    stale = [f"{location}: {reference} (pinned: {pins[repository_of(reference)]})" for location, reference in pulls
             if repository_of(reference) in pins and reference != pins[repository_of(reference)]]

    assert pulls, "no 'docker pull' found in the docs; the extraction broke"
    assert stale == []


def test_documented_wrapper_tags_match_version() -> None:
    stale = [f"{location}: {match[0]}" for location, text in instruction_lines()
             for match in WRAPPER_TAG.finditer(text) if match["tag"] != __version__]

    assert stale == []


# The checker itself ------------------------------------------------------------------------


SAMPLE = """\
Intro with `unicity-infra nothing` inline, which is not checked.

```sh
unicity-infra status --json
unicity-infra run relay --domain relay.example.org \\
    --haproxy-api-key-file /etc/unicity/edge.key   # comment
eval "$(unicity-infra env)"
unicity-infra down && unicity-infra edge down
```

```
$ unicity-infra edge status --json
{"note": "output mentioning unicity-infra run relay --bogus is not a command"}
```

```json
{"unicity-infra": "not shell"}
```
"""


def test_collect_commands_sample() -> None:
    found = [(command.line, list(command.args)) for command in collect_commands(SAMPLE, "sample.md")]

    assert found == [
        (4, ["status", "--json"]),
        (5, ["run", "relay", "--domain", "relay.example.org", "--haproxy-api-key-file", "/etc/unicity/edge.key"]),
        (7, ["env"]),
        (8, ["down"]),
        (8, ["edge", "down"]),
        (12, ["edge", "status", "--json"]),
    ]


def test_pulled_references_and_repository() -> None:
    assert pulled_references("docker pull mongo:7.0 && docker pull --quiet x") == ["mongo:7.0"]
    assert repository_of("ghcr.io/unicitynetwork/bft-core:ceceacd") == "ghcr.io/unicitynetwork/bft-core"
    assert repository_of("localhost:5000/relay@sha256:abc") == "localhost:5000/relay"
    assert repository_of("mongo") == "mongo"


def test_expand_synopsis_notation() -> None:
    args = ("edge", "up", "[--http-port", "80]", "[--require-key", "|", "--api-key-file", "FILE]", "[--json]")

    assert expand_synopsis(args) == [
        ["edge", "up", "--http-port", "80", "--require-key", "--api-key-file", "FILE", "--json"],
    ]
    assert expand_synopsis(("env", "[--format", "shell|json]")) == [
        ["env", "--format", "shell"], ["env", "--format", "json"],
    ]
    assert _strip_brackets("[HOST:]PORT") == "[HOST:]PORT"
    assert _strip_brackets("[--publish") == "--publish"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "relay", "--no-such-flag"], "No such option"),
        (["rnu", "relay"], "No such command"),
        (["edge", "launch"], "No such command"),
        (["run", "mailer"], "mailer"),
        (["up", "--mode", "cloud"], "cloud"),
        (["env", "--format", "shell|yaml"], "yaml"),
        (["probe", "relay"], "URL"),
        (["logs", "relay", "--tail"], "--tail"),
        (["status", "--json", "extra"], "extra"),
        (["up", "--timeout", "soon"], "soon"),
        (["trust-base"], "needs a command"),
        (["edge", "up", "[--http-port", "80]", "[--require-key", "|", "--api-key-file]"], "--api-key-file"),
    ],
)
def test_problem_of_bad_commands(args: list[str], message: str) -> None:
    problem = problem_of(args)

    assert problem is not None
    assert message in problem


@pytest.mark.parametrize(
    "args",
    [
        ["--stack", "e2e", "trust-base", "export", "--out", "trust-base.json"],
        ["run", "SERVICE", "--timeout", "SECONDS"],
        ["run", "faucet", "…"],
        ["down", "[--wipe", "--yes]", "[--wipe-certificates]"],
        ["images", "build", "[relay|aggregator]", "--offline"],
        ["run", "relay", "--publish", "[HOST:]PORT"],
        ["up", "--help"],
    ],
)
def test_problem_of_valid_commands(args: list[str]) -> None:
    assert problem_of(args) is None
