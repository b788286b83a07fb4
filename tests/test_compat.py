"""Every private access into a library is in ``common/_compat.py``, and each still works with the
installed versions: an upgrade that removes one fails here, naming it, not deep inside a run."""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import pkgutil
import platform
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, WandbLogger

import electra_lightning
from electra_lightning.common import _compat
from electra_lightning.common._compat import (
    LIGHTNING_CLI_OVERRIDES,
    attached_trainer,
    load_sharded_checkpoint,
    loads_config_group,
    logs_this_step,
    option_actions,
    skip_step_where,
    steps_with_found_inf,
    subcommand_parser,
    wandb_init_args,
)

PACKAGE = Path(electra_lightning.__file__).resolve().parent
COMPAT = PACKAGE / "common" / "_compat.py"


def gone(what: str, dist: str) -> str:
    installed = (
        f"Python {platform.python_version()}" if dist == "python" else f"{dist} {version(dist)}"
    )
    return f"{what} is gone ({installed}): update electra_lightning/common/_compat.py"


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def quiet_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        **kwargs,
    )


# -- each private access, against the installed versions -------------------------------------------


def test_lightning_module_trainer_or_none():
    module = L.LightningModule()
    assert "_trainer" in vars(module), gone(
        "lightning.pytorch.LightningModule._trainer", "lightning"
    )
    assert attached_trainer(module) is None
    trainer = quiet_trainer()
    module.trainer = trainer
    assert attached_trainer(module) is trainer


def test_trainer_logger_connector_says_whether_this_step_logs():
    trainer = quiet_trainer(log_every_n_steps=1)
    assert hasattr(trainer, "_logger_connector"), gone(
        "lightning.pytorch.Trainer._logger_connector", "lightning"
    )
    connector = type(trainer._logger_connector)
    assert isinstance(getattr(connector, "should_update_logs", None), property), gone(
        f"lightning.pytorch {connector.__name__}.should_update_logs", "lightning"
    )
    assert logs_this_step(trainer) is True  # not in a loop: Lightning logs
    assert logs_this_step(quiet_trainer(log_every_n_steps=0)) is False


@pytest.mark.parametrize(
    "name, args",
    [
        ("_should_skip_saving_checkpoint", ["self", "trainer"]),
        ("_save_last_checkpoint", ["self", "trainer", "monitor_candidates"]),
        ("_monitor_candidates", ["self", "trainer"]),
    ],
)
def test_model_checkpoint_saves_last_now(name, args):
    method = getattr(ModelCheckpoint, name, None)
    assert callable(method), gone(
        f"lightning.pytorch.callbacks.ModelCheckpoint.{name}", "lightning"
    )
    assert parameters(method) == args, (
        f"lightning.pytorch.callbacks.ModelCheckpoint.{name} now takes {parameters(method)}, "
        f"not {args} (lightning {version('lightning')}): update electra_lightning/common/_compat.py"
    )


def test_lightning_reads_a_sharded_checkpoint_in_memory(tmp_path):
    import torch.distributed.checkpoint as dcp

    try:
        from lightning.fabric.utilities.load import _load_distributed_checkpoint  # noqa: F401
    except ImportError:
        pytest.fail(
            gone("lightning.fabric.utilities.load._load_distributed_checkpoint", "lightning")
        )
    dcp.save({"weight": torch.arange(4.0), "step": 3}, checkpoint_id=str(tmp_path))
    loaded = load_sharded_checkpoint(str(tmp_path))
    assert loaded["step"] == 3 and torch.equal(loaded["weight"], torch.arange(4.0))


@pytest.mark.parametrize("found_inf, moves", [(1.0, False), (0.0, True)])
def test_fused_adamw_skips_its_update_where_found_inf_is_set(found_inf, moves):
    weight = torch.nn.Parameter(torch.ones(3))
    weight.grad = torch.ones(3)
    optimizer = torch.optim.AdamW([weight], lr=0.1, fused=True)
    assert steps_with_found_inf(optimizer), gone(
        "torch.optim.Optimizer._step_supports_amp_scaling (fused AdamW)", "torch"
    )
    skip_step_where(optimizer, torch.tensor(found_inf))
    optimizer.step()
    assert torch.equal(weight.detach(), torch.ones(3)) is not moves, (
        f"torch's fused AdamW no longer reads optimizer.found_inf (torch {version('torch')}): "
        "update electra_lightning/common/_compat.py"
    )


def test_an_unfused_optimizer_reads_no_found_inf():
    weight = torch.nn.Parameter(torch.ones(3))
    assert not steps_with_found_inf(torch.optim.AdamW([weight], foreach=True))


