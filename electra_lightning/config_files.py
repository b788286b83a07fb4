"""The ``--config`` YAML files of a command line, read before Lightning parses them (light: no
torch), for the dispatcher's "fine-tuning or pretraining?" and for errors about renamed keys."""

from __future__ import annotations

import os


def config_files(args: list[str]) -> list[tuple[str, dict]]:
    """(path, contents) of every ``--config FILE`` / ``--config=FILE`` that exists."""
    import yaml

    found = []
    for i, arg in enumerate(args):
        path = args[i + 1] if arg == "--config" and i + 1 < len(args) else None
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        if path and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                config = yaml.safe_load(f)
            found.append((path, config if isinstance(config, dict) else {}))
    return found


def moved_keys(args: list[str], section: str, moved: dict[str, str]) -> None:
    """Refuse, in one line naming the file or option and the new key, ``section.KEY`` settings
    whose key moved (``moved``: old key → new key)."""
    for arg in args:
        key = arg.removeprefix(f"--{section}.").split("=", 1)[0]
        if arg.startswith(f"--{section}.") and key in moved:
            raise ValueError(f"--{section}.{key} is now --{section}.{moved[key]}; rename it")
    for path, config in config_files(args):
        block = config.get(section)
        for key in block if isinstance(block, dict) else {}:
            if key in moved:
                raise ValueError(
                    f"{path}: {section}.{key} is now {section}.{moved[key]}; move it under "
                    f"{section}.{moved[key].rsplit('.', 1)[0]} (see configs/electra-small.yaml)"
                )
