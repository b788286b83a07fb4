"""0.2 moved the package into sub-packages: a config naming a 0.1 class path is refused with its
new path, and a run saved by 0.1 resumes (its saved config is updated in place)."""

from __future__ import annotations

import importlib

import pytest

from electra_lightning.common.config_files import (
    MOVED_CLASSES,
    MOVED_MODULES,
    config_files,
    moved_class_paths,
    update_class_paths,
)
from electra_lightning.common.runs import update_saved_config

OLD = {  # what 0.1's shipped configs and docs named
    "electra_lightning.callbacks.LastCheckpoint": "electra_lightning.train.callbacks.LastCheckpoint",
    "electra_lightning.callbacks.GracefulStop": "electra_lightning.train.callbacks.GracefulStop",
    "electra_lightning.callbacks.DownstreamProbe": "electra_lightning.finetune.probe.DownstreamProbe",
    "electra_lightning.parallel.FSDP2Strategy": "electra_lightning.train.parallel.FSDP2Strategy",
    "electra_lightning.optim.AdamW": "electra_lightning.model.optim.AdamW",
    "electra_lightning.model.ModelSize": "electra_lightning.model.electra.ModelSize",
    "electra_lightning.data.ElectraDataModule": "electra_lightning.data.datamodule.ElectraDataModule",
    "electra_lightning.module.ElectraPretraining": (
        "electra_lightning.train.pretraining.ElectraPretraining"
    ),
}


@pytest.mark.parametrize("old, new", OLD.items())
def test_each_old_class_path_maps_to_a_class_that_exists(old, new):
    assert moved_class_paths(f"class_path: {old}  # c") == {old: new}
    module, name = new.rsplit(".", 1)
    assert hasattr(importlib.import_module(module), name)


def test_new_paths_are_left_alone():
    text = "\n".join(f"- class_path: {new}" for new in OLD.values())
    assert moved_class_paths(text) == {} and update_class_paths(text) == text


def test_every_moved_module_exists():
    for new in {*MOVED_MODULES.values(), *(v.rsplit(".", 1)[0] for v in MOVED_CLASSES.values())}:
        importlib.import_module(f"electra_lightning.{new}")


def test_a_config_with_an_old_class_path_is_one_line_naming_the_new(tmp_path):
    config = tmp_path / "old.yaml"
    config.write_text(
        "trainer:\n  callbacks:\n    - class_path: electra_lightning.callbacks.LastCheckpoint\n"
    )
    with pytest.raises(ValueError) as err:
        config_files(["fit", "--config", str(config)])
    message = str(err.value)
    assert "\n" not in message and str(config) in message
    assert "'electra_lightning.train.callbacks.LastCheckpoint'" in message


def test_a_saved_config_of_01_is_updated_in_place_once(tmp_path, capsys):
    saved = tmp_path / "config.yaml"
    saved.write_text(
        "trainer:\n  callbacks:\n  - class_path: electra_lightning.callbacks.LastCheckpoint\n"
        "    init_args:\n      save_last: true\n"
        "  strategy:\n    class_path: electra_lightning.parallel.FSDP2Strategy\n"
    )
    update_saved_config(str(saved))
    text = saved.read_text()
    assert "electra_lightning.train.callbacks.LastCheckpoint" in text
    assert "electra_lightning.train.parallel.FSDP2Strategy" in text and "save_last: true" in text
    assert config_files(["fit", "--config", str(saved)])  # now readable
    assert "updated" in capsys.readouterr().err
    update_saved_config(str(saved))  # nothing left to update: silent, unchanged
    assert saved.read_text() == text and capsys.readouterr().err == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # no temporary left


def test_resuming_a_01_run_by_name_updates_its_saved_config(tmp_path, monkeypatch):
    from electra_lightning.common.runs import resume_argv

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "old"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(
        "run_name: old\ntrainer:\n  callbacks:\n"
        "  - class_path: electra_lightning.callbacks.LastCheckpoint\n"
    )
    argv, saved = resume_argv(["fit", "--run_name", "old", "--ckpt_path", "last"])
    assert saved == "runs/old/config.yaml" and ["--config", saved] == argv[1:3]
    assert "electra_lightning.train.callbacks.LastCheckpoint" in (run / "config.yaml").read_text()
