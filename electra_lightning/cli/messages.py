"""One-line errors of the Lightning command line: a parser that prints one line and the known
options nearest to a mistyped one, and every unknown key of every ``--config`` file at once."""

from __future__ import annotations

import difflib
import re
import sys

from lightning.pytorch.cli import LightningArgumentParser

from electra_lightning.common._compat import (
    loads_config_group,
    option_actions,
)
from electra_lightning.common.config_files import config_files


class OneLineParser(LightningArgumentParser):
    """Options are spelled out (``--trainer.max_step`` is not taken as ``max_steps``), and a
    mistake is one ``error:`` line with the nearest known options and a pointer to ``--help``,
    not the ~90-line usage."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, *rest, **kwargs):
        self.argv = list(sys.argv[1:] if args is None else args)  # the --config files, on error
        return super().parse_args(args, *rest, **kwargs)

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error:  # jsonargparse parsing a nested value: it catches this
            return super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        line = None
        if re.search(r"(?:[Kk]ey|option) '[A-Za-z0-9_.]+'", str(message)):
            line = unknown_config_keys_error(config_files(getattr(self, "argv", [])), parser)
        print(line or one_line_error(message, parser), file=sys.stderr)
        sys.exit(2)


def unknown_keys(config: dict, known: set[str], groups: set[str], prefix: str = "") -> list[str]:
    """The dotted keys of a config mapping that name no option: a group (``trainer``,
    ``model.size``) is looked into, an option's value (a class's ``init_args``) is not."""
    found = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if (
            isinstance(value, dict)
            and value
            and (f"--{name}" in groups or f"--{name}" not in known)
        ):
            found += unknown_keys(value, known, groups, f"{name}.")
        elif f"--{name}" not in known:
            found.append(name)
    return found


def unknown_config_keys_error(files: list[tuple[str, dict]], parser) -> str | None:
    """One line naming every unknown key of every ``--config`` file (jsonargparse stops at the
    first), each with the nearest known option; None when the files hold none."""
    actions = option_actions(parser)
    known = {o for o in actions if o.startswith("--")}
    groups = {o for o in known if loads_config_group(actions[o])}
    parts = []
    for path, config in files:
        keys = []
        for key in unknown_keys(config, known, groups):
            near = difflib.get_close_matches(f"--{key}", known, n=1, cutoff=0.75)
            keys.append(f"'{key}'" + (f" (did you mean {near[0]}?)" if near else ""))
        if keys:
            parts.append(f"{path}: unknown key{'s' if len(keys) > 1 else ''} {', '.join(keys)}")
    if not parts:
        return None
    prog = parser.prog.replace(" [options]", "")
    return f"error: {'; '.join(parts)} (all options: {prog} --help)"


def one_line_error(message: str, parser) -> str:
    """``error: <first line of message>`` + the known options nearest to each unknown one."""
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    first = lines[0] if lines else "invalid arguments"
    known = [o for o in option_actions(parser) if o.startswith("--")]  # the names to suggest
    unknown = re.findall(r"(--[A-Za-z0-9_.+-]+)", " ".join(lines[:3]))
    unknown += [
        f"--{key}" for key in re.findall(r"(?:[Kk]ey|option) '([A-Za-z0-9_.]+)'", " ".join(lines))
    ]
    hints = []
    for option in dict.fromkeys(unknown):
        if option in known:
            continue
        hints += difflib.get_close_matches(option.split("=")[0], known, n=1, cutoff=0.75)
    if len(lines) > 1 and not unknown:
        first += f" ({lines[-1][:200]})"
    hint = f"; did you mean {' or '.join(dict.fromkeys(hints))}?" if hints else ""
    prog = parser.prog.replace(" [options]", "")
    return f"error: {first}{hint} (all options: {prog} --help)"