def test_argparse_option_table():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps")
    assert isinstance(getattr(parser, "_option_string_actions", None), dict), gone(
        "argparse.ArgumentParser._option_string_actions", "python"
    )
    assert {"-h", "--help", "--steps"} <= set(option_actions(parser))


@dataclass
class _Size:
    hidden: int = 8


class _Model:
    def __init__(self, size: _Size = _Size(), lr: float = 0.1):  # noqa: B008
        pass


def test_jsonargparse_group_options_are_told_from_settings():
    parser = LightningArgumentParser()
    parser.add_class_arguments(_Model, "model")
    actions = option_actions(parser)
    groups = {o for o, action in actions.items() if loads_config_group(action)}
    assert groups == {"--model", "--model.size"}, gone(
        "jsonargparse's _ActionConfigLoad (the option of a group of settings)", "jsonargparse"
    )


def test_lightning_cli_subcommand_parser():
    method = getattr(LightningCLI, "_parser", None)
    assert callable(method), gone("lightning.pytorch.cli.LightningCLI._parser", "lightning")
    assert parameters(method) == ["self", "subcommand"], gone(
        "lightning.pytorch.cli.LightningCLI._parser(subcommand)", "lightning"
    )
    from lightning.pytorch.demos.boring_classes import BoringModel

    cli = LightningCLI(
        BoringModel,
        run=False,
        args=["--trainer.logger=false", "--trainer.enable_checkpointing=false"],
        save_config_callback=None,
    )
    assert subcommand_parser(cli, None) is cli.parser


def test_wandb_logger_init_arguments(tmp_path):
    logger = WandbLogger(offline=True, save_dir=str(tmp_path))
    init = wandb_init_args(logger)
    assert isinstance(init, dict) and "anonymous" in init, gone(
        "lightning.pytorch.loggers.WandbLogger._wandb_init['anonymous']", "lightning"
    )
    assert wandb_init_args(CSVLogger(tmp_path)) is None


def overriding_classes(name: str) -> list[type]:
    from electra_lightning.cli import lightning as cli

    return [
        cls
        for cls in vars(cli).values()
        if inspect.isclass(cls) and issubclass(cls, LightningCLI) and name in vars(cls)
    ]


@pytest.mark.parametrize("name", sorted(LIGHTNING_CLI_OVERRIDES))
def test_lightning_cli_private_methods_we_override(name):
    theirs = getattr(LightningCLI, name, None)
    assert callable(theirs), gone(f"lightning.pytorch.cli.LightningCLI.{name}", "lightning")
    ours = overriding_classes(name)
    assert ours, f"no CLI overrides {name}: remove it from _compat.LIGHTNING_CLI_OVERRIDES"
    for cls in ours:
        assert parameters(vars(cls)[name]) == parameters(theirs), (
            f"lightning.pytorch.cli.LightningCLI.{name} now takes {parameters(theirs)}, "
            f"{cls.__name__}.{name} {parameters(vars(cls)[name])} (lightning "
            f"{version('lightning')}): update electra_lightning/cli/lightning.py"
        )


# -- no private access outside _compat.py ----------------------------------------------------------
#
# The rule, over every module of the package but _compat.py (read as source, so a branch that does
# not run is seen too):
#   - no import of a private name or module from outside the package (`from x import _y`,
#     `import x._y`);
#   - an attribute `obj._name` (or `getattr/hasattr/setattr/delattr(obj, "_name")`) only where
#     `_name` is the package's own: a function, class or module-level name it defines, or an
#     attribute it assigns on `self`/`cls`. So `self._tokens` is ours, `self._trainer` (never
#     assigned by us: LightningModule's) and `trainer._logger_connector` are not. The names of
#     LightningCLI's methods we override (_compat.LIGHTNING_CLI_OVERRIDES) are Lightning's: only
#     `super()._name(...)` may call them;
#   - `os._exit` and `sys._getframe` are public API despite the underscore (the docs list them);
#   - a method of ours may override a library class's private method only if it is listed in
#     _compat.LIGHTNING_CLI_OVERRIDES (checked on the imported classes, below).
# Not seen: a private attribute of a library that the package also assigns on `self` somewhere;
# a private name compared as text (_compat.loads_config_group's class name).

PUBLIC_DESPITE_UNDERSCORE = {"os._exit", "sys._getframe"}
ATTRIBUTE_FUNCTIONS = {"getattr", "hasattr", "setattr", "delattr"}


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def own_names(trees: list[ast.AST]) -> set[str]:
    """The private names the package itself defines."""
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("self", "cls")
            ):
                names.add(node.attr)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "setattr"
                and len(node.args) > 1
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id in ("self", "cls")
                and isinstance(node.args[1], ast.Constant)
            ):
                names.add(str(node.args[1].value))
    return {n for n in names if is_private(n)}


