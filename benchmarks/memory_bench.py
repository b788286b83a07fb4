"""Peak memory of the data stream on hostile input vs a normal corpus (bounded-memory promise).

Each case streams ``--batches`` train batches (128 × 128, shuffled, as shipped) in its own
subprocess and reports that process's peak RSS (``ru_maxrss``):

- ``normal``: the demo corpus (``data/make_demo_corpus.py``);
- ``long_line``: one ``.txt`` line of ``--line_mb`` MB (words, no newline);
- ``jsonl_field``: one JSONL record whose text field is ``--field_mb`` MB (words, no newline),
  then normal records; ``jsonl_skip``: the same with ``data.on_bad_record=skip``;
- ``jsonl_7mb``: a record of 7 MB (under the 8 MiB a JSONL line may hold), then normal records.

    python benchmarks/memory_bench.py TOKENIZER_DIR [--line_mb 200] [--field_mb 50]

Runs against the ``electra_lightning`` importable from the current directory, so the same script
measures an older checkout too (run it from there).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import resource, sys, time
sys.path.insert(0, ".")
from electra_lightning.data.stream import PretrainingStream, load_tokenizer_info
tok = load_tokenizer_info(sys.argv[1])
stream = PretrainingStream.build(
    [sys.argv[2]], tok, max_seq_length=128, batch_size=128, on_bad_record=sys.argv[4]
)
start, n = time.perf_counter(), 0
try:
    for n, _ in enumerate(stream, 1):
        if n >= int(sys.argv[3]):
            break
    outcome = f"{n} batches"
except ValueError as err:
    outcome = f"error: {str(err)[:150]}"
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{rss:.0f} MB peak RSS, {time.perf_counter() - start:.1f} s, {outcome}")
"""

WORDS = (
    "the quick brown fox jumps over the lazy dog while electra learns to detect replaced tokens "
)


def write_words(f, megabytes: float) -> None:
    block = (WORDS * ((1 << 20) // len(WORDS) + 1))[: 1 << 20]
    for _ in range(int(megabytes)):
        f.write(block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tokenizer_dir")
    parser.add_argument("--line_mb", type=float, default=200)
    parser.add_argument("--field_mb", type=float, default=50)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--cases", default="normal,long_line,jsonl_field,jsonl_skip,jsonl_7mb")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {}
        cases = args.cases.split(",")
        if "normal" in cases:
            repo = Path(__file__).resolve().parents[1]
            subprocess.run(
                [sys.executable, str(repo / "data/make_demo_corpus.py"), "--output_dir", str(tmp)],
                check=True,
                capture_output=True,
            )
            files["normal"] = tmp / "train.txt"
        if "long_line" in cases:
            files["long_line"] = tmp / "line.txt"
            with open(files["long_line"], "w") as f:
                write_words(f, args.line_mb)
        for case, megabytes in (("jsonl_field", args.field_mb), ("jsonl_7mb", 7)):
            files[case] = tmp / f"{case}.jsonl"
            with open(files[case], "w") as f:
                f.write('{"text": "')
                write_words(f, megabytes)
                f.write('"}\n' + (json.dumps({"text": WORDS * 50}) + "\n") * 500)
        files["jsonl_skip"] = files["jsonl_field"]
        for case in cases:
            path = files[case]
            size = path.stat().st_size / 1e6
            result = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    args.tokenizer_dir,
                    str(path),
                    str(args.batches),
                    "skip" if case == "jsonl_skip" else "error",
                ],
                capture_output=True,
                text=True,
            )
            line = (result.stdout.strip().splitlines() or result.stderr.strip().splitlines())[-1]
            print(f"{case:12s} {size:8.1f} MB file: {line}", flush=True)


if __name__ == "__main__":
    main()
