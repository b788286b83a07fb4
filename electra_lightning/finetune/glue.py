"""Fine-tuning data: GLUE tasks from the standard TSV layout, and users' own CSV/TSV/JSONL sets."""

from __future__ import annotations

import csv
import json
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass

import lightning as L
import torch
from torch.utils.data import DataLoader

from electra_lightning.common.checkpoint import tokenizer_files_of, write_tokenizer
from electra_lightning.data.workers import ignore_stop_signals
from electra_lightning.finetune.tasks import CUSTOM, TaskSpec, task_spec
from electra_lightning.train.loading import load_any_checkpoint


@dataclass
class Example:
    text: str
    text_pair: str | None
    label: float | int | None  # class index, regression target, or None (unlabeled test)
    index: str | None = None


def _rows(path: str, header: bool) -> tuple[list[str] | None, list[list[str]]]:
    """Rows of a TSV/CSV file (BOM stripped; GLUE's quotes are literal text)."""
    if not os.path.isfile(path):
        raise ValueError(f"data: split file '{path}' does not exist")
    delimiter = "," if path.endswith(".csv") else "\t"
    quoting = csv.QUOTE_MINIMAL if path.endswith(".csv") else csv.QUOTE_NONE
    with open(path, encoding="utf-8-sig", newline="") as f, utf8_named(path):
        rows = [r for r in csv.reader(f, delimiter=delimiter, quoting=quoting) if r]
    if header:
        if not rows:
            raise ValueError(f"data: '{path}' is empty")
        return rows[0], rows[1:]
    return None, rows


@contextmanager
def utf8_named(path: str):
    """A file that is not UTF-8 is one line naming it (Python's own error names no file)."""
    try:
        yield
    except UnicodeDecodeError as err:
        byte = err.object[err.start : err.start + 1].hex()
        raise ValueError(
            f"data: '{path}' is not UTF-8 text (byte 0x{byte}); save it as UTF-8"
        ) from None


