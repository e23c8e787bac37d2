"""gristmill: build small-LM pretraining data and train on it.

The areas live in `gristmill.pipelines`, `gristmill.tokenizer`, `gristmill.shards` and `gristmill.trainer`;
this root package holds only what all of them share (errors, storage helpers) and the CLI.
"""

__version__ = "0.1.0"
