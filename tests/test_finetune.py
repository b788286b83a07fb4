"""Fine-tuning: GLUE readers, layer-wise LR decay, metrics, a real short fine-tune, export, predict."""

import math

import pytest
import torch
from transformers import ElectraConfig, ElectraForSequenceClassification

from electra_lightning.finetune.classifier import ElectraClassifier, make_metrics
from electra_lightning.finetune.glue import GlueDataModule, read_examples
from electra_lightning.finetune.tasks import TASKS, task_spec
from electra_lightning.model.optim import layerwise_lr_groups

from .helpers import shared_data

# rows (excluding headers) of the shared GLUE copy, from its SOURCE.md
COUNTS = {
    "cola": (8551, 1043),
    "sst2": (67349, 872),
    "mrpc": (3668, 408),
    "stsb": (5749, 1500),
    "rte": (2490, 277),
    "wnli": (635, 71),
}


@pytest.mark.parametrize("task", sorted(COUNTS))
def test_glue_readers(task):
    glue = shared_data("glue")
    dm = GlueDataModule(task=task, data_dir=str(glue))
    train, dev = dm.examples("train"), dm.examples("validate")
    assert (len(train), len(dev)) == COUNTS[task]
    spec = TASKS[task]
    assert all(e.text.strip() for e in train)
    if spec.text_pair is not None:
        assert all(e.text_pair for e in train)
    if spec.labels:
        assert {e.label for e in train} == set(range(len(spec.labels)))
    else:
        assert all(0.0 <= e.label <= 5.0 for e in train)
    test = dm.examples("test")
    assert test and all(e.label is None for e in test)


def test_glue_quirks():
    glue = shared_data("glue")
    # MRPC starts with a UTF-8 BOM: the first column must still be found by its name
    mrpc = GlueDataModule(task="mrpc", data_dir=str(glue)).examples("train")
    assert mrpc[0].text.startswith("Amrozi accused his brother") and mrpc[0].label == 1
    # CoLA has no header: the first row is data
    cola = GlueDataModule(task="cola", data_dir=str(glue)).examples("train")
    assert cola[0].text == "Our friends won't buy this analysis, let alone the next one we propose."
    assert cola[0].label == 1
    # QNLI: dev only here; a missing split is a clear error
    qnli = GlueDataModule(task="qnli", data_dir=str(glue))
    assert len(qnli.examples("validate")) == 5463
    with pytest.raises(ValueError, match="QNLI/train.tsv' does not exist"):
        qnli.examples("train")


def test_custom_task_and_bad_input(tmp_path):
    (tmp_path / "train.tsv").write_text("review\tlabel\nfun film\tpos\nboring\tneg\n")
    (tmp_path / "dev.tsv").write_text("review\tlabel\nfun\tpos\n\tneg\n")
    (tmp_path / "bad.tsv").write_text("review\tlabel\nfun\tmeh\n")
    kw = dict(task="custom", text_column="review", label_column="label", labels=["neg", "pos"])
    dm = GlueDataModule(
        train_file=str(tmp_path / "train.tsv"), val_file=str(tmp_path / "dev.tsv"), **kw
    )
    assert [(e.text, e.label) for e in dm.examples("train")] == [("fun film", 1), ("boring", 0)]
    with pytest.raises(ValueError, match=r"dev.tsv:3: empty text"):
        dm.examples("validate")
    bad = GlueDataModule(
        train_file=str(tmp_path / "bad.tsv"), val_file=str(tmp_path / "dev.tsv"), **kw
    )
    with pytest.raises(ValueError, match=r"bad.tsv:2: label 'meh' is not one of the task's labels"):
        bad.examples("train")
    with pytest.raises(ValueError, match="unknown task 'sst3'"):
        task_spec("sst3")
    with pytest.raises(ValueError, match="does not exist"):
        GlueDataModule(task="rte", data_dir=str(tmp_path / "nowhere"))
    # a movie-review style JSONL set
    jsonl = tmp_path / "reviews.jsonl"
    jsonl.write_text('{"text": "great", "label": "pos"}\n{"text": "awful", "label": "neg"}\n')
    assert [e.label for e in read_examples(str(jsonl), "text", None, "label", ("neg", "pos"))] == [
        1,
        0,
    ]


