"""Trainer test setup: without a GPU, Triton kernels run in the CPU interpreter (fp32 only).

TRITON_INTERPRET must be set before any ``@triton.jit`` function is defined, so this runs at import, before
the test modules import the kernels. With a GPU it is left alone and the kernels compile for CUDA.
"""

import functools
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def device() -> str:
    """The device the kernels run on here: "cuda" with a GPU, else "cpu" (interpreter)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.cache
def _load_build_fixture() -> ModuleType:
    """Return build_fixture.py loaded by file path (in importlib mode test files cannot import each other)."""
    name = "gristmill_tests_trainer_build_fixture"
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("build_fixture.py"))
    sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


@pytest.fixture(scope="session")
def build_fixture() -> ModuleType:
    """The build_fixture module: documents, tokenizer training and build writing for the trainer's tests."""
    return _load_build_fixture()


@pytest.fixture(scope="session")
def builds(build_fixture, tmp_path_factory):
    """The shared training and held-out test builds (written once, reused across processes)."""
    return build_fixture.make_builds(tmp_path_factory.getbasetemp() / "trainer-builds")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny matmuls run fastest on one thread, and 2 threads on a shared 2-core box thrash."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
