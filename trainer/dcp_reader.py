"""Reading DCP checkpoints without running code from them.

torch.distributed.checkpoint's FileSystemReader unpickles the checkpoint's `.metadata` with plain pickle,
and its DefaultLoadPlanner reads non-tensor values (optimizer hyperparameters) with
`torch.load(weights_only=False)`: a crafted checkpoint runs whatever it likes. Here the metadata is read by
an unpickler that resolves only torch's own checkpoint-metadata classes, dtypes, layouts, memory formats
and paths (an allow-list); every data file the metadata points at must be a plain file name inside the
checkpoint directory; and non-tensor values are read with `torch.load(weights_only=True)`. Anything else
raises BuildError naming the file and what it asked for, before any of it is used.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint._traverse import set_element
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta
from torch.distributed.checkpoint.planner import ReadItem

from gristmill.errors import BuildError, GristmillError

METADATA_FILE = ".metadata"
_HINT = "this is not a checkpoint gristmill wrote; do not load checkpoints from people you do not trust"

_DCP_CLASSES = {
    "torch.distributed.checkpoint.metadata": {
        "Metadata",
        "MetadataIndex",
        "StorageMeta",
        "TensorProperties",
        "TensorStorageMetadata",
        "BytesStorageMetadata",
        "ChunkStorageMetadata",
        "_MEM_FORMAT_ENCODING",
    },
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo", "_StoragePrefix"},
    "torch.serialization": {"_get_layout"},  # looks a layout up by name
    "pathlib": {"PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath"},
    "collections": {"OrderedDict"},
}


def _allowed_torch_attribute(name: str) -> bool:
    value = getattr(torch, name, None)
    return name == "Size" or isinstance(value, torch.dtype | torch.layout | torch.memory_format)


class MetadataUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the allow-listed classes of DCP metadata; raises UnpicklingError."""

    def find_class(self, module: str, name: str) -> Any:
        """Return the allow-listed global `module.name`; raise UnpicklingError for any other."""
        if (module == "torch" and _allowed_torch_attribute(name)) or name in _DCP_CLASSES.get(module, ()):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not a checkpoint metadata class")


def _plain_file_name(name: Any) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\\x00")


def read_metadata(path: str | Path, file_name: str = METADATA_FILE) -> Metadata:
    """Return a checkpoint directory's DCP metadata, read without running code; raise BuildError when it is
    missing, asks for anything but metadata classes, or points at a file outside the checkpoint."""
    file = Path(path) / file_name
    try:
        with open(file, "rb") as f:
            metadata = MetadataUnpickler(f).load()
    except FileNotFoundError:
        raise BuildError(
            f"the checkpoint has no {file_name}",
            path=str(path),
            hint="pass a complete step-N checkpoint directory",
        ) from None
    except Exception as e:  # whatever the bytes make the restricted unpickler raise, nothing of theirs ran
        raise BuildError(
            f"refused to load the checkpoint metadata: {e}", path=str(file), hint=_HINT
        ) from None
    if not isinstance(metadata, Metadata):
        raise BuildError(
            f"the checkpoint metadata is a {type(metadata).__name__}, not DCP Metadata",
            path=str(file),
            hint=_HINT,
        )
    for index, info in (metadata.storage_data or {}).items():
        data_file = getattr(info, "relative_path", None)
        if not _plain_file_name(data_file):
            name = getattr(index, "fqn", index)
            raise BuildError(
                f"the metadata points {name!r} at {data_file!r}, which is not a file name "
                "inside the checkpoint",
                path=str(file),
                hint=_HINT,
            )
    return metadata


class SafeFileSystemReader(FileSystemReader):
    """A DCP FileSystemReader whose metadata is read by `read_metadata` (no code from the checkpoint)."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        """Return the checkpoint's metadata through the restricted unpickler; raise BuildError."""
        rank = kwargs.get("rank")
        name = METADATA_FILE if rank is None else f"__{rank}{METADATA_FILE}"
        metadata = read_metadata(self.path, name)
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class SafeLoadPlanner(DefaultLoadPlanner):
    """DCP's default load planner, but non-tensor values are read with torch.load(weights_only=True)."""

    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        """Set the value stored for `read_item`; raise BuildError when it holds more than plain data."""
        try:
            obj = torch.load(value, weights_only=True)
        except pickle.UnpicklingError as e:
            raise BuildError(
                f"refused to load {read_item.dest_index.fqn!r} from the checkpoint: {e}", hint=_HINT
            ) from None
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], obj)
        else:
            self.state_dict[read_item.dest_index.fqn] = obj


def gristmill_error_in(error: BaseException) -> GristmillError | None:
    """Return the GristmillError a DCP CheckpointException wraps (DCP wraps every rank's error), or None."""
    for exc, _ in getattr(error, "failures", {}).values():
        if isinstance(exc, GristmillError):
            return exc
    return None
