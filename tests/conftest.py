"""Shared pytest setup: quiet OpenMP threads, deterministic torch, and the reference-comparison helper."""

import functools
import os

# Must happen before torch is imported anywhere (nbval kernels and the browser tests' server inherit it too).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch

from lattn.notebooks import pin_cpu_kernels

pin_cpu_kernels()  # torch's AVX2 kernels here and in every kernel the tests start: the stored outputs' rounding


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def max_diff(a: torch.Tensor, b: torch.Tensor, what: str = "") -> float:
    """Max |a − b| in float64, printed with the mean (a failing run shows how far off it was)."""
    assert a.shape == b.shape, f"{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}"
    d = (a.double() - b.double()).abs()
    print(f"{what}: max diff {d.max().item():.3e}, mean {d.mean().item():.3e}")
    return d.max().item()


def assert_close(a: torch.Tensor, b: torch.Tensor, atol: float, what: str = "") -> None:
    """Assert max |a − b| ≤ atol (message gives the max and the mean difference)."""
    diff = max_diff(a, b, what)
    assert diff <= atol, f"{what}: max diff {diff:.3e} > {atol}"


@functools.cache
def cpu_linear_works(dtype: torch.dtype) -> bool:
    """Does this torch build have CPU matmuls in ``dtype``? (torch 2.1 has none for float16.)"""
    try:
        torch.nn.functional.linear(
            torch.ones(2, 2, dtype=dtype), torch.ones(2, 2, dtype=dtype), torch.ones(2, dtype=dtype)
        )
    except RuntimeError:
        return False
    return True


@pytest.fixture(autouse=True)
def _skip_half_precision_this_torch_cannot_run(request) -> None:
    """A test parametrised over ``dtype`` skips, with the reason, the half dtypes this torch has no CPU matmul for."""
    dtype = getattr(request.node, "callspec", None) and request.node.callspec.params.get("dtype")
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point and not cpu_linear_works(dtype):
        pytest.skip(f"torch {torch.__version__} has no CPU {dtype} matmul")
