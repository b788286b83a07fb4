"""The experiments' --quick modes run end to end (CI-sized), share runs, and resume."""

import json
import subprocess
import sys

import pytest

from .helpers import HANG_GUARD, REPO, shared_data


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    shared_data("glue")
    shared_data("nltk_english_text")
    return tmp_path_factory.mktemp("experiments")


def quick(name, out):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            f"experiments.{name}.run",
            "--quick",
            "--output_dir",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def trained(stdout):
    """Names of the pretraining runs a runner launched."""
    return {
        part.split("=", 1)[1]
        for line in stdout.splitlines()
        if " fit --config" in line
        for part in line.split()
        if part.startswith("--trainer.logger.init_args.name=")
    }


@pytest.mark.slow
def test_electra_vs_mlm_quick(root):
    """The compute-curve study end to end: both runs keep their evaluation points at equal FLOPs,
    every point is probed, the report has the table, the curve and its source data; a second
    run resumes every stage and trains or fine-tunes nothing."""
    out = root / "electra_vs_mlm"
    stdout = quick("electra_vs_mlm", out)
    # the curve's two runs, and two knob probes (quick mode's share of them)
    assert trained(stdout) == {"electra", "mlm", "baseline", "batch128"}
    plan = json.loads((out / "plan.json").read_text())
    # equal FLOPs: the MLM run gets the steps ELECTRA spends on its generator
    assert plan["mlm_every"] > plan["electra_every"]
    assert plan["mlm_steps"] == plan["mlm_every"] * plan["points"]
    curve = json.loads((out / "results" / "curve.json").read_text())
    assert [r["point"] for r in curve] == list(range(plan["points"] + 1))
    for row in curve[1:]:
        assert row["MLM"]["step"] == row["point"] * plan["mlm_every"]
        assert 0 <= row["ELECTRA"]["val/disc_auc"] <= 1  # logged by the run's validation
        assert "val/disc_auc" not in row["MLM"]  # no discriminator
        assert {"sst2", "cola"} <= row["ELECTRA"].keys()
    tuned = json.loads((out / "results" / "sst2-finetune.json").read_text())
    assert set(tuned) == {"ELECTRA", "MLM", "no pretraining"}
    assert {"acc", "precision", "recall", "f1"} <= tuned["ELECTRA"][0]["metrics"].keys()
    report = (out / "README.md").read_text()
    assert "| point | pretraining FLOPs |" in report and "| no pretraining | 1 |" in report
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"
    kept = {p.name for p in (out / "results").iterdir()}
    assert {"plan.json", "pretrain-electra.csv", "pretrain-mlm.csv", "knobs.json"} <= kept
    knobs = json.loads((out / "results" / "knobs.json").read_text())
    # equal tokens: batch 128 trains 1/8 of the baseline's steps, both validated along the way
    assert knobs["plan"]["baseline"]["steps"] == 8 * knobs["plan"]["batch128"]["steps"]
    ends = [knobs["results"][k]["validations"][-1]["tokens"] for k in ("baseline", "batch128")]
    assert ends[0] == ends[1]
    assert all(0 <= v["val/disc_auc"] <= 1 for v in knobs["results"]["baseline"]["validations"])
    assert {"sst2", "cola"} <= knobs["results"]["batch128"]["probe"].keys()
    assert "## Knob probes" in report and (out / "knobs.png").exists()
    again = quick("electra_vs_mlm", out)
    assert not trained(again) and " glue " not in again


@pytest.mark.slow
def test_generator_size_quick(root):
    stdout = quick("generator_size", root)
    # quick mode trains two of the four sizes (the full run: 1/8, 1/4, 1/2, 1)
    assert trained(stdout) == {f"electra-g{s}-shared" for s in (0.125, 0.25)}
    report = (root / "README.md").read_text()
    for row in ("| 1/8 |", "| 1/4 |", "Best average: generator", "1/4 vs 1/8:"):
        assert row in report
    assert "| 1/2 |" not in report
    cfg = (root / "pretrain/electra-g0.125-shared/version_0/hparams.yaml").read_text()
    assert "generator_size: 0.125" in cfg


@pytest.mark.slow
def test_embedding_sharing_quick(root):
    stdout = quick("embedding_sharing", root)
    # the official setting (shared, generator 1/4) is the generator study's 1/4 run: trained once;
    # quick mode leaves out `none` (the full run: shared, none, gdes)
    assert trained(stdout) == {"electra-g0.25-gdes"}
    report = (root / "README.md").read_text()
    for row in ("| shared |", "| gdes |", "gdes vs shared:"):
        assert row in report