def test_layerwise_lr_decay_is_geometric():
    config = ElectraConfig(
        vocab_size=100,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=2,
    )
    model = ElectraForSequenceClassification(config)
    for official, top in ((False, 5), (True, 6)):
        groups = layerwise_lr_groups(model, 1e-4, 0.8, 0.0, official_depths=official)
        by_depth = {g["depth"]: g["lr"] for g in groups}
        assert sorted(by_depth) == [0, 1, 2, 3, 4, top]
        for depth, lr in by_depth.items():
            assert math.isclose(lr, 1e-4 * 0.8 ** (top - depth))
        assert math.isclose(by_depth[top], 1e-4)  # the head gets the full rate
        n_params = sum(p.numel() for g in groups for p in g["params"])
        assert n_params == sum(p.numel() for p in model.parameters())
    # with our depths the top layer is one step below the head (official: two)
    ours = {g["depth"]: g["lr"] for g in layerwise_lr_groups(model, 1.0, 0.5, 0.0)}
    assert ours[4] == 0.5


def test_metric_wiring_on_hand_checked_inputs():
    # CoLA: MCC. preds/targets with TP=2, TN=1, FP=1, FN=0: (2·1 − 1·0)/sqrt(3·2·1·2) = 2/sqrt(12)
    m = make_metrics(("mcc",), 2)
    m.update(torch.tensor([1, 1, 1, 0]), torch.tensor([1, 1, 0, 0]))
    assert math.isclose(float(m.compute()["mcc"]), 2 / math.sqrt(12), rel_tol=1e-6)
    # MRPC: F1 = 2·P·R/(P+R) with P = 2/3, R = 2/2 → 0.8; acc 3/4
    m = make_metrics(("f1", "acc"), 2)
    m.update(torch.tensor([1, 1, 1, 0]), torch.tensor([1, 1, 0, 0]))
    out = m.compute()
    assert math.isclose(float(out["f1"]), 0.8, rel_tol=1e-6) and math.isclose(
        float(out["acc"]), 0.75
    )
    # STS-B: Pearson of y = 2x + 1 is 1; Spearman of a monotone but non-linear map is 1
    m = make_metrics(("spearman", "pearson"), 1)
    x = torch.tensor([0.0, 1.0, 2.0, 3.0])
    m.update(x, 2 * x + 1)
    out = m.compute()
    assert math.isclose(float(out["pearson"]), 1.0, rel_tol=1e-6)
    m.reset()
    m.update(x, x**3)
    out = m.compute()
    assert math.isclose(float(out["spearman"]), 1.0, rel_tol=1e-6) and float(out["pearson"]) < 0.99