def label_key(value: object) -> str:
    """How a label is compared: ``1``, ``"1"`` and ``1.0`` are the same class, as are ``true``,
    ``True`` and ``"true"`` (JSON booleans and CSV text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text.lower() if text.lower() in ("true", "false") else text


def _column(names: list[str] | None, key: str | int, path: str) -> int:
    if isinstance(key, int):
        return key
    if names is None or key not in names:
        raise ValueError(f"data: '{path}' has no column '{key}' (columns: {names})")
    return names.index(key)


def read_examples(
    path: str,
    text: str | int,
    text_pair: str | int | None,
    label: str | int | None,
    labels: tuple[str, ...] | None,
    header: bool = True,
    index: str | None = None,
    labeled: bool = True,
) -> list[Example]:
    """Examples of one split: TSV/CSV by column name or index, or JSONL by field name.

    Labels must be in ``labels`` (classification) or parse as floats (regression, ``labels=None``).
    """
    if path.endswith((".jsonl", ".json")):
        records, linenos = [], []
        with open(path, encoding="utf-8-sig") as f, utf8_named(path):
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        raise ValueError(f"{path}:{lineno}: broken JSON line") from None
                    if not isinstance(record, dict):
                        raise ValueError(f"{path}:{lineno}: expected a JSON object per line")
                    records.append(record)
                    linenos.append(lineno)
        names = sorted({k for r in records for k in r})
        rows = [[r.get(k) for k in names] for r in records]
    else:
        names, rows = _rows(path, header)
        linenos = list(range(2 if header else 1, len(rows) + (2 if header else 1)))
    col_text = _column(names, text, path)
    col_pair = _column(names, text_pair, path) if text_pair is not None else None
    col_label = _column(names, label, path) if labeled and label is not None else None
    col_index = names.index(index) if index and names and index in names else None
    examples = []
    for lineno, row in zip(linenos, rows, strict=True):
        where = f"{path}:{lineno}"
        try:
            sentence = row[col_text]
            pair = row[col_pair] if col_pair is not None else None
            raw_label = row[col_label] if col_label is not None else None
        except IndexError:
            raise ValueError(f"{where}: row has {len(row)} columns, fewer than expected") from None
        if not isinstance(sentence, str) or not sentence.strip():
            raise ValueError(f"{where}: empty text; remove the row")
        value = None
        if col_label is not None and (raw_label is None or str(raw_label).strip() == ""):
            raise ValueError(f"{where}: no label in column '{label}'; label the row or remove it")
        if raw_label is not None:
            if labels is None:
                try:
                    value = float(str(raw_label).strip())
                except ValueError:
                    raise ValueError(f"{where}: label '{raw_label}' is not a number") from None
                if not math.isfinite(value):
                    raise ValueError(
                        f"{where}: label '{raw_label}' is not a finite number; fix or remove the row"
                    )
            else:
                keys = [label_key(name) for name in labels]
                if label_key(raw_label) not in keys:
                    raise ValueError(
                        f"{where}: label '{raw_label}' is not one of the task's labels "
                        f"{list(labels)}"
                    )
                value = keys.index(label_key(raw_label))
        examples.append(
            Example(sentence, pair, value, row[col_index] if col_index is not None else None)
        )
    if not examples:
        raise ValueError(f"data: '{path}' has no examples")
    return examples


def _tokenizer_from_checkpoint(path: str) -> str:
    """Write the tokenizer a checkpoint carries to a temporary directory."""
    import tempfile

    files = tokenizer_files_of(load_any_checkpoint(path, "data.tokenizer"), path)
    if not files:
        raise ValueError(
            f"data.tokenizer: checkpoint '{path}' carries no tokenizer; set data.tokenizer"
        )
    directory = tempfile.mkdtemp(prefix="electra-tokenizer-")
    write_tokenizer(files, directory)
    return directory


class GlueDataModule(L.LightningDataModule):
    """A GLUE task (standard ``DIR/TASK/{train,dev,test}.tsv`` layout) or your own labeled file.

    Args:
        task: cola, sst2, mrpc, stsb, rte, wnli, qnli, mnli, qqp, or ``custom``.
        data_dir: The GLUE root (``glue_data``) holding ``TASK/train.tsv`` etc.
        tokenizer: A tokenizer directory; linked from ``model.init_from`` by default.
        max_seq_length: ``[CLS] a [SEP] b [SEP]`` truncated to this many tokens (official 128).
        batch_size: Examples per device and step (official 32).
        train_file: ``custom``: a .csv/.tsv/.jsonl with a text and a label column.
        val_file: ``custom``: the dev split, same columns.
        text_column: ``custom``: the text column (name, or index for files without a header).
        text_pair_column: ``custom``: optional second text column (sentence pairs).
        label_column: ``custom``: the label column.
        labels: ``custom``: the label values in order (class ids follow it); empty: regression.
        header: ``custom`` TSV/CSV: whether the first row names the columns.
        limit_train_examples: Use only the first N training examples (0: all); quick runs.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        task: str = "sst2",
        data_dir: str = "glue_data",
        tokenizer: str | None = None,
        max_seq_length: int = 128,
        batch_size: int = 32,
        train_file: str | None = None,
        val_file: str | None = None,
        text_column: str | int = "text",
        text_pair_column: str | int | None = None,
        label_column: str | int = "label",
        labels: list[str | int | bool] | None = None,
        header: bool = True,
        limit_train_examples: int = 0,
        num_workers: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters(logger=False)  # the CLI logs the whole config once
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        if task == CUSTOM:
            if not train_file or not val_file:
                raise ValueError("data.task=custom needs data.train_file and data.val_file")
            self.spec = TaskSpec(
                "custom",
                text_column,
                text_pair_column,
                label_column,
                tuple(label_key(label) for label in labels) if labels else None,
                ("acc",) if labels else ("spearman", "pearson"),
                header=header,
            )
            self.files = {"train": train_file, "validate": val_file, "test": None}
        else:
            self.spec = task_spec(task)
            folder = os.path.join(data_dir, self.spec.name)
            if not os.path.isdir(folder):
                raise ValueError(
                    f"data.data_dir: '{folder}' does not exist (expected the GLUE layout "
                    f"DATA_DIR/{self.spec.name}/train.tsv)"
                )
            self.files = {
                "train": os.path.join(folder, "train.tsv"),
                "validate": os.path.join(folder, self.spec.dev),
                "test": os.path.join(folder, "test.tsv"),
            }
        self.tokenizer_dir = tokenizer
        self._tokenizer = None

    @property
    def num_labels(self) -> int:
        return len(self.spec.labels) if self.spec.labels else 1

    @property
    def label_names(self) -> list[str]:
        """Readable names for the model's id2label (GLUE files keep their raw labels)."""
        if not self.spec.labels:
            return ["score"]
        return list(self.spec.names or self.spec.labels)

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            path = self.tokenizer_dir
            if (
                path
                and os.path.exists(path)
                and not os.path.isfile(os.path.join(path, "tokenizer.json"))
            ):
                self.tokenizer_dir = path = _tokenizer_from_checkpoint(path)
            if not path or not os.path.isdir(path):
                raise ValueError(
                    f"data.tokenizer: '{self.tokenizer_dir}' is not a tokenizer directory "
                    "(it defaults to model.init_from when that is an exported model directory)"
                )
            self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_dir)
        return self._tokenizer

    def examples(self, split: str) -> list[Example]:
        spec = self.spec
        path = self.files[split]
        if split == "test":
            if not path or not os.path.isfile(path):
                raise ValueError(f"data: no test split for {spec.name} ('{path}')")
            return read_examples(
                path,
                spec.text if isinstance(spec.text, str) else "sentence",
                spec.text_pair,
                None,
                spec.labels,
                header=True,
                index=spec.test_index,
                labeled=False,
            )
        examples = read_examples(
            path, spec.text, spec.text_pair, spec.label, spec.labels, spec.header
        )
        if split == "train" and self.hparams.limit_train_examples:
            examples = examples[: self.hparams.limit_train_examples]
        return examples

    def collate(self, batch: list[Example]) -> dict:
        pairs = [e.text_pair for e in batch]
        enc = self.tokenizer(
            [e.text for e in batch],
            pairs if all(p is not None for p in pairs) else None,
            truncation=True,
            max_length=self.hparams.max_seq_length,
            padding="longest",
            return_token_type_ids=True,
            return_tensors="pt",
        )
        out = dict(enc)
        if all(e.label is not None for e in batch):
            dtype = torch.float32 if self.spec.labels is None else torch.long
            out["labels"] = torch.tensor([e.label for e in batch], dtype=dtype)
        return out

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.examples(split),
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            collate_fn=self.collate,
            num_workers=self.hparams.num_workers,
            generator=torch.Generator().manual_seed(0) if shuffle else None,
            worker_init_fn=ignore_stop_signals if self.hparams.num_workers else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validate", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