def test_gpu_study_is_electra_small_in_bf16(tmp_path):
    """`run.py --device cuda` (no GPU here, so its settings are checked, not run): ELECTRA-Small's
    sizes, the official batch of 128, bf16 and the GPU for pretraining, both runs one after the
    other."""
    import argparse
    from dataclasses import asdict, replace

    from electra_lightning.model.electra import OFFICIAL_SIZES, ModelSize
    from experiments.electra_vs_mlm import run

    shared_data("glue")
    shared_data("nltk_english_text")
    args = argparse.Namespace(
        device="cuda",
        steps=None,
        budget_minutes=3.0,
        points=7,
        seeds=1,
        quick=False,
        finetune_examples=0,
        knob_steps=0,
    )
    study = run.CurveStudy(argparse.Namespace(**vars(args), output_dir=str(tmp_path)))
    size = ModelSize(**study.sizes()).resolved()
    small = OFFICIAL_SIZES["small"]
    assert size == replace(small, max_position_embeddings=size.max_position_embeddings)
    assert size.max_position_embeddings >= 128  # the sequence length it trains at
    for setting in ("--trainer.accelerator=gpu", "--trainer.precision=bf16-mixed"):
        assert setting in study.extra_args
    assert "--data.batch_size=128" in study.extra_args and study.batch_tokens() == 128 * 128
    assert study.workers == 1
    assert {f"--model.size.{k}={v}" for k, v in asdict(size).items()} >= {
        a for a in study.extra_args if a.startswith("--model.size.")
    }


