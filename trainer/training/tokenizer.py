"""A byte-level BPE tokenizer trained on the engineer's own code, with the prompt format's special tokens."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from codedouble.server.contract import prompt

DEFAULT_VOCAB_SIZE = 4096


def train_tokenizer(texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE) -> PreTrainedTokenizerFast:
    """Byte-level BPE: every byte sequence round-trips, so no code is ever out of vocabulary."""
    bpe = Tokenizer(models.BPE())
    # add_prefix_space=False: a leading space is part of the code, not an artefact of word splitting.
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(prompt.SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    return wrap(bpe)


def wrap(bpe: Tokenizer) -> PreTrainedTokenizerFast:
    """The transformers view of a tokenizer, with the prompt format's tokens registered as special."""
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=prompt.EOS,
        bos_token=prompt.EOS,
        pad_token=prompt.EOS,
        unk_token=None,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [t for t in prompt.SPECIAL_TOKENS if t != prompt.EOS]})
    return tokenizer