def test_incompatible_init_from_is_refused(tmp_path):
    from transformers import BertConfig

    BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=1, intermediate_size=32
    ).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="is a bert model, not ELECTRA"):
        ElectraClassifier(init_from=str(tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        ElectraClassifier(init_from=str(tmp_path / "missing"))


@pytest.mark.slow
def test_short_finetune_beats_majority_and_exports(tmp_path):
    """Pretrain a tiny model briefly on SST-2's own (unlabeled) training sentences, fine-tune it on
    an SST-2 slice through the CLI, export it, reload it in plain transformers (identical logits)
    and classify with the pipeline."""
    from electra_lightning.data.tokenizer import train_tokenizer

    from .helpers import REPO, run_cli, tiny_args

    glue = shared_data("glue")
    corpus = tmp_path / "sst2-text"
    corpus.mkdir()
    sentences = [e.text for e in GlueDataModule(task="sst2", data_dir=str(glue)).examples("train")]
    (corpus / "train.txt").write_text("\n".join(sentences[:40000]) + "\n")
    (corpus / "val.txt").write_text("\n".join(sentences[40000:41000]) + "\n")
    tokenizer_dir = tmp_path / "tok"
    train_tokenizer(str(corpus / "train.txt"), str(tokenizer_dir), vocab_size=4000)
    run_cli(
        "fit",
        *tiny_args(corpus, tokenizer_dir, steps=60),
        "--model.optimizer.init_args.lr=5e-4",
        cwd=tmp_path,
    )
    pre = tmp_path / "runs/tiny/checkpoints/last.ckpt"
    run_cli("export", "--ckpt_path", str(pre), "--output_dir", str(tmp_path / "pre"), cwd=tmp_path)
    args = [
        "--config",
        str(REPO / "configs/finetune/sst2.yaml"),
        f"--model.init_from={tmp_path / 'pre/discriminator'}",
        f"--data.data_dir={glue}",
        "--data.limit_train_examples=8000",
        "--trainer.max_epochs=2",
        "--model.learning_rate=5e-4",
        "--trainer.enable_progress_bar=false",
    ]
    run_cli("fit", *args, cwd=tmp_path)
    ckpt = tmp_path / "runs/finetune/sst2/checkpoints/last.ckpt"
    out = run_cli("validate", *args, f"--ckpt_path={ckpt}", cwd=tmp_path).stdout
    acc = float(next(line for line in out.splitlines() if "val/acc" in line).split("│")[2])
    majority = 444 / 872  # SST-2 dev: 444 positive of 872
    assert acc > majority + 0.04, f"dev accuracy {acc:.3f} vs majority {majority:.3f}"

    run_cli(
        "export", "--ckpt_path", str(ckpt), "--output_dir", str(tmp_path / "sst2"), cwd=tmp_path
    )
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from electra_lightning.common.checkpoint import load_checkpoint
    from electra_lightning.hf.export import export_classifier  # noqa: F401 (the path under test)

    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "sst2").eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "sst2")
    assert hf.config.id2label == {0: "negative", 1: "positive"}
    checkpoint = load_checkpoint(str(ckpt))
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}
    module = ElectraClassifier(**{**hparams, "init_from": None}).eval()
    module.load_state_dict(checkpoint["state_dict"])
    for p in [*module.parameters(), *hf.parameters()]:
        p.data = p.data.clone()
    enc = tok(
        ["this movie is really fun , well worth seeing .", "a dull mess ."],
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        assert torch.equal(module.classifier(**enc).logits, hf(**enc).logits)
    result = pipeline("text-classification", model=str(tmp_path / "sst2"))(
        "this movie is really fun, well worth seeing."
    )
    assert result[0]["label"] in ("negative", "positive") and 0 <= result[0]["score"] <= 1
    out = run_cli(
        "predict",
        "classify",
        "--model",
        str(tmp_path / "sst2"),
        "--text",
        '["this movie is really fun , well worth seeing .", "a dull mess ."]',
        cwd=tmp_path,
    ).stdout
    assert len(out.strip().splitlines()) == 2 and "negative: 0." in out


@pytest.mark.slow
def test_glue_command_multi_seed_table_and_submission(tmp_path, corpus_dir, tokenizer_dir):
    from .helpers import run_cli, tiny_args

    glue = shared_data("glue")
    run_cli("fit", *tiny_args(corpus_dir, tokenizer_dir, steps=3), cwd=tmp_path)
    ckpt = (
        tmp_path / "runs/tiny/checkpoints/last.ckpt"
    )  # init_from a pretraining checkpoint directly
    args = [
        "glue",
        "--init_from",
        str(ckpt),
        "--data_dir",
        str(glue),
        "--tasks",
        "rte",
        "stsb",
        "--seeds",
        "2",
        "--output_dir",
        str(tmp_path / "glue"),
        "--trainer.max_epochs=1",
        "--data.limit_train_examples=64",
        "--trainer.limit_val_batches=2",
    ]
    out = run_cli(*args, cwd=tmp_path).stdout
    assert "| rte | acc | 2 |" in out and "| stsb | spearman | 2 |" in out and "GLUE average" in out
    submission = (tmp_path / "glue/rte/seed1/RTE.tsv").read_text().splitlines()
    assert submission[0] == "index\tprediction" and submission[1].split("\t")[1] in (
        "entailment",
        "not_entailment",
    )
    stsb = (tmp_path / "glue/stsb/seed2/STS-B.tsv").read_text().splitlines()
    float(stsb[1].split("\t")[1])
    # resumable: a second call reuses results.jsonl and runs nothing new
    again = run_cli(*args, cwd=tmp_path).stdout
    assert "seed 1:" not in again and "| rte | acc | 2 |" in again


def test_cola_mcc_of_a_constant_predictor_is_zero_as_glue_scores_it():
    """CoLA dev: 722 acceptable, 321 unacceptable, all predicted acceptable. sklearn's
    matthews_corrcoef (GLUE's scorer) gives 0 (the 0/0 case); torchmetrics alone gives 0.026."""
    target = torch.tensor([1] * 722 + [0] * 321)
    m = make_metrics(("mcc",), 2)
    m.update(torch.ones_like(target), target)
    assert float(m.compute()["mcc"]) == 0.0
    m.reset()
    m.update(torch.zeros_like(target), target)  # the other constant
    assert float(m.compute()["mcc"]) == 0.0


def test_classification_reports_accuracy_precision_recall_f1():
    from electra_lightning.finetune.tasks import metric_names

    assert metric_names("sst2", 2) == ("acc", "precision", "recall", "f1")
    assert metric_names("cola", 2) == ("mcc", "acc", "precision", "recall", "f1")
    assert metric_names("mrpc", 2) == ("f1", "acc", "precision", "recall")
    assert metric_names("stsb", 1) == ("spearman", "pearson")
    # binary: of the positive class. preds 1,1,1,0 vs 1,1,0,0: P = 2/3, R = 1, F1 = 0.8
    m = make_metrics(metric_names("sst2", 2), 2)
    m.update(torch.tensor([1, 1, 1, 0]), torch.tensor([1, 1, 0, 0]))
    out = {k: float(v) for k, v in m.compute().items()}
    assert math.isclose(out["precision"], 2 / 3, rel_tol=1e-6) and out["recall"] == 1.0
    assert math.isclose(out["f1"], 0.8, rel_tol=1e-6) and out["acc"] == 0.75
    # three classes: macro averages. preds 0,1,2,2 vs 0,1,1,2:
    # P per class (1, 1, 1/2) → 5/6; R per class (1, 1/2, 1) → 5/6; F1 (1, 2/3, 2/3) → 7/9
    m = make_metrics(metric_names("custom", 3), 3)
    m.update(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2]))
    out = {k: float(v) for k, v in m.compute().items()}
    assert math.isclose(out["precision"], 5 / 6, rel_tol=1e-6)
    assert math.isclose(out["recall"], 5 / 6, rel_tol=1e-6)
    assert math.isclose(out["f1"], 7 / 9, rel_tol=1e-6) and out["acc"] == 0.75


