"""The ``--config`` YAML files of a command line, read before Lightning parses them (light: no
torch), for the dispatcher's "fine-tuning or pretraining?" and one-line errors about their shape."""

from __future__ import annotations

import os
import re

# 0.1 had flat modules; a config (or a run's saved config) may still name a class there
MOVED_MODULES = {
    "callbacks": "train.callbacks",
    "parallel": "train.parallel",
    "module": "train.pretraining",
    "optim": "model.optim",
    "model": "model.electra",
    "masking": "model.masking",
    "data": "data.datamodule",
    "finetune": "finetune.classifier",
    "glue": "finetune.glue",
    "probe": "finetune.probe",
}
MOVED_CLASSES = {"callbacks.DownstreamProbe": "finetune.probe.DownstreamProbe"}
_OLD_PATH = re.compile(rf"\belectra_lightning\.({'|'.join(MOVED_MODULES)})\.([A-Z]\w*)\b")


def moved_class_paths(text: str) -> dict[str, str]:
    """The 0.1 class paths in ``text`` (``electra_lightning.callbacks.LastCheckpoint``), each with
    its path now (``electra_lightning.train.callbacks.LastCheckpoint``)."""
    moved = {}
    for match in _OLD_PATH.finditer(text):
        module, name = match.groups()
        new = MOVED_CLASSES.get(f"{module}.{name}", f"{MOVED_MODULES[module]}.{name}")
        moved[match.group(0)] = f"electra_lightning.{new}"
    return moved


def update_class_paths(text: str) -> str:
    """``text`` with every 0.1 class path replaced by its path now."""
    for old, new in moved_class_paths(text).items():
        text = re.sub(rf"\b{re.escape(old)}\b", new, text)
    return text


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
                text = f.read()
            moved = moved_class_paths(text)
            if moved:
                old, new = next(iter(moved.items()))
                raise ValueError(
                    f"{path}: '{old}' is now '{new}' (the package moved into sub-packages in "
                    "0.2); update the file (a run's saved config is updated when it resumes)"
                )
            try:
                config = yaml.safe_load(text)
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
