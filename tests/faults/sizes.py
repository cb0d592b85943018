"""Small sizes inside `make test`; the issue's full sizes with FAULTS_FULL=1 (`make faults`)."""

from __future__ import annotations

import os

FULL = os.environ.get("FAULTS_FULL", "") == "1"


def size(small: int, full: int) -> int:
    return full if FULL else small
