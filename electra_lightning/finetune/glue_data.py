"""``python -m electra_lightning glue-data``: GLUE from the Hugging Face Hub (``nyu-mll/glue``,
online) written in the standard ``glue_data/`` TSV layout that fine-tuning, the ``glue`` runner
and the probe read — the files and headers the classic ``download_glue_data.py`` wrote
(``SST-2/train.tsv``, ``dev.tsv``, ``test.tsv``; MNLI's ``dev_matched.tsv`` …).

    python -m electra_lightning glue-data --output_dir glue_data --tasks sst2 cola

The Hub's copy carries each example's text(s), label and index; the columns it lacks (CoLA's
source, MRPC's sentence ids, STS-B's genre and year, MNLI's parses) are written empty. STS-B
scores come as float32 and are written with 6 significant digits.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from electra_lightning.finetune.tasks import TASKS, task_key, task_spec

HUB_DATASET = "nyu-mll/glue"
LINE_BREAKS = re.compile(r"[\t\r\n]")  # a TSV cell holds none
SPLITS = {"train.tsv": "train", "dev.tsv": "validation", "test.tsv": "test"}
MNLI_SPLITS = {
    "train.tsv": "train",
    "dev_matched.tsv": "validation_matched",
    "dev_mismatched.tsv": "validation_mismatched",
    "test_matched.tsv": "test_matched",
    "test_mismatched.tsv": "test_mismatched",
}
MNLI_COLUMNS = (
    "index promptID pairID genre sentence1_binary_parse sentence2_binary_parse sentence1_parse "
    "sentence2_parse sentence1 sentence2"
).split()


@dataclass(frozen=True)
class Layout:
    """One task's TSV files from its Hub config: the header of the labeled files (None: CoLA's
    headerless 4 columns) and of test.tsv, which Hub field fills each column (``idx``: the
    example's index, ``label``: its label as the TSV writes it), and the Hub's label names where
    the TSV writes names instead of ids."""

    columns: tuple[str, ...]
    test_columns: tuple[str, ...]
    fields: dict[str, str]
    header: bool = True
    label_names: tuple[str, ...] | None = None  # the Hub's class ids, in the TSV's words
    splits: dict[str, str] = field(default_factory=lambda: SPLITS)


NLI = ("entailment", "not_entailment")
PAIR = {"index": "idx", "sentence1": "sentence1", "sentence2": "sentence2", "label": "label"}
LAYOUTS = {
    "cola": Layout(
        ("source", "label", "orig_mark", "sentence"),
        ("index", "sentence"),
        {"index": "idx", "label": "label", "sentence": "sentence"},
        header=False,
    ),
    "sst2": Layout(
        ("sentence", "label"),
        ("index", "sentence"),
        {"index": "idx", "sentence": "sentence", "label": "label"},
    ),
    "mrpc": Layout(
        ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
        ("index", "#1 ID", "#2 ID", "#1 String", "#2 String"),
        {"index": "idx", "Quality": "label", "#1 String": "sentence1", "#2 String": "sentence2"},
    ),
    "stsb": Layout(
        (*"index genre filename year old_index source1 source2".split(), "sentence1", "sentence2")
        + ("score",),
        (*"index genre filename year old_index source1 source2".split(), "sentence1", "sentence2"),
        {"index": "idx", "sentence1": "sentence1", "sentence2": "sentence2", "score": "label"},
    ),
    "rte": Layout(
        ("index", "sentence1", "sentence2", "label"),
        ("index", "sentence1", "sentence2"),
        PAIR,
        label_names=NLI,
    ),
    "wnli": Layout(
        ("index", "sentence1", "sentence2", "label"), ("index", "sentence1", "sentence2"), PAIR
    ),
    "qnli": Layout(
        ("index", "question", "sentence", "label"),
        ("index", "question", "sentence"),
        {"index": "idx", "question": "question", "sentence": "sentence", "label": "label"},
        label_names=NLI,
    ),
    "mnli": Layout(
        (*MNLI_COLUMNS, "label1", "gold_label"),
        tuple(MNLI_COLUMNS),
        {
            "index": "idx",
            "sentence1": "premise",
            "sentence2": "hypothesis",
            "label1": "label",
            "gold_label": "label",
        },
        label_names=("entailment", "neutral", "contradiction"),
        splits=MNLI_SPLITS,
    ),
    "qqp": Layout(
        ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
        ("id", "question1", "question2"),
        {"id": "idx", "question1": "question1", "question2": "question2", "is_duplicate": "label"},
    ),
}
assert LAYOUTS.keys() == TASKS.keys()  # one layout per task of the task table


def tsv_value(value, hub_field: str, layout: Layout, where: str) -> str:
    """A Hub value as the GLUE TSV writes it (tabs and line breaks in text become spaces)."""
    if hub_field == "label":
        if isinstance(value, float):  # STS-B's score
            return f"{value:.6g}"
        if layout.label_names is not None:
            if not 0 <= int(value) < len(layout.label_names):
                raise ValueError(f"{where}: label {value} is not one of the task's classes")
            return layout.label_names[int(value)]
        return str(int(value))
    return str(int(value)) if hub_field == "idx" else LINE_BREAKS.sub(" ", str(value))


def write_split(rows, path: str, layout: Layout, test: bool, where: str) -> int:
    """The rows of one Hub split written to ``path`` (through ``path.part``: an interrupted
    download leaves no half file); returns how many."""
    columns = layout.test_columns if test else layout.columns
    count = 0
    try:
        with open(path + ".part", "w", encoding="utf-8", newline="") as f:
            if layout.header or test:
                f.write("\t".join(columns) + "\n")
            for row in rows:
                cells = []
                for column in columns:
                    hub_field = layout.fields.get(column)
                    if hub_field is None:
                        cells.append("")
                        continue
                    if hub_field not in row:
                        raise ValueError(f"{where} has no field '{hub_field}' (has {list(row)})")
                    cells.append(tsv_value(row[hub_field], hub_field, layout, where))
                f.write("\t".join(cells) + "\n")
                count += 1
    except BaseException:
        os.remove(path + ".part")
        raise
    os.replace(path + ".part", path)
    return count


def hub_rows(source: str, config: str, split: str):
    """The rows of one split of the Hub dataset, streamed (nothing is cached on disk); a split
    that cannot be read is a one-line error."""
    from datasets import load_dataset

    try:
        yield from load_dataset(source, config, split=split, streaming=True)
    except Exception as err:  # offline, a typo, a config or split the source lacks
        reason = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(
            f"glue-data: cannot open the Hugging Face dataset '{source}' (config {config}, split "
            f"{split}) ({type(err).__name__}{': ' + reason if reason else ''}); this command "
            "needs the network (or --source pointing at a local copy laid out like the Hub's)"
        ) from None


def check_output_dir(output_dir: str) -> None:
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"--output_dir: '{output_dir}' is a file, not a directory")
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--output_dir: cannot create '{output_dir}' ({err.strerror})") from None
    if not os.access(output_dir, os.W_OK):
        raise ValueError(f"--output_dir: '{output_dir}' is not writable")


def glue_data(
    output_dir: str = "glue_data",
    tasks: list[str] | None = None,
    source: str = HUB_DATASET,
) -> str:
    """Write GLUE ``tasks`` (default: all) from ``source`` to ``output_dir/TASK/*.tsv``; a task
    whose files are all there already is kept."""
    keys = []
    for task in tasks or list(TASKS):
        key = task_key(task)
        if key not in TASKS:
            raise ValueError(f"--tasks: unknown task '{task}'; choose from {', '.join(TASKS)}")
        keys.append(key)
    check_output_dir(output_dir)
    for key in dict.fromkeys(keys):
        layout, folder = LAYOUTS[key], os.path.join(output_dir, task_spec(key).name)
        paths = {name: os.path.join(folder, name) for name in layout.splits}
        if all(os.path.isfile(p) for p in paths.values()):
            print(f"{folder}: already there, kept (delete it to fetch it again)")
            continue
        created = not os.path.isdir(folder)
        os.makedirs(folder, exist_ok=True)
        counts = []
        try:
            for name, split in layout.splits.items():
                where = f"'{source}' (config {key}, split {split})"
                rows = hub_rows(source, key, split)
                n = write_split(rows, paths[name], layout, split.startswith("test"), where)
                counts.append(f"{name} {n:,}")
        except BaseException:
            if created and not os.listdir(folder):  # nothing of this task was written
                os.rmdir(folder)
            raise
        print(f"{folder}: {', '.join(counts)} rows")
    return output_dir


def main(argv: list[str], prog: str | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Download GLUE (the Hugging Face Hub's nyu-mll/glue; online) in the standard "
        "glue_data TSV layout that fine-tuning reads (--data.data_dir).",
    )
    parser.add_argument(
        "--output_dir", default="glue_data", help="the GLUE root to write (--data.data_dir)"
    )
    parser.add_argument(
        "--tasks", nargs="+", default=None, help=f"default: all ({' '.join(TASKS)})"
    )
    parser.add_argument(
        "--source", default=HUB_DATASET, help="the Hub dataset, or a local copy laid out like it"
    )
    args = parser.parse_args(argv)
    glue_data(args.output_dir, args.tasks, args.source)
