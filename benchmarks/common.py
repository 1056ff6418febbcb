"""What every benchmark script shares."""

import time

import torch


def timed(fn):
    """(result, seconds) of calling fn once."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def matmul_gflops(dtype: torch.dtype, n: int = 2048, reps: int = 20) -> float:
    """The machine's compute limit in `dtype`: GFLOP/s of an n x n matmul (after a warm-up)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    _, seconds = timed(lambda: [a @ b for _ in range(reps)])
    return 2 * n**3 * reps / seconds / 1e9
