"""``glue-data``: GLUE from a dataset laid out as the Hub's ``nyu-mll/glue`` (here a local mirror
read through the same ``datasets.load_dataset`` call: a README's ``configs:`` and parquet files
per config and split) written in the glue_data TSV layout, and read back by fine-tuning's data
module as the reference files are."""

from __future__ import annotations

from pathlib import Path

import pytest

from electra_lightning.cli.main import main
from electra_lightning.finetune.glue import GlueDataModule, read_examples
from electra_lightning.finetune.glue_data import LAYOUTS
from electra_lightning.finetune.tasks import task_spec

from .helpers import shared_data

ROWS = 12  # examples per split taken from the reference files
# the Hub's text fields of each task (nyu-mll/glue's features)
HUB_TEXT = {
    "cola": ("sentence", None),
    "sst2": ("sentence", None),
    "mrpc": ("sentence1", "sentence2"),
    "stsb": ("sentence1", "sentence2"),
    "rte": ("sentence1", "sentence2"),
    "wnli": ("sentence1", "sentence2"),
    "qnli": ("question", "sentence"),
    "mnli": ("premise", "hypothesis"),
    "qqp": ("question1", "question2"),
}
REFERENCE_TASKS = ["cola", "sst2", "mrpc", "stsb", "rte", "wnli", "qnli"]


def write_glue_mirror(root: Path, splits: dict[tuple[str, str], list[dict]]) -> Path:
    """A directory ``load_dataset(DIR, CONFIG, split=SPLIT)`` reads as it reads ``nyu-mll/glue``:
    ``CONFIG/SPLIT-00000-of-00001.parquet`` and a README naming every config's splits."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    configs: dict[str, list[str]] = {}
    for (config, split), rows in splits.items():
        (root / config).mkdir(parents=True, exist_ok=True)
        columns = {k: [r[k] for r in rows] for k in rows[0]}
        pq.write_table(pa.table(columns), root / config / f"{split}-00000-of-00001.parquet")
        configs.setdefault(config, []).append(split)
    card = ["---", "configs:"]
    for config, names in configs.items():
        card += [f"- config_name: {config}", "  data_files:"]
        for split in names:
            card += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    (root / "README.md").write_text("\n".join([*card, "---", ""]))
    return root


def hub_rows(task: str, examples, test: bool) -> list[dict]:
    """The Hub's rows for GLUE examples: text fields, ``label`` (class id, float score, -1 on
    test) and ``idx``."""
    first, second = HUB_TEXT[task]
    rows = []
    for i, e in enumerate(examples):
        row = {first: e.text}
        if second:
            row[second] = e.text_pair
        row["label"] = -1 if test else e.label
        row["idx"] = int(e.index) if test else i
        rows.append(row)
    return rows


def reference(glue: Path, task: str, name: str):
    """The first examples of a GLUE file (QNLI's train.tsv, absent from the reference: dev.tsv)."""
    spec = task_spec(task)
    if not (glue / spec.name / name).is_file():
        name = "dev.tsv"
    path = str(glue / spec.name / name)
    if name == "test.tsv":
        text = spec.text if isinstance(spec.text, str) else "sentence"
        return read_examples(
            path, text, spec.text_pair, None, spec.labels, index=spec.test_index, labeled=False
        )[:ROWS]
    return read_examples(path, spec.text, spec.text_pair, spec.label, spec.labels, spec.header)[
        :ROWS
    ]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    glue = shared_data("glue")
    splits = {}
    for task in REFERENCE_TASKS:
        for name, split in LAYOUTS[task].splits.items():
            splits[(task, split)] = hub_rows(task, reference(glue, task, name), split == "test")
    # MNLI and QQP are not in the reference copy: a few rows each, every class once
    for split in LAYOUTS["mnli"].splits.values():
        test = split.startswith("test")
        splits[("mnli", split)] = [
            {
                "premise": f"p {i} {split}",
                "hypothesis": f"h\t{i}",
                "label": -1 if test else i,
                "idx": i,
            }
            for i in range(3)
        ]
    for split in ("train", "validation", "test"):
        splits[("qqp", split)] = [
            {
                "question1": f"q{i}?",
                "question2": f"r{i}?",
                "label": -1 if split == "test" else i,
                "idx": 10 + i,
            }
            for i in range(2)
        ]
    return write_glue_mirror(tmp_path_factory.mktemp("hub") / "glue", splits)


def test_glue_data_writes_the_reference_layout(mirror, tmp_path, capsys):
    """Every file of the reference layout, with its header, and the examples fine-tuning reads
    from it equal to the reference files' (texts, labels, test indices); MNLI's labels by name
    in the Hub's class order, and no tab inside a cell."""
    glue = shared_data("glue")
    out = tmp_path / "glue_data"
    assert main(["glue-data", "--output_dir", str(out), "--source", str(mirror)]) == 0
    printed = capsys.readouterr().out
    assert f"{out / 'SST-2'}: train.tsv {ROWS}, dev.tsv {ROWS}, test.tsv {ROWS} rows" in printed
    for task in REFERENCE_TASKS:
        name = task_spec(task).name
        for file in LAYOUTS[task].splits:
            ours, theirs = out / name / file, glue / name / file
            theirs = theirs if theirs.is_file() else theirs.with_name("dev.tsv")
            header = theirs.read_text(encoding="utf-8-sig").splitlines()[0]
            if LAYOUTS[task].header or file == "test.tsv":
                assert ours.read_text().splitlines()[0] == header, (task, file)
            else:  # CoLA's train/dev: no header, 4 columns
                assert len(ours.read_text().splitlines()[0].split("\t")) == len(header.split("\t"))
            got = reference(out, task, file)
            want = reference(glue, task, file)
            assert [(e.text, e.text_pair, e.label, e.index) for e in got] == [
                (e.text, e.text_pair, e.label, e.index) for e in want
            ], (task, file)
    data = GlueDataModule(task="mnli", data_dir=str(out))
    assert [(e.text, e.text_pair) for e in data.examples("train")][1] == ("p 1 train", "h 1")
    names = [data.spec.labels[e.label] for e in data.examples("validate")]
    assert names == ["entailment", "neutral", "contradiction"]  # the Hub's ids 0, 1, 2
    assert sorted(p.name for p in (out / "MNLI").iterdir()) == sorted(LAYOUTS["mnli"].splits)
    qqp = GlueDataModule(task="qqp", data_dir=str(out))
    assert [e.label for e in qqp.examples("train")] == [0, 1]
    assert [e.index for e in qqp.examples("test")] == ["10", "11"]
    # a second run keeps what is there
    assert (
        main(["glue-data", "--output_dir", str(out), "--source", str(mirror), "--tasks", "SST-2"])
        == 0
    )
    assert "already there, kept" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tasks", "sst2", "nope"], r"^error: --tasks: unknown task 'nope'; choose from cola, "),
        (["--output_dir", "{file}"], r"^error: --output_dir: '.*' is a file, not a directory$"),
        (
            ["--source", "{missing}", "--tasks", "rte"],
            r"^error: glue-data: cannot open the Hugging Face dataset '.*missing' \(config rte, ",
        ),
    ],
)
def test_glue_data_mistakes_are_one_line(args, message, tmp_path, capsys):
    import re

    (tmp_path / "file").write_text("x")
    args = [a.format(file=tmp_path / "file", missing=tmp_path / "missing") for a in args]
    if "--output_dir" not in args:
        args += ["--output_dir", str(tmp_path / "out")]
    assert main(["glue-data", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.match(message, err), err
    assert not list(tmp_path.glob("out/*"))  # nothing half written, no empty task folder
