"""Loading a checkpoint runs no code from it: a crafted DCP `.metadata`, a crafted non-tensor value in the
data files, or metadata pointing at a file outside the checkpoint are refused, on resume and on export."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.errors import BuildError
from gristmill.trainer.checkpoint import latest_checkpoint, load_model_weights, read_model_config
from gristmill.trainer.config import parse_train_config
from gristmill.trainer.export import export_hf
from gristmill.trainer.model import Transformer
from gristmill.trainer.train import train


class RunsCode:
    """Unpickling this touches a file: the evidence that a checkpoint ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def run(builds, tmp_path_factory) -> tuple[Path, dict]:
    """A run's output_dir with one checkpoint (2 steps of llama-tiny), and its config data."""
    out = tmp_path_factory.mktemp("trust-run")
    data = dict(
        build=str(builds.train),
        model="llama-tiny",
        output_dir=str(out),
        micro_batch_tokens=512,
        max_steps=2,
        checkpoint={"every_steps": 2},
    )
    torch.set_num_threads(1)
    train(parse_train_config(data), console=lambda line: None)
    return out, data


def _crafted_copy(run_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Copy the run; return (its latest checkpoint, the marker file a code run would create)."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return latest_checkpoint(copy / "checkpoints"), tmp_path / "code-ran"


def test_a_genuine_checkpoint_loads_through_the_restricted_reader(run):
    from gristmill.trainer.dcp_reader import read_metadata

    checkpoint = latest_checkpoint(run[0] / "checkpoints")
    assert read_metadata(checkpoint).state_dict_metadata
    load_model_weights(checkpoint, Transformer(read_model_config(checkpoint)))


def test_malicious_metadata_runs_nothing_on_export_or_resume(run, tmp_path):
    checkpoint, marker = _crafted_copy(run[0], tmp_path)
    (checkpoint / ".metadata").write_bytes(pickle.dumps(RunsCode(marker)))
    refused = r"refused to load the checkpoint metadata: posix\.system is not"
    with pytest.raises(BuildError, match=refused) as e:
        load_model_weights(checkpoint, Transformer(read_model_config(checkpoint)))
    assert e.value.path == str(checkpoint / ".metadata")
    with pytest.raises(BuildError, match="refused to load the checkpoint metadata"):
        export_hf(checkpoint, tmp_path / "hf")
    result = CliRunner().invoke(cli, ["export", str(checkpoint), "--hf", str(tmp_path / "hf2")])
    assert result.exit_code != 0 and "refused to load the checkpoint metadata" in result.output
    resume = parse_train_config({**run[1], "output_dir": str(tmp_path / "run"), "max_steps": 4})
    with pytest.raises(BuildError, match="refused to load the checkpoint metadata"):
        train(resume, console=lambda line: None)
    assert not marker.exists()


def test_metadata_pointing_outside_the_checkpoint_is_refused(run, tmp_path):
    from gristmill.trainer.dcp_reader import read_metadata

    checkpoint, _ = _crafted_copy(run[0], tmp_path)
    metadata = read_metadata(checkpoint)
    for info in metadata.storage_data.values():
        info.relative_path = "../../../../etc/passwd"
    (checkpoint / ".metadata").write_bytes(pickle.dumps(metadata))
    with pytest.raises(BuildError, match="not a file name inside the checkpoint"):
        load_model_weights(checkpoint, Transformer(read_model_config(checkpoint)))


def test_a_crafted_non_tensor_value_runs_nothing(tmp_path):
    from gristmill.trainer.checkpoint import load_dcp

    marker = tmp_path / "code-ran"
    dcp.save(
        {"extra": {"lr": RunsCode(marker), "w": torch.ones(2)}},
        checkpoint_id=str(tmp_path / "c"),
        no_dist=True,
    )
    assert not marker.exists()
    state = {"extra": {"lr": 0.0, "w": torch.zeros(2)}}
    with pytest.raises(BuildError, match=r"refused to load 'extra\.lr' from the checkpoint"):
        load_dcp(state, tmp_path / "c")
    assert not marker.exists()
