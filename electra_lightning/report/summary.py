"""``python -m electra_lightning summary``: what a pretraining run trained, where its files are,
how to read a small model's predictions, and the next commands — in plain words.

    python -m electra_lightning summary runs/tiny \\
        --checkpoint runs/tiny/checkpoints/last.ckpt --export_dir runs/tiny/export

Everything printed is read from the run (its metrics, its checkpoint); the one reference figure is
the paper's ELECTRA-Small budget. No experiment's finding is written here.
"""

from __future__ import annotations

import math
import os
import textwrap

from jsonargparse import CLI

from electra_lightning.report.compare import config_value, plot, read_csv_run

# ELECTRA-Small's pretraining (paper, Table 6): 1M steps × batch 128 × 128 tokens.
PAPER_SMALL_TOKENS = 1_000_000 * 128 * 128


def _last(run, key: str) -> float | None:
    points = run.history.get(key)
    return float(sorted(points)[-1][1]) if points else None


def _rate(run, key: str) -> float | None:
    """The run's average rate: each logged ``train/tokens_per_sec`` measures a window of the same
    number of steps (equal tokens), so the time is the sum of tokens/rate: a harmonic mean (the
    plain mean overstated the rate when it varied, and understated the minutes)."""
    values = [v for _, v in run.history.get(key, []) if v > 0]
    return len(values) / sum(1 / v for v in values) if values else None


def auc_trend(first: float, last: float) -> str:
    """How val/disc_auc moved, in words: rising, flat, falling, or falling to chance."""
    if last > first + 0.02:
        return "rising"
    if last < first - 0.02:
        return (
            "falling to chance: it no longer tells replaced tokens apart"
            if last < 0.53
            else "falling"
        )
    return "flat at chance" if last < 0.53 else "flat"


def _params(run) -> str:
    hp = run.config
    layers = config_value(hp, "model.size.num_layers")
    hidden = config_value(hp, "model.size.hidden_size")
    total = hp.get("model/params_total")
    size = f"{layers} layers × {hidden} hidden" if layers and hidden else "ELECTRA"
    if total:
        size += f", {float(total) / 1e6:.1f} M parameters with the generator"
    gen = config_value(hp, "model.size.generator_size")
    if gen:
        size += f"; generator {float(gen):g} of its width"
    return size


def context_gain_words(name: str, gain: float) -> str:
    """A gain in words: ``generator`` / ``mlm`` / ``discriminator``."""
    if name == "discriminator":
        what, than = "tells replaced from original tokens", "the base rate alone"
    else:
        what, than = "predicts masked words", "word frequencies alone"
    if not math.isfinite(gain):
        return f"the {name}'s gain over {than} is not finite"
    if abs(gain) < 0.0005:
        return f"the {name} {what} no better than {than} (gain {gain:+.4f} nats)"
    direction = "better" if gain > 0 else "worse"
    return f"the {name} {what} {abs(gain):.2g} nats {direction} than {than}"


def _wrap(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, 78, initial_indent=indent, subsequent_indent=indent + "  ")


def _trained(run, log_dir, checkpoint, export_dir, plot_path) -> list[str]:
    """What was trained, against the paper's budget, and where its files are."""
    steps = max((s for points in run.history.values() for s, _ in points), default=0) + 1
    tokens = _last(run, "train/tokens_seen") or 0.0
    rate = _rate(run, "train/tokens_per_sec")
    minutes = tokens / rate / 60 if rate else None
    took = f" in {minutes:.1f} minutes" if minutes else ""
    out = _wrap(
        f"Trained: an ELECTRA discriminator ({_params(run)}) for {steps:,} steps on "
        f"{tokens / 1e6:.2f} M tokens{took}. ELECTRA-Small's pretraining in the paper is "
        f"{PAPER_SMALL_TOKENS / 1e9:.0f} B tokens, {PAPER_SMALL_TOKENS / max(tokens, 1):,.0f}x this."
    )
    out += ["", "Files:"]
    if checkpoint:
        out.append(f"  checkpoint  {checkpoint}  (resume: --ckpt_path last)")
    if export_dir:
        out.append(f"  export      {export_dir}/{{generator,discriminator}}  (Hugging Face format)")
    out.append(f"  logs        {os.path.join(log_dir, 'metrics.csv')}")
    out.append(f"  curves      {plot_path}")
    return out


def _predictions(run, after_predictions: bool) -> list[str]:
    """What ``predict fill-mask`` / ``detect`` show, read from the last logged metrics: held-out
    figures where the run validated, its training batches' otherwise (and said so)."""
    held_out = "val/gen_acc" in run.history
    split = "val" if held_out else "train"
    where = "on held-out text" if held_out else "on its training batches (no validation logged)"
    gen_acc = _last(run, f"{split}/gen_acc")
    disc_acc = _last(run, f"{split}/disc_acc")
    replaced = _last(run, f"{split}/replaced_frac")
    recall = _last(run, f"{split}/disc_recall")
    out = [
        "",
        "Reading the predictions above:"
        if after_predictions
        else "What its predictions will look like (predict fill-mask / detect), from its metrics:",
    ]
    if gen_acc is not None:
        if gen_acc < 0.3:
            out += _wrap(
                f"fill-mask: the generator guesses {gen_acc:.0%} of masked words right {where}. "
                "This early it has learned mostly which words are frequent, so its top "
                "guesses are common words and punctuation almost anywhere.",
                "  ",
            )
        else:
            out += _wrap(
                f"fill-mask: the generator guesses {gen_acc:.0%} of masked words right {where}.",
                "  ",
            )
    if replaced is not None and recall is not None:
        if recall < 0.05:
            out += _wrap(
                f"detect: {replaced:.0%} of tokens are replaced in training, and a discriminator "
                f"this young scores nearly every token near that base rate (it flags "
                f"{recall:.0%} of replaced tokens {where}). It has not learned to read "
                "context yet: a token stands out only when it is rare.",
                "  ",
            )
        else:
            out += _wrap(
                f"detect: the discriminator flags {recall:.0%} of replaced tokens {where} "
                f"(accuracy {disc_acc:.1%} where {replaced:.0%} are replaced).",
                "  ",
            )
    return out + _auc(run)


