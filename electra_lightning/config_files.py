"""The ``--config`` YAML files of a command line, read before Lightning parses them (light: no
torch), for the dispatcher's "fine-tuning or pretraining?" and one-line errors about their shape."""

from __future__ import annotations

import os


def config_files(args: list[str]) -> list[tuple[str, dict]]:
    """(path, contents) of every ``--config FILE`` / ``--config=FILE`` that exists; one missing
    whose name without ``.yaml`` was typed is a one-line error with the hint."""
    import yaml

    found = []
    for i, arg in enumerate(args):
        path = args[i + 1] if arg == "--config" and i + 1 < len(args) else None
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        if path and not os.path.exists(path):
            near = [p for p in (f"{path}.yaml", f"{path}.yml") if os.path.isfile(p)]
            if near:
                raise ValueError(f"--config: '{path}' does not exist; did you mean {near[0]}?")
        if path and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                try:
                    config = yaml.safe_load(f)
                except yaml.YAMLError as err:
                    mark = getattr(err, "problem_mark", None)
                    where = f"{path}:{mark.line + 1}" if mark else path
                    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
                    raise ValueError(f"{where}: not valid YAML ({problem}); fix the file") from None
            if config is not None and not isinstance(config, dict):
                raise ValueError(
                    f"{path}: a config is a mapping of sections (trainer:, model:, data:), not "
                    f"a {type(config).__name__}"
                )
            for section in ("model", "data", "trainer"):
                value = (config or {}).get(section)
                if value is not None and not isinstance(value, dict):
                    raise ValueError(
                        f"{path}: '{section}:' must hold settings (a mapping), not "
                        f"{value!r}; see configs/tiny.yaml"
                    )
            found.append((path, config or {}))
    return found
