"""One table of bad inputs: each gives one line (``error: …``), exit code 2, no traceback, and
leaves the previous checkpoint untouched. Runs in-process through ``cli.main`` (no subprocess per
case); the README's "Bad input" section lists the same cases."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from electra_lightning.cli.main import main
from electra_lightning.common.checkpoint import DATA_STATE_KEY, load_checkpoint

from .helpers import REPO, cwd, jsonl_with_bad_records, run_main, tiny_args


def finetune_args(init_from, train, val, *extra):
    return [
        "fit",
        "--config",
        REPO / "configs/finetune/sst2.yaml",
        f"--model.init_from={init_from}",
        "--data.task=custom",
        f"--data.train_file={train}",
        f"--data.val_file={val}",
        "--data.batch_size=4",
        "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=false",
        *extra,
    ]


@pytest.fixture(scope="module")
def made(tmp_path_factory, corpus_dir, tokenizer_dir):
    """A 2-step pretraining checkpoint, its export, a fine-tuning checkpoint, and bad files."""
    root = tmp_path_factory.mktemp("made")
    with cwd(root):
        assert main(["fit", *map(str, tiny_args(corpus_dir, tokenizer_dir, steps=2))]) == 0
        ckpt = root / "runs/tiny/checkpoints/last.ckpt"
        assert main(["export", f"--ckpt_path={ckpt}", f"--output_dir={root / 'export'}"]) == 0
        (root / "train.csv").write_text("text,label\n" + "fun film,pos\nawful,neg\n" * 4)
        (root / "dev.csv").write_text("text,label\ngreat,pos\nbad,neg\n")
        args = finetune_args(
            root / "export/discriminator",
            root / "train.csv",
            root / "dev.csv",
            "--data.labels=[neg,pos]",
            f"--trainer.callbacks.init_args.dirpath={root / 'ft'}",
        )
        assert main([str(a) for a in args]) == 0
    files = {"ckpt": ckpt, "export": root / "export", "ft_ckpt": root / "ft/last.ckpt"}
    torch.save(torch.ones(3), root / "tensor.ckpt")
    torch.save({"model": {"w": torch.ones(2)}, "epoch": 3}, root / "foreign.ckpt")
    # another tool's checkpoint with a state_dict (was KeyError: 'pytorch-lightning_version')
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, root / "foreign-sd.ckpt")
    (root / "truncated.ckpt").write_bytes(ckpt.read_bytes()[:4000])
    (root / "ckptdir").mkdir()
    state = load_checkpoint(str(ckpt))
    for i, name in enumerate(
        ("../escaped.txt", "/tmp/electra-escaped.txt", "sub/vocab.txt", "x.py")
    ):
        evil = dict(state)  # the tokenizer travels in the data module's checkpoint state
        data_state = dict(state[DATA_STATE_KEY])
        data_state["tokenizer_files"] = {**data_state["tokenizer_files"], name: "pwned"}
        evil[DATA_STATE_KEY] = data_state
        torch.save(evil, root / f"evil{i}.ckpt")
        files[f"evil{i}"] = root / f"evil{i}.ckpt"
    (root / "garbage.ckpt").write_bytes(b"\x80\x02garbage")
    from transformers import PreTrainedTokenizerFast

    PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_dir / "tokenizer.json"),
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    ).save_pretrained(root / "no-mask-tokenizer")
    from electra_lightning.data.tokenizer import train_tokenizer

    for name, text in (("broken-tokenizer", '{"version": "1.0",'), ("not-a-tokenizer", "{}")):
        shutil.copytree(tokenizer_dir, root / name)
        (root / name / "tokenizer.json").write_text(text)
    train_tokenizer(
        str(corpus_dir / "val.txt"), str(root / "other-tokenizer"), vocab_size=2000, min_frequency=1
    )
    jsonl_with_bad_records(corpus_dir, root / "bad.jsonl", bad_every=3)
    (root / "nan.csv").write_text("text,label\nfine,0.5\nodd,nan\n")
    (root / "inf.csv").write_text("text,label\nfine,0.5\nodd,inf\n")
    (root / "latin1.txt").write_bytes("fine film\ncaf\xe9 film\n".encode("latin-1"))
    (root / "nolabel.jsonl").write_text('{"text": "fine", "label": "pos"}\n{"text": "odd"}\n')
    return root, files


def _corpus(root: Path, name: str, content) -> Path:
    path = root / "input" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith("/"):
        path.mkdir()
    elif content == "fifo":
        os.mkfifo(path)
    elif content == "parquet-nocol":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"body": ["a b c"] * 10}), path)
    elif content == "parquet-null":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"text": ["a b c", None, "d e f"] * 5}), path)
    elif content is not None:
        path.write_bytes(content)
    return path


def pretrain(override: str):
    return lambda ctx: ["fit", *tiny_args(ctx.corpus, ctx.tokenizer, steps=2), override]


def corpus(name: str, content):
    return lambda ctx: [
        "fit",
        *tiny_args(ctx.corpus, ctx.tokenizer, steps=2),
        f"--data.train_files={_corpus(ctx.workdir, name, content)}",
        "--trainer.limit_val_batches=0",
    ]


def resume(key: str):
    return lambda ctx: [
        "fit",
        *tiny_args(ctx.corpus, ctx.tokenizer, steps=4),  # past the checkpoint's step 2
        f"--ckpt_path={ctx.files.get(key, ctx.root / key)}",
    ]


def finetune(train: str, *extra: str, ckpt_path: str | None = None):
    def argv(ctx):
        args = finetune_args(
            ctx.files["export"] / "discriminator", ctx.root / train, ctx.root / "dev.csv", *extra
        )
        args.append(f"--trainer.callbacks.init_args.dirpath={ctx.workdir / 'ft'}")
        if ckpt_path:
            args.append(f"--ckpt_path={ctx.files[ckpt_path]}")
        return args

    return argv


def init_from(key: str):
    return lambda ctx: finetune_args(
        ctx.files[key], ctx.root / "train.csv", ctx.root / "dev.csv", "--data.labels=[neg,pos]"
    )


def predict(command: str, model: str, text: str = "the cat sat"):
    return lambda ctx: [
        "predict",
        command,
        f"--model={ctx.files['export'] / model}",
        f"--text={text}",
    ]


def export(key: str):
    return lambda ctx: [
        "export",
        f"--ckpt_path={ctx.files[key]}",
        f"--output_dir={ctx.workdir / 'out'}",
    ]


EVIL = "refused tokenizer file name"
CASES = {
    # settings
    "mask_prob<0": (pretrain("--data.mask_prob=-0.1"), "mask_prob must be in (0, 1]"),
    "mask_prob>1": (pretrain("--data.mask_prob=1.5"), "mask_prob must be in (0, 1]"),
    "batch_size=0": (pretrain("--data.batch_size=0"), "data.batch_size must be >= 1"),
    "seq<8": (pretrain("--data.max_seq_length=4"), "data.max_seq_length must be >= 8"),
    "seq>positions": (
        pretrain("--data.max_seq_length=512"),
        "exceeds model.size.max_position_embeddings",
    ),
    "max_bad_records<0": (
        pretrain("--data.max_bad_records=-1"),
        "data.max_bad_records must be >= 0",
    ),
    "shuffle_block<1": (pretrain("--data.shuffle_block=0"), "data.shuffle_block must be >= 1"),
    "unknown key": (pretrain("--model.no_such_option=1"), "no_such_option"),
    "heads do not divide hidden": (
        pretrain("--model.size.num_heads=3"),
        "model.size.hidden_size 128 is not divisible by model.size.num_heads 3",
    ),
    "size key outside model.size (option)": (
        pretrain("--model.hidden_size=64"),
        "did you mean --model.size.hidden_size?",
    ),
    "size key outside model.size (config file)": (
        lambda ctx: [
            "fit",
            "--config",
            str(_corpus(ctx.workdir, "old.yaml", b"model:\n  num_layers: 2\n")),
            *tiny_args(ctx.corpus, ctx.tokenizer, steps=2),
        ],
        "unknown key 'model.num_layers' (did you mean --model.size.num_layers?)",
    ),
    "tokenizer dir without tokenizer.json": (
        lambda ctx: [*pretrain("--data.num_workers=0")(ctx), f"--data.tokenizer={ctx.workdir}"],
        "has no tokenizer.json",
    ),
    "tokenizer.json not JSON": (
        lambda ctx: [
            *pretrain("--data.num_workers=0")(ctx),
            f"--data.tokenizer={ctx.root / 'broken-tokenizer'}",
        ],
        "broken-tokenizer/tokenizer.json' (JSONDecodeError: Expecting",
    ),
    "tokenizer.json not a tokenizer": (
        lambda ctx: [
            *pretrain("--data.num_workers=0")(ctx),
            f"--data.tokenizer={ctx.root / 'not-a-tokenizer'}",
        ],
        "not-a-tokenizer/tokenizer.json' (",
    ),
    "tokenizer without [MASK]": (
        lambda ctx: [
            *pretrain("--data.num_workers=0")(ctx),
            f"--data.tokenizer={ctx.root / 'no-mask-tokenizer'}",
        ],
        "defines no mask_token",
    ),
    "unwritable ckpt dir": (
        pretrain("--trainer.callbacks.init_args.dirpath=/proc/version/x"),
        "ModelCheckpoint.dirpath: cannot write",
    ),
    # corpus
    "missing file": (corpus("missing.txt", None), "does not exist"),
    "named pipe": (corpus("pipe.txt", "fifo"), "is a named pipe (FIFO), not a regular file"),
    "empty file": (corpus("empty.txt", b""), "is empty"),
    "binary file": (corpus("binary.txt", bytes(range(256)) * 10), "looks binary"),
    "dir without text": (corpus("nothing/", None), "has no .txt"),
    "broken jsonl line": (
        corpus("bad.jsonl", b'{"text": "fine"}\n{"text": \n'),
        "bad.jsonl:2: broken JSON line",
    ),
    "jsonl without field": (
        corpus("nofield.jsonl", b'{"body": "x"}\n'),
        "nofield.jsonl:1: field 'text' is missing",
    ),
    "parquet without column": (corpus("nocol.parquet", "parquet-nocol"), "has no column 'text'"),
    "parquet null text": (
        corpus("null.parquet", "parquet-null"),
        "null.parquet:row 1: field 'text'",
    ),
    "more bad records than allowed": (
        lambda ctx: [
            *pretrain("--data.on_bad_record=skip")(ctx),
            f"--data.train_files={ctx.root / 'bad.jsonl'}",
            "--data.max_bad_records=2",
        ],
        "bad records skipped, more than data.max_bad_records=2",
    ),
    # checkpoints given to --ckpt_path
    "ckpt: a tensor": (
        resume("tensor.ckpt"),
        "tensor.ckpt' is not a checkpoint written by electra_lightning fit (it holds a Tensor)",
    ),
    "ckpt: foreign dict": (
        resume("foreign.ckpt"),
        "foreign.ckpt' is not a checkpoint written by electra_lightning fit (it holds a dict with keys model, epoch)",
    ),
    "another tool's checkpoint with a state_dict": (
        resume("foreign-sd.ckpt"),
        "foreign-sd.ckpt' is not a checkpoint written by electra_lightning fit (it holds a dict "
        "with keys state_dict, epoch)",
    ),
    "ckpt: truncated": (resume("truncated.ckpt"), "truncated.ckpt' is truncated or corrupt"),
    "ckpt: a directory": (resume("ckptdir"), "ckptdir' is a directory, not a checkpoint file"),
    "ckpt: missing": (resume("nope.ckpt"), "nope.ckpt' does not exist"),
    "ckpt: garbage bytes": (resume("garbage.ckpt"), "garbage.ckpt' is truncated or corrupt"),
    "ckpt: another model size": (
        lambda ctx: [*resume("ckpt")(ctx), "--model.size.hidden_size=64"],
        "model.size.hidden_size: checkpoint 128, now 64",
    ),
    "ckpt: another tokenizer": (
        lambda ctx: [*resume("ckpt")(ctx), f"--data.tokenizer={ctx.root / 'other-tokenizer'}"],
        "is not the tokenizer this checkpoint was trained with",
    ),
    "ckpt: fine-tuning for pretraining": (
        resume("ft_ckpt"),
        "is a fine-tuning checkpoint; resume it with its fine-tuning config",
    ),
    "ckpt: pretraining for fine-tuning": (
        finetune("train.csv", "--data.labels=[neg,pos]", ckpt_path="ckpt"),
        "is a pretraining checkpoint, not a fine-tuning one; to fine-tune from it pass it as --model.init_from",
    ),
    # untrusted tokenizer files inside a checkpoint, in every reader
    "export: ../ name": (export("evil0"), EVIL + " '../escaped.txt'"),
    "export: absolute name": (export("evil1"), EVIL + " '/tmp/electra-escaped.txt'"),
    "export: name with separator": (export("evil2"), EVIL + " 'sub/vocab.txt'"),
    "export: unknown name": (export("evil3"), EVIL + " 'x.py'"),
    "init_from: ../ name": (init_from("evil0"), EVIL + " '../escaped.txt'"),
    "init_from: absolute name": (init_from("evil1"), EVIL + " '/tmp/electra-escaped.txt'"),
    # fine-tuning data
    "label nan": (finetune("nan.csv"), "nan.csv:3: label 'nan' is not a finite number"),
    "label inf": (finetune("inf.csv"), "inf.csv:3: label 'inf' is not a finite number"),
    "jsonl record without label": (
        finetune("nolabel.jsonl", "--data.labels=[neg,pos]"),
        "nolabel.jsonl:2: no label in column 'label'",
    ),
    # predict with the wrong model
    "classify a pretraining export": (
        predict("classify", "discriminator"),
        "has no trained classifier weights, so `predict classify` needs a fine-tuned classifier",
    ),
    "detect with the generator": (
        predict("detect", "generator"),
        "it is an exported generator: use `predict fill-mask`",
    ),
    "fill-mask with the discriminator": (
        predict("fill-mask", "discriminator", "a [MASK] b"),
        "it is an exported discriminator: use `predict detect`",
    ),
    # predict input: bytes that are not UTF-8 (a shell passes them as they are), masks past the end
    "detect: --text not UTF-8": (
        predict("detect", "discriminator", "caf\udce9 au lait"),
        "--text: not UTF-8 text (byte 0xe9 at character 3); pass UTF-8",
    ),
    "fill-mask: --text not UTF-8": (
        predict("fill-mask", "generator", "caf\udce9 [MASK]"),
        "--text: not UTF-8 text (byte 0xe9",
    ),
    "classify: --file not UTF-8": (
        lambda ctx: [
            "predict",
            "classify",
            f"--model={ctx.files['export'] / 'discriminator'}",
            f"--file={ctx.root / 'latin1.txt'}",
        ],
        "latin1.txt:2: not UTF-8 (byte 0xe9); save the file as UTF-8",
    ),
    "fill-mask: every [MASK] past the model's positions": (
        predict("fill-mask", "generator", "word " * 300 + "[MASK]"),
        "--text: every [MASK] is past the model's 128 tokens",
    ),
}


class Ctx:
    def __init__(self, root, files, workdir, corpus_dir, tokenizer_dir):
        self.root, self.files, self.workdir = root, files, workdir
        self.corpus, self.tokenizer = corpus_dir, tokenizer_dir


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, made, tmp_path, corpus_dir, tokenizer_dir, capsys):
    root, files = made
    make_argv, message = CASES[case]
    original = files["ckpt"].read_bytes()
    # another run's file beside the checkpoints (a .ckpt there would be refused up front)
    sentinel = tmp_path / "runs/tiny/checkpoints/previous-run.txt"
    sentinel.parent.mkdir(parents=True)
    sentinel.write_bytes(b"previous")
    argv = make_argv(Ctx(root, files, tmp_path, corpus_dir, tokenizer_dir))
    code, err = run_main(argv, tmp_path, capsys)
    assert code == 2, err[-2000:]
    assert message in err, err[-2000:]
    assert "Traceback" not in err
    assert sentinel.read_bytes() == b"previous"
    assert files["ckpt"].read_bytes() == original
    # nothing escaped the output directory
    assert not (tmp_path / "escaped.txt").exists() and not (root / "escaped.txt").exists()
    assert not Path("/tmp/electra-escaped.txt").exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_glue_reader_refuses_a_checkpoint_tokenizer_with_bad_names(made, tmp_path):
    from electra_lightning.finetune.glue import GlueDataModule

    root, files = made
    dm = GlueDataModule(
        task="custom",
        train_file=str(root / "train.csv"),
        val_file=str(root / "dev.csv"),
        labels=["neg", "pos"],
        tokenizer=str(files["evil0"]),
    )
    with pytest.raises(ValueError, match=EVIL):
        _ = dm.tokenizer
    assert not (root / "escaped.txt").exists()


@pytest.mark.parametrize(
    "labels,values,expect",
    [
        ("[0,1]", "0 1", ["0", "1"]),
        ("[false,true]", "false true", ["false", "true"]),
        ("[neg,pos]", "neg pos", ["neg", "pos"]),
    ],
)
def test_labels_given_as_numbers_booleans_or_names(made, tmp_path, labels, values, expect, capsys):
    root, _ = made
    a, b = values.split()
    (tmp_path / "t.jsonl").write_text(
        json.dumps({"text": "x", "label": json.loads(a) if a != "neg" else a})
        + "\n"
        + json.dumps({"text": "y", "label": json.loads(b) if b != "pos" else b})
        + "\n"
    )
    from electra_lightning.cli.lightning import run_finetune_cli

    with cwd(tmp_path):
        cli = run_finetune_cli(
            [
                str(x)
                for x in finetune_args(
                    root / "export/discriminator",
                    tmp_path / "t.jsonl",
                    tmp_path / "t.jsonl",
                    f"--data.labels={labels}",
                )
            ][1:],
            run=False,
        )
    assert list(cli.datamodule.spec.labels) == expect
    assert [e.label for e in cli.datamodule.examples("train")] == [0, 1]


def test_predict_classify_takes_one_plain_string(made, tmp_path, capsys):
    root, files = made
    out = tmp_path / "clf"
    code, err = run_main(
        ["export", f"--ckpt_path={files['ft_ckpt']}", f"--output_dir={out}"], tmp_path, capsys
    )
    assert code == 0, err
    answers = []
    for text in ("great movie", "great movie", '["great movie", "dull"]'):
        capsys.readouterr()
        with cwd(tmp_path):
            assert main(["predict", "classify", f"--model={out}", f"--text={text}"]) == 0
        answers.append(capsys.readouterr().out.strip().splitlines())
    assert len(answers[0]) == 1 and answers[0][0].endswith("great movie")
    assert answers[0] == answers[1]  # a trained head: the same answer on every call
    assert len(answers[2]) == 2 and answers[2][0] == answers[0][0]


@pytest.mark.parametrize("command", ["detect", "fill-mask", "classify"])
def test_predict_truncates_long_text_to_the_models_positions_and_says_so(
    made, tmp_path, capsys, command
):
    """300 words for a 128-position model: it answers on the first 128 tokens and says once
    how much was cut (it used to crash with a tensor-size error; classify cut at 512)."""
    root, files = made
    model = {"detect": "discriminator", "fill-mask": "generator"}.get(command)
    if model is None:
        model_dir = tmp_path / "clf"
        argv = ["export", f"--ckpt_path={files['ft_ckpt']}", f"--output_dir={model_dir}"]
        assert run_main(argv, tmp_path, capsys)[0] == 0
    else:
        model_dir = files["export"] / model
    text = "the [MASK] sat on the mat . " + "the cat sat on the mat . " * 50
    capsys.readouterr()
    with cwd(tmp_path):
        code = main(["predict", command, f"--model={model_dir}", f"--text={text}"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1, err
    assert "1 of 1 text(s) longer than the model's 128 positions" in notes[0]
    assert "truncated to 128 tokens" in notes[0]
    if command == "detect":
        assert len(out.strip().splitlines()) == 1 + 125  # 128 minus [CLS], [SEP], [MASK]


def test_repeated_finetune_overwrites_last_ckpt(made, tmp_path, capsys):
    root, _ = made
    args = finetune_args(
        root / "export/discriminator",
        root / "train.csv",
        root / "dev.csv",
        "--data.labels=[neg,pos]",
        f"--trainer.callbacks.init_args.dirpath={tmp_path / 'ft'}",
    )
    for seed in (1, 2):
        code, err = run_main([*args, f"--seed_everything={seed}"], tmp_path, capsys)
        assert code == 0, err
        if seed == 1:
            first = load_checkpoint(str(tmp_path / "ft/last.ckpt"))["state_dict"]
    assert sorted(p.name for p in (tmp_path / "ft").iterdir() if "ckpt" in p.name) == ["last.ckpt"]
    second = load_checkpoint(str(tmp_path / "ft/last.ckpt"))["state_dict"]
    assert any(not torch.equal(first[k], second[k]) for k in first)  # the second run's weights


def test_disk_full_while_saving_is_one_line_and_keeps_the_previous_checkpoint(
    made, tmp_path, corpus_dir, tokenizer_dir, capsys, monkeypatch
):
    """torch's zip writer reports a full disk as a RuntimeError, not an OSError. The disk fills
    while a resumed run saves: the checkpoint it resumed from stays as it was."""
    ckpt_dir = tmp_path / "runs/tiny/checkpoints"
    args = ["fit", *tiny_args(corpus_dir, tokenizer_dir, steps=2)]
    assert run_main(args, tmp_path, capsys)[0] == 0
    previous = (ckpt_dir / "last.ckpt").read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if hasattr(f, "write"):
            f.write(b"partial")
            raise RuntimeError(
                "[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0\n"
                "PytorchStreamWriter failed writing file data/0: file write failed"
            )
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    resume = [*args, "--trainer.max_steps=4", "--ckpt_path=last"]
    code, err = run_main(resume, tmp_path, capsys)
    assert code == 2, err[-2000:]
    assert "cannot write checkpoint" in err and "file write failed" in err, err[-2000:]
    assert "earlier checkpoints are untouched" in err and "Traceback" not in err
    assert (ckpt_dir / "last.ckpt").read_bytes() == previous
    assert not [p.name for p in ckpt_dir.iterdir() if ".tmp-" in p.name]


def test_a_file_size_limit_while_saving_says_so_not_free_disk_space(tmp_path):
    """Under `ulimit -f` (Python ignores SIGXFSZ, so the write fails with EFBIG, which torch's
    writer reports as a RuntimeError) the message names the limit, not a full disk."""
    import subprocess
    import sys

    script = (
        "import resource, torch\n"
        "from electra_lightning.common.checkpoint import atomic_save\n"
        "hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, hard))\n"
        "try:\n"
        "    atomic_save({'w': torch.zeros(1 << 16)}, 'last.ckpt')\n"
        "except ValueError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    assert "cannot write checkpoint 'last.ckpt'" in out, out
    assert "file-size limit" in out and "65,536 bytes" in out and "disk space" not in out, out
    assert not list(tmp_path.iterdir())  # no temporary file left


def test_skip_mode_trains_past_bad_records_and_logs_the_count(
    made, tmp_path, corpus_dir, tokenizer_dir, capsys
):
    root, _ = made
    argv = [
        "fit",
        *tiny_args(corpus_dir, tokenizer_dir, steps=6),
        f"--data.train_files={root / 'bad.jsonl'}",
        "--data.on_bad_record=skip",
        "--trainer.log_every_n_steps=2",
    ]
    code, err = run_main(argv, tmp_path, capsys)
    assert code == 0, err[-2000:]
    named = [int(n) for n in re.findall(r"skipped bad record \S*bad\.jsonl:(\d+): ", err)]
    assert named and all(n % 3 == 0 for n in named), named  # every 3rd line is a bad record
    import csv

    rows = list(csv.DictReader(open(tmp_path / "runs/tiny/metrics.csv")))
    counts = [float(r["train/skipped_records"]) for r in rows if r.get("train/skipped_records")]
    assert counts and counts[-1] > 0 and counts == sorted(counts)


def test_nonfinite_finetuning_loss_stops_with_a_rescue_checkpoint(made, tmp_path, capsys):
    """A regression target of 1e39 is finite when read but overflows float32: the loss turns
    inf, the run stops with one line and keeps the last finite weights in rescue-step=N.ckpt."""
    root, files = made
    rows = "".join(f"text {i},{i % 5}.0\n" for i in range(12)) + "odd one,1e39\n"
    (tmp_path / "huge.csv").write_text("text,label\n" + rows)
    argv = finetune_args(
        files["export"] / "discriminator",
        tmp_path / "huge.csv",
        root / "dev.csv",
        "--data.batch_size=13",  # the bad row is in the first batch
        f"--trainer.callbacks.init_args.dirpath={tmp_path / 'ft'}",
    )
    (tmp_path / "dev.csv").write_text("text,label\nfine,1.0\nok,2.0\n")
    argv[argv.index(f"--data.val_file={root / 'dev.csv'}")] = (
        f"--data.val_file={tmp_path / 'dev.csv'}"
    )
    code, err = run_main(argv, tmp_path, capsys)
    assert code == 2, err[-2000:]
    assert "non-finite fine-tuning loss at step 0" in err and "rescue-step=0.ckpt" in err
    assert "Traceback" not in err
    rescue = load_checkpoint(str(tmp_path / "ft" / "rescue-step=0.ckpt"))
    assert all(
        torch.isfinite(t).all() for t in rescue["state_dict"].values() if t.is_floating_point()
    )


def test_export_replaces_an_earlier_export_whole_and_follows_no_planted_symlink(
    made, tmp_path, capsys
):
    """An earlier export with a stale tokenizer file, a symlink planted to a file outside and a
    subdirectory that is a file: the new export replaces it whole; nothing outside changes."""
    from transformers import AutoTokenizer

    root, files = made
    out = tmp_path / "export"
    victim = tmp_path / "outside.txt"
    victim.write_text("keep me")
    (out / "discriminator").mkdir(parents=True)
    (out / "discriminator/special_tokens_map.json").write_text("{not json")  # stale
    (out / "discriminator/config.json").symlink_to(victim)  # planted
    (out / "generator").write_text("a file where a directory goes")
    code, err = run_main(
        ["export", f"--ckpt_path={files['ckpt']}", f"--output_dir={out}"], tmp_path, capsys
    )
    assert code == 0, err
    assert victim.read_text() == "keep me"
    assert not (out / "discriminator/config.json").is_symlink()
    assert sorted(p.name for p in out.iterdir()) == ["discriminator", "generator", "tokenizer"]
    AutoTokenizer.from_pretrained(out / "discriminator")  # the stale file is gone
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export-")]


def test_export_keeps_the_permissions_users_expect(made, tmp_path, capsys):
    """A new export follows the umask (not mkdtemp's 0700); a replaced export keeps its mode."""
    _, files = made
    old_umask = os.umask(0o022)
    try:
        out = tmp_path / "export"
        argv = ["export", f"--ckpt_path={files['ckpt']}", f"--output_dir={out}"]
        assert run_main(argv, tmp_path, capsys)[0] == 0
        assert out.stat().st_mode & 0o777 == 0o755
        out.chmod(0o750)
        assert run_main(argv, tmp_path, capsys)[0] == 0
        assert out.stat().st_mode & 0o777 == 0o750
    finally:
        os.umask(old_umask)


def test_an_export_killed_between_its_renames_is_recovered_by_the_next(made, tmp_path, capsys):
    """kill -9 after the earlier export was renamed aside and before the new one took its
    place: the next export puts the earlier one back (or replaces it) and leaves no hidden
    .export-* directory behind."""
    import signal
    import subprocess
    import sys

    _, files = made
    out = tmp_path / "export"
    argv = ["export", f"--ckpt_path={files['ckpt']}", f"--output_dir={out}"]
    assert run_main(argv, tmp_path, capsys)[0] == 0
    (out / "tokenizer/marker.json").write_text("the earlier export")
    script = (
        "import os, signal, sys\n"
        "rename = os.rename\n"
        "def killed(src, dst):\n"
        f"    if os.path.abspath(dst) == {str(out)!r}:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    rename(src, dst)\n"
        "os.rename = killed\n"
        "from electra_lightning.cli.main import main\n"
        "main(sys.argv[1:])\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script, *argv], cwd=tmp_path, capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not out.exists()  # between the renames: the earlier export is aside
    hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".export-")]
    assert len(hidden) == 2, hidden  # the earlier export and the new one's staging
    # a plain export into another directory does not touch them
    code, err = run_main(
        ["export", f"--ckpt_path={files['ckpt']}", f"--output_dir={tmp_path / 'other'}"],
        tmp_path,
        capsys,
    )
    assert code == 0, err
    assert not out.exists() and len([p for p in tmp_path.iterdir() if p.name in hidden]) == 2
    code, err = run_main(argv, tmp_path, capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["discriminator", "generator", "tokenizer"]
    assert not (out / "tokenizer/marker.json").exists()  # replaced by the new export, whole
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export-")]


def test_a_killed_export_leaves_the_earlier_one_where_it_was_for_the_next_run(made, tmp_path):
    """What the next export finds after a kill -9 between the renames: the earlier export is put
    back at its name before anything else, so even a next export that fails never costs it."""
    from electra_lightning.hf.export import fresh_output

    out = tmp_path / "export"
    (tmp_path / ".export-export.old/tokenizer").mkdir(parents=True)
    (tmp_path / ".export-export.old/tokenizer/vocab.txt").write_text("[PAD]\n")
    with pytest.raises(RuntimeError, match="the export failed"):
        with fresh_output(str(out)):
            raise RuntimeError("the export failed")
    assert (out / "tokenizer/vocab.txt").read_text() == "[PAD]\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_export_refuses_a_directory_that_is_not_an_export(made, tmp_path, capsys):
    root, files = made
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    code, err = run_main(
        ["export", f"--ckpt_path={files['ckpt']}", f"--output_dir={out}"], tmp_path, capsys
    )
    assert code == 2 and "holds files that are not an export (notes.txt)" in err, err
    assert (out / "notes.txt").read_text() == "my notes" and len(list(out.iterdir())) == 1


@pytest.mark.parametrize("problem", ["a file", "read-only"])
def test_a_log_directory_that_cannot_be_written_is_one_line(
    made, tmp_path, capsys, corpus_dir, tokenizer_dir, problem
):
    """CSVLogger's save_dir is checked with the checkpoint directory, before anything runs."""
    import os

    logs = tmp_path / "logs"
    if problem == "a file":
        logs.write_text("not a directory")
    else:
        logs.mkdir()
        os.chmod(logs, 0o500)
        if os.access(logs, os.W_OK):  # root ignores the mode
            pytest.skip("running as root: a read-only directory is writable")
    argv = [
        "fit",
        *map(str, tiny_args(corpus_dir, tokenizer_dir, steps=2)),
        f"--trainer.logger.init_args.save_dir={logs}",
        f"--trainer.callbacks.init_args.dirpath={tmp_path / 'ckpt'}",
    ]
    code, err = run_main(argv, tmp_path, capsys)
    assert code == 2, err[-2000:]
    # the logger's save_dir, or the run's checkpoint directory inside it (runs/NAME/checkpoints
    # of a named run): whichever is checked first, one line naming it
    line = err.strip().splitlines()[-1]
    assert "cannot write to" in line and "logs" in line and "Traceback" not in err, err
    assert "trainer.logger (CSVLogger) save_dir" in line or "ModelCheckpoint.dirpath" in line