def test_loading_a_pretrained_discriminator_is_one_quiet_line(tmp_path, capfd, caplog):
    """Transformers' UNEXPECTED/MISSING load report (and progress bar) for the expected difference
    — the pretraining head left out, a classifier head new — is one line; weights that do not
    fit are still a one-line error."""
    from safetensors.torch import load_file, save_file
    from transformers import ElectraConfig, ElectraForPreTraining

    from electra_lightning.finetune.classifier import ElectraClassifier

    config = ElectraConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        embedding_size=16,
        max_position_embeddings=32,
    )
    ElectraForPreTraining(config).save_pretrained(tmp_path / "disc")
    capfd.readouterr()
    with caplog.at_level("INFO"):
        ElectraClassifier(init_from=str(tmp_path / "disc"), num_labels=3)
    out, err = capfd.readouterr()
    assert not (out + err).strip(), out + err  # no report, no progress bar
    assert [r.getMessage() for r in caplog.records if r.name.startswith("lightning")] == [
        f"model.init_from: the pretrained encoder of {tmp_path / 'disc'} (its own head left out) "
        "and a new 3-label classifier head"
    ]
    weights = tmp_path / "disc" / "model.safetensors"
    state = load_file(weights)
    state.pop("electra.encoder.layer.0.output.dense.weight")
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(
        ValueError,
        match=r"^model.init_from: weights in .* do not fit an ELECTRA "
        r"encoder \(missing \['encoder.layer.0.output.dense.weight'\]",
    ):
        ElectraClassifier(init_from=str(tmp_path / "disc"), num_labels=3)


def test_dropout_and_adamw_settings_are_written_once():
    """Fine-tuning and pretraining share the official dropout and AdamW betas/eps: every
    ``dropout`` parameter defaults to ``model.electra.DROPOUT`` and no call types ``betas=`` or
    ``eps=`` again beside ``model.optim.ADAMW_DEFAULTS``."""
    import ast
    from pathlib import Path

    import electra_lightning

    dropouts, typed = [], []
    for path in sorted(Path(electra_lightning.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                args, defaults = node.args.posonlyargs + node.args.args, node.args.defaults
                pairs = [*zip(args[len(args) - len(defaults) :], defaults, strict=True)]
                pairs += [*zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True)]
                dropouts += [
                    f"{path.name}:{node.name}"
                    for arg, default in pairs
                    if arg.arg == "dropout" and default and ast.unparse(default) != "DROPOUT"
                ]
            literal = (ast.Constant, ast.Tuple)
            if isinstance(node, ast.keyword) and node.arg in ("betas", "eps"):
                if isinstance(node.value, literal):
                    typed.append(f"{path.name}:{node.lineno}")
    assert (dropouts, typed) == ([], [])
