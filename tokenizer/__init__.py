"""Tokenizer training (sentencepiece, HF tokenizers), evaluation, and the one `Tokenizer` interface."""
