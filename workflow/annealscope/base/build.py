"""The demo base model: a byte-level BPE tokenizer trained locally and a tiny Llama built from config."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from annealscope.core.corpora import read_corpora
from annealscope.core.io import atomic_path

END_OF_TEXT = "<|endoftext|>"
PADDING = "<|pad|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """Train a byte-level BPE tokenizer and wrap it as a `transformers` fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT, PADDING],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT,
                                   unk_token=None, pad_token=PADDING)


def build_model(settings: dict, tokenizer):
    """A randomly initialised Llama-architecture causal LM of the configured shape."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=settings["hidden_size"],
        intermediate_size=settings["intermediate_size"],
        num_hidden_layers=settings["num_layers"],
        num_attention_heads=settings["num_heads"],
        num_key_value_heads=settings["num_heads"],
        max_position_embeddings=settings["max_position_embeddings"],
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(settings["init_seed"])
    return LlamaForCausalLM(config)


def initialise_base(corpus: list[str], settings: dict, out_dir: str | Path, cache_dir: str | Path | None = None
                    ) -> int:
    """Write a tokenizer and an untrained model to `out_dir`; return the parameter count."""
    texts = [document.text for document in read_corpora(corpus, cache_dir)]
    if not texts:
        raise ValueError(f"base_model.build.corpus {corpus} holds no documents")
    tokenizer = train_tokenizer(texts, settings["vocab_size"])
    model = build_model(settings, tokenizer)
    with atomic_path(out_dir, directory=True) as tmp:
        tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp)
    return sum(parameter.numel() for parameter in model.parameters())
