"""Exponential backoff with full jitter: retries of many clients spread out instead of arriving
in waves at a receiver that is just coming back."""

from __future__ import annotations

import random


def full_jitter(retry: int, initial: float, maximum: float) -> float:
    """Seconds to wait before retry number `retry` (1 = the second attempt): uniform in
    [0, min(maximum, initial * 2**(retry-1))]."""
    return random.uniform(0, min(maximum, initial * 2 ** (retry - 1)))
