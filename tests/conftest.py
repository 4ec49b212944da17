"""Shared pytest setup: quiet OpenMP threads, deterministic torch, and the reference-comparison helper."""

import os

# Must happen before torch is imported anywhere (nbval kernels and the browser tests' server inherit it too).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
