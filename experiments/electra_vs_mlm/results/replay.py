"""Replay the ELECTRA and MLM runs of experiment 1 from scratch (their first CSV logs were deleted
by a resume bug of an early runner, see ../NOTES.md) and check that the replays' final weights are
bit-identical to the evaluated checkpoints. Run from the repo root after the study:

    python experiments/electra_vs_mlm/results/replay.py
"""

import sys
import threading
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from common import Study, parser  # noqa: E402

MLM = ["--model.objective=mlm", "--data.mask_token_prob=0.8", "--data.random_token_prob=0.1"]


def main() -> None:
    study = Study("electra_vs_mlm", parser(__doc__, 8).parse_args([]))
    plan = study.setup()
    jobs = [("electra-g0.25-shared", plan["electra_steps"], []), ("mlm", plan["mlm_steps"], MLM)]
    threads = [
        threading.Thread(target=study.pretrain, args=(f"replay-{name}", steps, extra))
        for name, steps, extra in jobs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, _, _ in jobs:
        ckpts = [
            study.root / "pretrain" / n / "checkpoints/last.ckpt" for n in (name, f"replay-{name}")
        ]
        a, b = (torch.load(c, map_location="cpu", weights_only=False) for c in ckpts)
        same = a["global_step"] == b["global_step"] and all(
            torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"]
        )
        print(name, a["global_step"], b["global_step"], "bit-identical" if same else "DIFFERENT")


if __name__ == "__main__":
    main()
