"""What every benchmark script shares."""

import time


def timed(fn):
    """(result, seconds) of calling fn once."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start
