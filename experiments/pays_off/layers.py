"""What each layer of a frozen encoder holds for SST-2: a linear probe at every layer (embeddings
first) fitted on the same class-balanced subsets as the fine-tuning, and the features' geometry.

Features are mean-pooled over a sentence's tokens. The probe is ``finetune.probe``'s logistic
regression on standardised features (statistics of the subset), scored on all of SST-2 dev;
deterministic. The geometry (first run's table): the dev sentences' mean pairwise cosine
similarity and the share of the features' energy that is not the vector common to all.
"""

from __future__ import annotations

import torch

from electra_lightning.finetune.probe import logistic_regression


@torch.no_grad()
def pooled_layers(encoder, tokenizer, sentences: list[str], seq: int) -> list[torch.Tensor]:
    """Per layer (embeddings first), the mean-pooled features of ``sentences``, [N, hidden]."""
    encoder = encoder.eval()
    per_batch = []
    for i in range(0, len(sentences), 128):
        batch = tokenizer(
            sentences[i : i + 128],
            padding=True,
            truncation=True,
            max_length=seq,
            return_tensors="pt",
        )
        hidden = encoder(**batch, output_hidden_states=True).hidden_states
        mask = batch["attention_mask"].unsqueeze(-1).float()
        per_batch.append([(h * mask).sum(1) / mask.sum(1) for h in hidden])
    return [torch.cat(layer) for layer in zip(*per_batch, strict=True)]


def probe_accuracy(x: torch.Tensor, y: torch.Tensor, x_dev: torch.Tensor, y_dev) -> float:
    mean, std = x.mean(0), x.std(0) + 1e-6
    predicted = logistic_regression((x - mean) / std, y.float(), (x_dev - mean) / std)
    return 100 * float((predicted == y_dev).float().mean())


def geometry(pooled: torch.Tensor) -> dict:
    unit = torch.nn.functional.normalize(pooled, dim=-1)
    n = len(unit)
    cosine = float(((unit @ unit.T).sum() - n) / (n * n - n))
    specific = (pooled - pooled.mean(0)).pow(2).sum() / pooled.pow(2).sum()
    return {"cosine": cosine, "sentence_specific": float(specific)}


PROBE_LABELS = (
    250,
    1000,
)  # the subsets the layers are probed on (4,000 and the full set: not, for time)


def layer_report(encoder, tokenizer, subsets: dict, dev: list, seq: int) -> dict:
    """``{"probe": {n: [[accuracy of each subset] per layer]}, "geometry": [per layer]}`` for
    ``subsets`` ``{(n, seed): [(sentence, label)]}`` and SST-2 ``dev``."""
    sentences = sorted({s for rows in subsets.values() for s, _ in rows} | {s for s, _ in dev})
    index = {s: i for i, s in enumerate(sentences)}
    layers = pooled_layers(encoder, tokenizer, sentences, seq)
    dev_rows = torch.tensor([index[s] for s, _ in dev])
    y_dev = torch.tensor([label for _, label in dev])
    probe: dict[int, list[list[float]]] = {}
    for (n, _seed), rows in sorted(subsets.items()):
        at = torch.tensor([index[s] for s, _ in rows])
        y = torch.tensor([label for _, label in rows])
        scores = [probe_accuracy(f[at], y, f[dev_rows], y_dev) for f in layers]
        probe.setdefault(n, [[] for _ in layers])
        for layer, score in enumerate(scores):
            probe[n][layer].append(score)
    return {"probe": probe, "geometry": [geometry(f[dev_rows]) for f in layers]}
