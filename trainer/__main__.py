"""`torchrun --nproc-per-node N -m gristmill.trainer CONFIG.yaml`: train with one process per device."""

from __future__ import annotations

import sys

from gristmill.errors import GristmillError
from gristmill.trainer.config import load_train_config
from gristmill.trainer.train import train


def main(argv: list[str] | None = None) -> int:
    """Train from the config file named on the command line; return the exit status (2: a user error)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        train(load_train_config(args[0]))
    except GristmillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
