"""A build directory as a whole: telling a gristmill build from any other folder, removing one for
`build --fresh`, and clearing the temporary files a killed build left behind.

A build is recognised by its marker, BUILD/recipe.json (`{"recipe_hash", "recipe"}`), which a build writes
before anything else. `--fresh` deletes only a directory holding that marker (or an empty one), so a
mistyped output never empties someone's folder.
"""

from __future__ import annotations

import json
import os
import shutil

from gristmill.errors import BuildError
from gristmill.pipelines.build.layout import RECIPE_MARKER as MARKER
from gristmill.pipelines.build.layout import TOKENIZER_TEMP_PREFIX

TEMP_SUFFIX = ".tmp"  # atomic_write's .<name>.<random>.tmp, dedupe's <file>.link.tmp
_LISTED = 8  # entries named when refusing


def is_build(root: str) -> bool:
    """Return True when the local directory `root` holds a gristmill build marker."""
    try:
        with open(os.path.join(root, MARKER), encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and {"recipe_hash", "recipe"} <= marker.keys()


def remove_build(root: str) -> None:
    """Delete the local build directory `root` (absent or empty is fine); raise BuildError, deleting
    nothing, when it is not a gristmill build."""
    if not os.path.lexists(root):
        return
    if os.path.islink(root) or not os.path.isdir(root):
        raise BuildError(
            "--fresh deletes only a gristmill build directory, and this is a symlink or a file",
            path=root,
            hint="name a build directory as the output, or remove it yourself",
        )
    entries = sorted(os.listdir(root))
    if entries and not is_build(root):
        more = f", … ({len(entries)} entries)" if len(entries) > _LISTED else ""
        shown = ", ".join(entries[:_LISTED]) + more
        raise BuildError(
            f"--fresh deletes only a gristmill build, and this directory has no {MARKER} "
            f"marker; it holds: {shown}",
            path=root,
            hint="choose a new or empty output directory, or delete this one yourself",
        )
    shutil.rmtree(root)


def remove_leftovers(root: str) -> list[str]:
    """Delete what a killed build left half-written under `root` (temporary files and tokenizer
    directories; logs/ is datatrove's and left alone); return the paths removed, relative to `root`."""
    removed = []
    for folder, dirs, files in os.walk(root):
        if folder == root:
            dirs[:] = [d for d in dirs if d != "logs"]
            for name in [d for d in dirs if d.startswith(TOKENIZER_TEMP_PREFIX)]:
                shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
                dirs.remove(name)
                removed.append(name)
        for name in files:
            if name.endswith(TEMP_SUFFIX):
                path = os.path.join(folder, name)
                os.unlink(path)
                removed.append(os.path.relpath(path, root))
    return sorted(removed)
