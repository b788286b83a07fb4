"""Train an uncased WordPiece tokenizer with BERT's special tokens on local text files."""

from __future__ import annotations

import os

from jsonargparse import CLI

from electra_lightning.data.sources import read_documents, resolve_sources

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_tokenizer(
    files: list[str] | str,
    output_dir: str,
    vocab_size: int = 30522,
    lowercase: bool = True,
    min_frequency: int = 2,
    text_field: str = "text",
) -> str:
    """Train a WordPiece tokenizer and save it where ``AutoTokenizer.from_pretrained`` loads it.

    Args:
        files: Text/JSONL/parquet files, directories or globs (as ``data.train_files``).
        output_dir: Directory to write ``tokenizer.json``, ``tokenizer_config.json`` and ``vocab.txt``.
        vocab_size: Vocabulary size including the special tokens (BERT/ELECTRA: 30522).
        lowercase: Uncased (lowercase and strip accents), like the official ELECTRA vocabulary.
        min_frequency: Minimum pair frequency for a merge.
        text_field: Field holding the text in JSONL/parquet.
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ValueError(f"--vocab_size must be > {len(SPECIAL_TOKENS)}, got {vocab_size}")
    sources = resolve_sources(files, "--files")
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--output_dir: cannot create '{output_dir}' ({err.strerror})") from None

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=lowercase, lowercase=lowercase
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        continuing_subword_prefix="##",
    )

    def lines():
        for source in sources:
            for doc in read_documents(source, text_field):
                yield from doc

    tokenizer.train_from_iterator(lines(), trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        do_lower_case=lowercase,
        model_max_length=512,
    )
    fast.save_pretrained(output_dir)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    with open(os.path.join(output_dir, "vocab.txt"), "w", encoding="utf-8") as f:
        f.writelines(token + "\n" for token, _ in vocab)
    print(f"wrote a {tokenizer.get_vocab_size()}-token WordPiece tokenizer to {output_dir}")
    return output_dir


def main(argv: list[str], prog: str | None = None) -> None:
    CLI(train_tokenizer, args=argv, as_positional=False, prog=prog)
