"""Every shipped YAML parses through the CLI, and the size configs carry the official numbers."""

from pathlib import Path

import pytest
import yaml

from electra_lightning.cli import main

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))

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
    configs = ["--config", str(path)]
    if path.parent.name != "configs":  # trainer/ and logger/ pieces compose with a model config
        configs = ["--config", str(path.parents[1] / "tiny.yaml"), *configs]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *configs, "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    # set once in data.*, linked into the model (so not a model option)
    assert "max_seq_length" in printed["data"] and "max_seq_length" not in printed["model"]
    assert "vocab_size" not in printed["model"]


@pytest.mark.parametrize("name", sorted(TABLE))
def test_size_configs_match_the_paper(name):
    cfg = yaml.safe_load((CONFIGS[0].parent / f"{name}.yaml").read_text())
    want, model, data = TABLE[name], cfg["model"], cfg["data"]
    assert model["num_layers"] == want["layers"]
    assert model["hidden_size"] == want["hidden"]
    assert model["intermediate_size"] == want["ffn"]
    assert model["num_heads"] == want["heads"]
    assert model["embedding_size"] == want["emb"]
    assert model["generator_size"] == want["gen"]
    assert model["warmup_steps"] == want["warmup"]
    assert model["optimizer"]["init_args"]["lr"] == want["lr"]
    assert data["max_seq_length"] == want["seq"]
    assert data["batch_size"] == want["batch"]
    assert data["mask_prob"] == want["mask"]
    assert cfg["trainer"]["max_steps"] == want["steps"]


def test_size_configs_build_the_official_generators():
    from electra_lightning.model import discriminator_config, generator_config

    for name, want in TABLE.items():
        disc = discriminator_config(
            30522, want["hidden"], want["layers"], want["heads"], want["ffn"], want["emb"]
        )
        gen = generator_config(disc, want["gen"])
        assert (
            gen.hidden_size
            == {"electra-small": 64, "electra-base": 256, "electra-large": 256}[name]
        )
