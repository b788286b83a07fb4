"""Use exported models: the generator fills in [MASK], the discriminator flags replaced tokens.

Works on any ELECTRA checkpoint in Hugging Face format (ours after ``export``, or others).

    python -m electra_lightning predict fill-mask --model DIR/generator --text "the [MASK] sat"
    python -m electra_lightning predict detect --model DIR/discriminator --text "the cat ate the sky"
    python -m electra_lightning predict classify --model sst2-export --text "this movie is really fun"
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from jsonargparse import CLI

# torch and transformers are imported where they are used, so `predict --help` is quick.

# The head each command needs, and the command to use when a directory holds another model.
HEADS = {
    "ElectraForMaskedLM": ("generator_predictions", "fill-mask", "an exported generator"),
    "ElectraForPreTraining": ("discriminator_predictions", "detect", "an exported discriminator"),
    "ElectraForSequenceClassification": ("classifier", "classify", "a fine-tuned classifier"),
}


def _load(model_dir: str, cls_name: str):
    """Tokenizer and model; refuses a directory whose weights lack this command's head (its
    head would be random: different answers on every call)."""
    import transformers

    if not os.path.isdir(model_dir):
        raise ValueError(f"--model: '{model_dir}' is not a model directory")
    transformers.logging.set_verbosity_error()  # we report a missing head ourselves, in one line
    transformers.logging.disable_progress_bar()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
        model, info = getattr(transformers, cls_name).from_pretrained(
            model_dir, output_loading_info=True
        )
    except (OSError, ValueError) as err:
        raise ValueError(f"--model: cannot load '{model_dir}' as {cls_name} ({err})") from None
    head, command, what = HEADS[cls_name]
    if any(key.startswith(head) for key in info["missing_keys"]):
        config = transformers.AutoConfig.from_pretrained(model_dir)
        saved = (getattr(config, "architectures", None) or ["?"])[0]
        other = HEADS.get(saved)
        hint = f"; it is {other[2]}: use `predict {other[1]}`" if other else ""
        if cls_name == "ElectraForSequenceClassification" and saved == "ElectraForPreTraining":
            hint += (
                ", or fine-tune it first (fit --config configs/finetune/TASK.yaml "
                f"--model.init_from {model_dir})"
            )
        raise ValueError(
            f"--model: '{model_dir}' has no trained {head} weights, so `predict {command}` "
            f"needs {what}{hint}"
        )
    return tokenizer, model.eval()


def _utf8(text: str, source: str) -> str:
    """``text`` as given on the command line; bytes that are not UTF-8 (which Python keeps as
    lone surrogates) are one line naming ``source``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"{source}: not UTF-8 text (byte 0x{ord(text[err.start]) & 0xFF:02x} at character "
            f"{err.start}); pass UTF-8"
        ) from None
    return text


def _encode(tokenizer, net, texts: list[str], pairs: list[str] | None = None):
    """Tokenize for ``net``: at most its ``max_position_embeddings`` tokens per example; what is
    cut is said once per call, with the count (stderr)."""
    limit = min(net.config.max_position_embeddings, tokenizer.model_max_length or 10**9)
    lengths = [len(ids) for ids in tokenizer(texts, pairs)["input_ids"]]
    too_long = [n for n in lengths if n > limit]
    if too_long:
        print(
            f"note: {len(too_long)} of {len(texts)} text(s) longer than the model's {limit} "
            f"positions (longest {max(too_long)} tokens) were truncated to {limit} tokens",
            file=sys.stderr,
        )
    return tokenizer(
        texts, pairs, padding=True, truncation=True, max_length=limit, return_tensors="pt"
    )


@dataclass
class TokenScore:
    token: str
    score: float