def test_knob_probes_train_equal_tokens_and_read_the_gap_to_the_base_rate(tmp_path):
    """The knob probes' plan (equal tokens, validation on >= the curve's 320 sequences) and their
    reading of a run's history: the training RTD loss against the entropy of the replaced
    fraction, averaged over the steps since the previous validation."""
    import math

    from experiments.electra_vs_mlm import knobs

    plan = knobs.probe_plan(1500, quick=False)
    assert set(plan) == set(knobs.KNOBS)
    assert plan["baseline"] | {"overrides": []} == {
        "steps": 1500,
        "val_every": 250,
        "val_batches": 20,
        "batch_size": 16,
        "overrides": [],
    }
    assert (plan["batch128"]["steps"], plan["batch128"]["val_batches"]) == (187, 3)
    assert list(knobs.probe_plan(16, quick=True)) == knobs.QUICK_KNOBS

    run = tmp_path / "probe" / "version_0"
    run.mkdir(parents=True)
    (run / "hparams.yaml").write_text("{}\n")
    h = knobs.entropy(0.25)
    assert math.isclose(h, -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    (run / "metrics.csv").write_text(
        "step,train/disc_loss,train/replaced_frac,val/disc_auc,val/gen_acc\n"
        f"1,{h - 0.1},0.25,,\n"
        f"2,{h - 0.3},0.25,,\n"
        "2,,,0.6,0.1\n"
        f"3,{h + 0.2},0.25,,\n"
        "3,,,0.4,0.2\n"
    )
    read = knobs.read_probe(tmp_path / "probe", batch_size=16, seq=128)
    # logged steps are 0-based: the validation logged at step 2 follows 3 steps
    assert [(v["step"], v["tokens"], v["val/disc_auc"]) for v in read] == [
        (3, 3 * 16 * 128, 0.6),
        (4, 4 * 16 * 128, 0.4),
    ]
    assert math.isclose(read[0]["base_rate_gap"], 0.2) and math.isclose(
        read[1]["base_rate_gap"], -0.2
    )
    probe = {"sst2": 55.25, "cola": 1.5}
    table = knobs.knob_table(
        {
            "baseline": {"validations": read, "probe": probe},
            "gen1-8": {"validations": read[:1], "probe": probe},
        }
    )
    assert "| 0.600 | 0.400 | 0.200 | -0.2000 | 55.2 | 1.5 |" in table
    assert "| 0.600 | — | 0.100 | +0.2000 | 55.2 | 1.5 |" in table


@pytest.mark.slow
def test_pays_off_quick(tmp_path):
    """Experiment 4 end to end: the in-domain corpus holds no SST-2 dev/test text, the two
    pretraining runs (equal FLOPs: MLM more steps) log their gates' metrics, every encoder gets a
    grid pick and is fine-tuned on the same class-balanced subsets at every label count; the
    report has the gates, the criteria, the baselines, the paired seeds and the per-layer probes;
    a second run trains and fine-tunes nothing."""
    shared_data("glue", "SST-2")
    shared_data("movie_reviews_polarity")
    out = tmp_path / "pays_off"
    stdout = quick("pays_off", out)
    assert trained(stdout) == {"mlm", "electra"}
    assert "gates: ELECTRA: gen_context_gain" in stdout and "gates: MLM: gen_context_gain" in stdout
    check = json.loads((out / "corpus" / "check.json").read_text())
    assert check["sst2_dev_test_sentences_checked"] > 2000
    train = (out / "corpus" / "train.jsonl").read_text()
    dev = (shared_data("glue", "SST-2") / "dev.tsv").read_text().splitlines()[1:]
    long_dev = [line.split("\t")[0].strip() for line in dev if len(line.split()) >= 8]
    assert long_dev and not any(sentence in train for sentence in long_dev)
    plan = json.loads((out / "plan.json").read_text())
    # equal FLOPs at every point: MLM's interval is ELECTRA's times the cost ratio, rounded
    assert abs(plan["mlm_every"] - plan["electra_every"] * plan["flops_ratio"]) <= 0.5
    assert plan["mlm_steps"] == plan["mlm_every"] * plan["points"]
    # the subsets: class-balanced, different per seed, none holding a held-out example
    subsets = [(out / f"subsets/n250-s{s}/SST-2/train.tsv").read_text() for s in (1, 2)]
    held_out = set((out / "subsets/grid/SST-2/dev.tsv").read_text().splitlines()[1:])
    for text in subsets:
        rows = text.splitlines()[1:]
        assert len(rows) == 250 and sum(r.endswith("\t1") for r in rows) == 125
        assert not held_out & set(rows)
    assert subsets[0] != subsets[1]
    results = out / "results"
    gates = json.loads((results / "gates.json").read_text())
    assert set(gates["ELECTRA"]["gates"]) == {"gen_context_gain", "disc_context_gain", "disc_auc"}
    assert set(gates["MLM"]["gates"]) == {"gen_context_gain"}
    tuned = json.loads((results / "finetune.json").read_text())
    assert set(tuned) == {"no pretraining", "MLM", "ELECTRA"}
    assert all(set(per) == {"250", "0"} and len(per["250"]) == 2 for per in tuned.values())
    grid = json.loads((results / "grid.json").read_text())
    assert all({"lr", "decay"} == set(pick) for pick in grid.values())
    layers = json.loads((results / "layers.json").read_text())
    for result in layers.values():  # embeddings + the 4 layers, 2 subsets each
        assert [len(scores) for scores in result["probe"]["250"]] == [2] * 5
        assert all(0 <= g["sentence_specific"] <= 1 for g in result["geometry"])
    report = (out / "README.md").read_text()
    for text in (
        "## Criteria, fixed before the run",
        "| Naive Bayes (bag of words) |",
        "| majority class |",
        "ELECTRA − MLM",
        "Criterion 1, ELECTRA",
        "layer 4",
    ):
        assert text in report, text
    assert report.index("## Gates") < report.index("## SST-2 dev accuracy")
    again = quick("pays_off", out)
    assert not trained(again) and "$ finetune" not in again


def test_pays_off_on_a_gpu_is_electra_small_in_bf16(tmp_path):
    """`pays_off.run --device cuda` (checked, not run: no GPU here): ELECTRA-Small at 64 tokens,
    bf16 on the GPU for pretraining and fine-tuning, one run at a time."""
    from dataclasses import replace

    from electra_lightning.model.electra import OFFICIAL_SIZES, ModelSize
    from experiments.pays_off import run, study

    shared_data("glue", "SST-2")
    shared_data("movie_reviews_polarity")
    args = run.parse_args(["--device", "cuda", "--quick", "--output_dir", str(tmp_path)])
    paysoff = study.PaysOff(args)
    size = ModelSize(**paysoff.sizes()).resolved()
    assert size == replace(OFFICIAL_SIZES["small"], max_position_embeddings=study.SEQ)
    for setting in ("--trainer.accelerator=gpu", "--trainer.precision=bf16-mixed"):
        assert setting in paysoff.extra_args and setting in paysoff.finetune_args(250)
    assert paysoff.workers == 1


@pytest.mark.slow
def test_plateau_quick(tmp_path):
    """Experiment 5 end to end: the short arms and the long arm of the most promising one train
    and log both context gains; the report has the gates, the table with the rarity check, the
    figure and every arm's history; a second run trains nothing."""
    shared_data("glue", "SST-2")
    shared_data("movie_reviews_polarity")
    out = tmp_path / "plateau"
    stdout = quick("plateau", out)
    assert trained(stdout) == {"base", "temp2"}  # two short arms, then the long one (a base name)
    long = [d.name for d in (out / "long").iterdir() if d.is_dir()]
    assert len(long) == 1 and long[0] in {"base", "temp2"}
    readme = (out / "README.md").read_text()
    for text in ("## Gates, fixed before the run", "| base |", "| temp2 |", "sweep.png"):
        assert text in readme, text
    assert (out / "sweep.png").stat().st_size > 10_000
    rows = json.loads((out / "results" / "rows.json").read_text())
    for row in rows["short"] + rows["long"]:
        assert row["gen_gain"] is not None and row["disc_gain"] is not None
        rarity = row["rarity"]
        assert 0 < rarity["base_rate_entropy"] < 0.7 and 0 <= rarity["auc_rarity"] <= 1
        assert rarity["gain_over_base_rate"] == pytest.approx(
            rarity["base_rate_entropy"] - rarity["disc_loss"]
        )
    assert (out / "results" / "short-base.csv").exists()
    assert trained(quick("plateau", out)) == set()  # resumed: nothing left to train
