"""A build directory as a whole: telling a gristmill build from any other folder, removing one for
`build --fresh`, and clearing the temporary files a killed build left behind.

A build is recognised by its marker, BUILD/recipe.json (`{"recipe_hash", "recipe"}`), which a build writes
before anything else. `--fresh` deletes only a directory (or object-store prefix) holding that marker, or an
empty one, so a mistyped output never empties someone's folder.
"""

from __future__ import annotations

import os
import shutil

from gristmill.errors import BuildError, InputError
from gristmill.pipelines.build.layout import RECIPE_MARKER as MARKER
from gristmill.pipelines.build.layout import TOKENIZER_TEMP_PREFIX
from gristmill.storage import is_local, list_names, read_json, remove_tree

TEMP_SUFFIX = ".tmp"  # atomic_write's .<name>.<random>.tmp, dedupe's <file>.link.tmp
_LISTED = 8  # entries named when refusing


def is_build(root: str) -> bool:
    """Return True when the directory `root` (local or URL) holds a gristmill build marker."""
    try:
        marker = read_json(f"{root.rstrip('/')}/{MARKER}")
    except (OSError, InputError):
        return False
    return isinstance(marker, dict) and {"recipe_hash", "recipe"} <= marker.keys()


def remove_build(root: str) -> None:
    """Delete the build directory `root` (absent or empty is fine); raise BuildError, deleting nothing, when
    it is not a gristmill build."""
    local = root.removeprefix("file://") if is_local(root) else None
    if local is not None:
        if not os.path.lexists(local):
            return
        if os.path.islink(local) or not os.path.isdir(local):
            raise BuildError(
                "--fresh deletes only a gristmill build directory, and this is a symlink or a file",
                path=root,
                hint="name a build directory as the output, or remove it yourself",
            )
    entries = list_names(root)
    if entries and not is_build(root):
        more = f", … ({len(entries)} entries)" if len(entries) > _LISTED else ""
        shown = ", ".join(entries[:_LISTED]) + more
        raise BuildError(
            f"--fresh deletes only a gristmill build, and this directory has no {MARKER} "
            f"marker; it holds: {shown}",
            path=root,
            hint="choose a new or empty output directory, or delete this one yourself",
        )
    if local is not None:
        shutil.rmtree(local)
    else:
        remove_tree(root)


def remove_leftovers(root: str) -> list[str]:
    """Delete what a killed build left half-written under the local `root` (temporary files and tokenizer
    directories; logs/ is datatrove's and left alone); return the paths removed, relative to `root`.

    An object store holds no such leftovers: an object appears whole or not at all.
    """
    if not is_local(root):
        return []
    root = root.removeprefix("file://")
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
