"""Build the demo corpus from the documentation that ships with the Python interpreter.

Reads the docstrings of the standard library's source files with ``ast`` (nothing is imported or
executed), keeps the prose, and writes one document per docstring (blank line between documents):

    python data/make_demo_corpus.py --output_dir data/demo

gives ``train.txt`` and ``val.txt`` (every 50th document held out). No network, no files outside
the Python installation. For real pretraining, point ``data.train_files`` at your own corpus.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sysconfig
from pathlib import Path

MIN_WORDS = 12
HOLDOUT_EVERY = 50


def docstrings(stdlib: Path):
    """Docstrings of the stdlib, then the language reference topics that ``pydoc`` ships."""
    for path in sorted(stdlib.rglob("*.py")):
        if any(part in {"test", "tests", "idle_test", "site-packages"} for part in path.parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    yield doc
    topics = stdlib / "pydoc_data" / "topics.py"
    if topics.is_file():
        tree = ast.parse(topics.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                for value in node.values:
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        yield value.value


def prose(doc: str) -> list[str]:
    """Paragraphs of running text, one per line; code, tables and doctests dropped."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", doc):
        lines = [line.strip() for line in block.splitlines()]
        if any(line.startswith((">>>", "...", "$", "|", "+-", "==")) for line in lines):
            continue
        text = " ".join(line for line in lines if line)
        if len(text.split()) >= MIN_WORDS and sum(c.isalpha() for c in text) > 0.6 * len(text):
            paragraphs.append(text)
    return paragraphs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="data/demo")
    args = parser.parse_args()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    os.makedirs(args.output_dir, exist_ok=True)
    seen: set[str] = set()
    counts = {"train": 0, "val": 0}
    words = 0
    with (
        open(os.path.join(args.output_dir, "train.txt"), "w", encoding="utf-8") as train,
        open(os.path.join(args.output_dir, "val.txt"), "w", encoding="utf-8") as val,
    ):
        index = 0
        for doc in docstrings(stdlib):
            paragraphs = prose(doc)
            key = "\n".join(paragraphs)
            if not paragraphs or key in seen:
                continue
            seen.add(key)
            split = "val" if index % HOLDOUT_EVERY == HOLDOUT_EVERY - 1 else "train"
            (val if split == "val" else train).write(key + "\n\n")
            counts[split] += 1
            words += len(key.split())
            index += 1
    print(
        f"demo corpus from {stdlib}: {counts['train']} train / {counts['val']} val documents, "
        f"{words:,} words -> {args.output_dir}"
    )


if __name__ == "__main__":
    main()