def fill_mask(model: str, text: str, top_k: int = 5) -> list[list[TokenScore]]:
    """Top-k predictions of the generator for every [MASK] in ``text``."""
    import torch

    text = _utf8(text, "--text")
    tokenizer, net = _load(model, "ElectraForMaskedLM")
    if tokenizer.mask_token not in text:
        raise ValueError(f"--text must contain {tokenizer.mask_token}")
    enc = _encode(tokenizer, net, [text])
    if not (enc["input_ids"][0] == tokenizer.mask_token_id).any():
        raise ValueError(
            f"--text: every {tokenizer.mask_token} is past the model's "
            f"{enc['input_ids'].shape[1]} tokens; put one nearer the start"
        )
    with torch.no_grad():
        logits = net(**enc).logits[0]
    positions = (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten()
    results = []
    for pos in positions:
        probs = logits[pos].softmax(-1)
        top = probs.topk(top_k)
        results.append(
            [
                TokenScore(tokenizer.convert_ids_to_tokens(int(i)), float(p))
                for p, i in zip(top.values, top.indices, strict=True)
            ]
        )
    return results


def detect(model: str, text: str) -> list[TokenScore]:
    """Per-token probability that the discriminator thinks the token was replaced."""
    import torch

    text = _utf8(text, "--text")
    tokenizer, net = _load(model, "ElectraForPreTraining")
    enc = _encode(tokenizer, net, [text])
    with torch.no_grad():
        probs = net(**enc).logits[0].sigmoid()
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    special = set(tokenizer.all_special_tokens)
    return [TokenScore(t, float(p)) for t, p in zip(tokens, probs, strict=True) if t not in special]


def classify(model: str, texts: list[str], text_pairs: list[str] | None = None) -> list[dict]:
    """Label and per-label probabilities (or a score, for regression) for each text."""
    import torch

    texts = [_utf8(t, "--text") for t in texts]
    tokenizer, net = _load(model, "ElectraForSequenceClassification")
    if not texts or any(not t.strip() for t in texts):
        raise ValueError("--text: empty text")
    enc = _encode(tokenizer, net, texts, text_pairs)
    with torch.no_grad():
        logits = net(**enc).logits.float()
    results = []
    for row in logits:
        if net.config.num_labels == 1:
            results.append({"score": float(row[0])})
            continue
        probs = row.softmax(-1)
        labels = [net.config.id2label[i] for i in range(len(probs))]
        best = int(probs.argmax())
        results.append(
            {
                "label": labels[best],
                "probabilities": dict(zip(labels, map(float, probs), strict=True)),
            }
        )
    return results


def format_detection(scores: list[TokenScore], color: bool | None = None) -> str:
    """Tokens with their replaced-probability; red (or ``*``) where above 0.5."""
    color = sys.stdout.isatty() if color is None else color
    parts = []
    for s in scores:
        if s.score > 0.5:
            parts.append(f"\033[1;31m{s.token}\033[0m" if color else f"*{s.token}*")
        else:
            parts.append(s.token)
    table = "\n".join(f"  {s.token:<15} {s.score:.3f}" for s in scores)
    return " ".join(parts) + "\n" + table


def _fill_mask_cli(model: str, text: str, top_k: int = 5) -> None:
    """Print the generator's top-k tokens for each [MASK].

    Args:
        model: An exported generator directory (``ElectraForMaskedLM``).
        text: A sentence with one or more [MASK] tokens.
        top_k: How many candidates to print per mask.
    """
    for i, candidates in enumerate(fill_mask(model, text, top_k)):
        print(f"[MASK] #{i + 1}: " + ", ".join(f"{c.token} ({c.score:.3f})" for c in candidates))


def _detect_cli(model: str, text: str) -> None:
    """Print each token's probability of having been replaced, marking those above 0.5.

    Args:
        model: An exported discriminator directory (``ElectraForPreTraining``).
        text: A sentence, e.g. with a word swapped for another.
    """
    print(format_detection(detect(model, text)))


def _classify_cli(model: str, text: list[str] | str | None = None, file: str | None = None) -> None:
    """Print the label and probabilities for each text (one per line of --file).

    Args:
        model: An exported classifier directory (``ElectraForSequenceClassification``).
        text: A text, or several as a JSON list (``'["a", "b"]'``).
        file: A text file, one example per line.
    """
    texts = [text] if isinstance(text, str) else list(text or [])
    if file:
        if not os.path.isfile(file):
            raise ValueError(f"--file: '{file}' does not exist")
        with open(file, "rb") as f:
            for number, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8").strip()
                except UnicodeDecodeError as err:
                    raise ValueError(
                        f"--file: {file}:{number}: not UTF-8 (byte 0x{raw[err.start]:02x}); "
                        "save the file as UTF-8"
                    ) from None
                if line:
                    texts.append(line)
    if not texts:
        raise ValueError("give --text or --file")
    for sentence, result in zip(texts, classify(model, texts), strict=True):
        if "score" in result:
            print(f"{result['score']:.3f}\t{sentence}")
        else:
            probs = ", ".join(f"{k}: {v:.3f}" for k, v in result["probabilities"].items())
            print(f"{result['label']}\t({probs})\t{sentence}")


def main(argv: list[str], prog: str | None = None) -> None:
    CLI(
        {"fill-mask": _fill_mask_cli, "detect": _detect_cli, "classify": _classify_cli},
        args=argv,
        as_positional=False,
        prog=prog,
    )
