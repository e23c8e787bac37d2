"""Ablation test setup: the trainer's test builds (tests/trainer/build_fixture.py, loaded by file path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def build_fixture():
    """The trainer tests' build_fixture module (documents, tokenizer and build writers)."""
    name = "gristmill_tests_trainer_build_fixture"
    if name not in sys.modules:
        path = Path(__file__).parent.parent / "trainer" / "build_fixture.py"
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


@pytest.fixture(scope="session")
def builds(build_fixture, tmp_path_factory):
    """The shared training and held-out test builds (written once, reused across processes)."""
    return build_fixture.make_builds(tmp_path_factory.getbasetemp() / "trainer-builds")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matmuls run fastest on one thread, and 2 threads on a shared 2-core box thrash."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