def _auc(run) -> list[str]:
    """val/disc_auc from the first validation to the last, and which way it went."""
    auc = sorted(run.history.get("val/disc_auc", []))
    if len(auc) >= 2:
        (first_step, first), (last_step, last) = auc[0], auc[-1]
        return _wrap(
            f"Ranking replaced above original tokens (val/disc_auc, 0.5 = chance): {first:.2f} "
            f"at step {first_step + 1:,}, {last:.2f} at step {last_step + 1:,} "
            f"({auc_trend(first, last)}).",
            "  ",
        )
    if auc:
        return _wrap(
            f"Ranking replaced above original tokens (val/disc_auc, 0.5 = chance): {auc[0][1]:.2f}"
            f" at step {auc[0][0] + 1:,} (one validation: no trend yet).",
            "  ",
        )
    return []


def _above_baselines(run) -> list[str]:
    """The logged context gains in words, then how much training moves them on 2 CPU cores."""
    out = []
    gains = [
        (name, _last(run, f"val/{key}_context_gain"))
        for name, key in (("generator", "gen"), ("discriminator", "disc"))
    ]
    if any(gain is not None for _, gain in gains):
        out += ["", "Above the simplest baselines (val/*_context_gain, nats; > 0: reads context):"]
        for name, gain in gains:
            if gain is not None:
                electra = any(k.startswith("val/disc_") for k in run.history)
                name = "masked LM" if name == "generator" and not electra else name
                out += _wrap(context_gain_words(name, gain) + ".", "  ")
        out.append("")
    return out + _wrap(
        "How much training changes that, measured on 2 CPU cores (experiments/plateau): "
        "configs/cpu-small-budget.yaml takes the generator past 0.5 nats above word "
        "frequencies in 300-450 steps of 128 x 64 tokens (7-10 min) and to 0.9 in 1,500 (34 min); "
        "no recipe tried there moved the discriminator off the base rate within that budget "
        "(the paper's Small trains on 16 B tokens).",
        "  ",
    )


def _next_commands(log_dir: str, export_dir: str | None) -> list[str]:
    example = export_dir or "EXPORT"
    return [
        "",
        "Next (in the project's environment: source .venv/bin/activate first):",
        "  1. pretrain on your own text:",
        "     python -m electra_lightning tokenizer --files 'corpus/*.txt' --output_dir tok",
        "     python -m electra_lightning fit --config configs/electra-small.yaml \\",
        "         --data.train_files 'corpus/*.txt' --data.val_files heldout.txt \\",
        "         --data.tokenizer tok",
        "  2. fine-tune the discriminator on GLUE (downloaded once into glue_data/):",
        "     python -m electra_lightning glue-data --output_dir glue_data --tasks sst2",
        "     python -m electra_lightning fit --config configs/finetune/sst2.yaml \\",
        f"         --model.init_from {example}/discriminator --data.data_dir glue_data",
        "  3. compare runs:",
        f"     python -m electra_lightning compare {log_dir} OTHER_RUN \\",
        "         --output compare.png",
    ]


def summarize(
    log_dir: str,
    checkpoint: str | None = None,
    export_dir: str | None = None,
    plot_path: str | None = None,
    after_predictions: bool = False,
) -> str:
    """Print a plain-language summary of a pretraining run and write a PNG of its curves.

    Args:
        log_dir: The run's CSVLogger version directory (metrics.csv, hparams.yaml).
        checkpoint: Its last.ckpt (the resume point), if you want it named.
        export_dir: Where ``export`` wrote the generator and discriminator.
        plot_path: Where to write the PNG of the curves (default: LOG_DIR/curves.png).
        after_predictions: The ``predict`` commands ran just before (as in ``make demo``): the
            reading then refers to their output above.
    """
    if not os.path.isfile(os.path.join(log_dir, "metrics.csv")):
        raise ValueError(f"--log_dir: '{log_dir}' has no metrics.csv (a CSVLogger version dir)")
    run = read_csv_run(log_dir)
    plot_path = plot_path or os.path.join(log_dir, "curves.png")
    plot([run], plot_path)
    text = "\n".join(
        ["", "=" * 78, "What just happened", "=" * 78]
        + _trained(run, log_dir, checkpoint, export_dir, plot_path)
        + _predictions(run, after_predictions)
        + _above_baselines(run)
        + _next_commands(log_dir, export_dir)
    )
    print(text)
    return text


def main(argv: list[str], prog: str | None = None) -> None:
    # `summary RUN_DIR` (as the command list says) or `summary --log_dir RUN_DIR`
    if argv and not argv[0].startswith("-"):
        argv = ["--log_dir", argv[0], *argv[1:]]
    CLI(summarize, args=argv, as_positional=False, prog=prog)
