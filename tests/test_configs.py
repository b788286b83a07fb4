"""Every shipped YAML parses through the CLI, and the size configs carry the official numbers."""

from pathlib import Path

import pytest
import yaml

from electra_lightning.cli.main import main
from electra_lightning.model.electra import OFFICIAL_SIZES, ModelSize
from electra_lightning.model.optim import ADAMW_DEFAULTS

REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(REPO_CONFIGS.rglob("*.yaml"))

TABLE = {  # Clark et al. 2020 / official configure_pretraining.py
    "electra-small": dict(
        layers=12,
        hidden=256,
        ffn=1024,
        heads=4,
        emb=128,
        gen=0.25,
        seq=128,
        batch=128,
        lr=5e-4,
        warmup=10000,
        steps=1_000_000,
        mask=0.15,
    ),
    "electra-base": dict(
        layers=12,
        hidden=768,
        ffn=3072,
        heads=12,
        emb=768,
        gen=0.33,
        seq=512,
        batch=256,
        lr=2e-4,
        warmup=10000,
        steps=766_000,
        mask=0.15,
    ),
    "electra-large": dict(
        layers=24,
        hidden=1024,
        ffn=4096,
        heads=16,
        emb=1024,
        gen=0.25,
        seq=512,
        batch=2048,
        lr=2e-4,
        warmup=10000,
        steps=400_000,
        mask=0.25,
    ),
}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_config_parses(path, capsys):
    root = REPO_CONFIGS
    kind = path.relative_to(root).parts[0]
    configs = ["--config", str(path)]
    if kind in ("trainer", "logger"):  # pieces that compose with a model config
        configs = ["--config", str(root / "tiny.yaml"), *configs]
    if kind == "finetune":
        if path.parent.name == "size":
            configs = ["--config", str(root / "finetune" / "sst2.yaml"), *configs]
        configs += ["--model.init_from=export/discriminator"]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *configs, "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    if kind == "finetune":
        assert printed["data"]["task"] and "init_from" in printed["model"]
        assert printed["data"]["batch_size"] == 32 and printed["data"]["max_seq_length"] == 128
        return
    # set once in data.*, linked into the model (so not a model option)
    assert "max_seq_length" in printed["data"] and "max_seq_length" not in printed["model"]
    assert "vocab_size" not in printed["model"]


def test_finetune_recipes():
    """configs/finetune/TASK.yaml are generated from the one recipe (tasks.finetune_recipe, which
    the `glue` command runs) and the task table; the recipe's other values are the defaults of
    ElectraClassifier and GlueDataModule — the official ones."""
    import inspect

    from electra_lightning.finetune.classifier import ElectraClassifier
    from electra_lightning.finetune.glue import GlueDataModule
    from electra_lightning.finetune.tasks import TASKS, recipe_yaml

    root = REPO_CONFIGS / "finetune"
    assert {p.stem for p in root.glob("*.yaml")} == set(TASKS)
    for task, spec in TASKS.items():
        assert (root / f"{task}.yaml").read_text() == recipe_yaml(task), (
            f"configs/finetune/{task}.yaml is stale: edit electra_lightning/finetune/tasks.py and run "
            "`python -m electra_lightning.finetune.tasks configs/finetune`"
        )
        assert spec.epochs == (10 if task in ("rte", "stsb") else 3)
    model = inspect.signature(ElectraClassifier).parameters
    data = inspect.signature(GlueDataModule).parameters
    official = {"learning_rate": 3e-4, "layerwise_lr_decay": 0.8, "weight_decay": 0.0}
    assert {k: model[k].default for k in official} == official
    assert model["warmup_fraction"].default == 0.1
    assert (data["max_seq_length"].default, data["batch_size"].default) == (128, 32)
    base = yaml.safe_load((root / "size/base.yaml").read_text())["model"]
    large = yaml.safe_load((root / "size/large.yaml").read_text())["model"]
    assert (base["learning_rate"], base["layerwise_lr_decay"]) == (1e-4, 0.8)
    assert (large["learning_rate"], large["layerwise_lr_decay"]) == (5e-5, 0.9)


def test_configs_name_only_what_differs_from_last_checkpoint_defaults(capsys):
    """LastCheckpoint's defaults are written once, in its signature (the CLI reads them there):
    no shipped config repeats one, and a config that names the class alone gets them."""
    import inspect

    from lightning.pytorch.callbacks import ModelCheckpoint

    from electra_lightning.train.callbacks import LastCheckpoint

    defaults = {
        name: p.default
        for cls in (ModelCheckpoint, LastCheckpoint)  # ours last: they win
        for name, p in inspect.signature(cls).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    restated, bare = [], []
    for path in CONFIGS:
        trainer = (yaml.safe_load(path.read_text()) or {}).get("trainer") or {}
        for spec in trainer.get("callbacks") or []:
            if spec["class_path"] != "electra_lightning.train.callbacks.LastCheckpoint":
                continue
            init_args = spec.get("init_args") or {}
            restated += [f"{path.name}: {k}" for k, v in init_args.items() if defaults.get(k) == v]
            bare += [path] if not init_args else []
    assert restated == [] and bare, restated
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(bare[0]), "--print_config"])
    (callback,) = yaml.safe_load(capsys.readouterr().out)["trainer"]["callbacks"]
    assert (callback["init_args"]["save_last"], callback["init_args"]["save_top_k"]) == (True, 0)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_size_configs_match_the_paper(name):
    cfg = yaml.safe_load((REPO_CONFIGS / f"{name}.yaml").read_text())
    want, model, data = TABLE[name], cfg["model"], cfg["data"]
    # the official sizes are declared once (model.OFFICIAL_SIZES); the configs spell them out
    official = OFFICIAL_SIZES[name.removeprefix("electra-")]
    assert model["size"] == {"preset": name.removeprefix("electra-")}  # by name, not numbers
    assert ModelSize(**model["size"]).resolved() == official
    assert (official.num_layers, official.hidden_size, official.intermediate_size) == (
        want["layers"],
        want["hidden"],
        want["ffn"],
    )
    assert (official.num_heads, official.embedding_size, official.generator_size) == (
        want["heads"],
        want["emb"],
        want["gen"],
    )
    assert model["warmup_steps"] == want["warmup"]
    # AdamW's settings are the defaults (optim.ADAMW_DEFAULTS); a config gives only what differs
    lr = model.get("optimizer", {}).get("init_args", {}).get("lr", ADAMW_DEFAULTS["lr"])
    assert lr == want["lr"]
    assert data["max_seq_length"] == want["seq"]
    assert data["batch_size"] == want["batch"]
    assert data["mask_prob"] == want["mask"]
    assert cfg["trainer"]["max_steps"] == want["steps"]


def test_size_configs_build_the_official_generators():
    from electra_lightning.model.electra import discriminator_config, generator_config

    for name in TABLE:
        size = OFFICIAL_SIZES[name.removeprefix("electra-")]
        gen = generator_config(discriminator_config(30522, size), size.generator_size)
        assert (
            gen.hidden_size
            == {"electra-small": 64, "electra-base": 256, "electra-large": 256}[name]
        )