def is_super_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"
    )


def private_accesses(sources: dict[str, str], package: str, overrides=()) -> list[str]:
    """``file:line: expression`` for each private access into a library in ``sources``
    (name → source text; a module's own package is ``package``)."""
    trees = {name: ast.parse(text) for name, text in sources.items()}
    ours = own_names(list(trees.values())) - set(overrides)
    found = []
    for name, tree in trees.items():
        for node in ast.walk(tree):
            where = f"{name}:{getattr(node, 'lineno', '?')}: "
            if isinstance(node, ast.ImportFrom) and not node.level:
                module = node.module or ""
                if module.split(".")[0] == package:
                    continue
                if any(is_private(p) for p in module.split(".")) or any(
                    is_private(a.name) for a in node.names
                ):
                    found.append(where + ast.unparse(node))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] != package and any(is_private(p) for p in parts):
                        found.append(where + ast.unparse(node))
            elif isinstance(node, ast.Attribute) and is_private(node.attr):
                text = ast.unparse(node)
                if text in PUBLIC_DESPITE_UNDERSCORE or node.attr in ours:
                    continue
                if is_super_call(node.value) and node.attr in overrides:
                    continue
                found.append(where + text)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ATTRIBUTE_FUNCTIONS
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and is_private(node.args[1].value)
                and node.args[1].value not in ours
            ):
                found.append(where + ast.unparse(node))
    return found


def package_sources() -> dict[str, str]:
    return {
        str(path.relative_to(PACKAGE.parent)): path.read_text()
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != COMPAT
    }


def test_no_private_access_outside_compat():
    found = private_accesses(package_sources(), "electra_lightning", LIGHTNING_CLI_OVERRIDES)
    assert not found, (
        "private accesses into a library outside electra_lightning/common/_compat.py (move each "
        "into a function there, with its test in tests/test_compat.py):\n" + "\n".join(found)
    )


def test_no_library_private_method_overridden_outside_the_list():
    overridden = []
    for info in pkgutil.walk_packages(electra_lightning.__path__, "electra_lightning."):
        if info.name.endswith("__main__"):  # runs the command line
            continue
        module = importlib.import_module(info.name)
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            for name, value in vars(cls).items():
                if not is_private(name) or not inspect.isfunction(value):
                    continue
                libraries = [
                    base
                    for base in cls.__mro__[1:]
                    if not base.__module__.startswith("electra_lightning") and name in vars(base)
                ]
                allowed = issubclass(cls, LightningCLI) and name in LIGHTNING_CLI_OVERRIDES
                if libraries and not allowed:
                    overridden.append(f"{cls.__module__}.{cls.__qualname__}.{name}")
    assert not overridden, (
        "methods overriding a library's private method, not in "
        f"_compat.LIGHTNING_CLI_OVERRIDES: {overridden}"
    )


def test_compat_imports_no_library_at_import_time():
    tree = ast.parse(COMPAT.read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = {(n.module if isinstance(n, ast.ImportFrom) else n.names[0].name) for n in top}
    assert modules <= {"__future__", "pathlib", "typing"}, modules
    assert _compat.__doc__


@pytest.mark.parametrize(
    "source, found",
    [
        ("x = trainer._logger_connector.should_update_logs\n", True),
        ("self._trainer.global_rank\n", True),  # LightningModule's, never assigned by us
        (
            "class A:\n    def __init__(self):\n        self._n = 1\n\n    def f(self):\n"
            "        return self._n\n",
            False,
        ),
        ("def _helper():\n    pass\n\n_helper()\nmodule._helper\n", False),
        ("from lightning.fabric.utilities.load import _load_distributed_checkpoint\n", True),
        ("from lightning.fabric.utilities._pytree import tree_map\n", True),
        ("import torch._dynamo\n", True),
        ("from pkg.common._compat import load\n", False),
        ("getattr(optimizer, '_step_supports_amp_scaling', False)\n", True),
        ("getattr(self, '_sharded', False)\nself._sharded = True\n", False),
        ("os._exit(0)\n", False),
        ("super()._run_subcommand(command)\n", False),
        ("self._run_subcommand(command)\n", True),  # Lightning's name, even where we override it
        ("super()._other_hook()\n", True),
    ],
)
def test_the_private_access_check_sees_them(source, found):
    result = private_accesses({"m.py": source}, "pkg", {"_run_subcommand"})
    assert bool(result) is found, result
