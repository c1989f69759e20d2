"""Viewer beside the floor: `python -m scripts.bench_workflows --only Viewer` (same options).

Kept as its own entry point; the measurement (interleaved rounds, medians, CPU per request,
the plain Starlette+asyncpg floor) is the one in scripts/bench_workflows.py.
"""

from __future__ import annotations

import sys

from scripts import bench_workflows

if __name__ == "__main__":
    if not any(arg.startswith("--only") for arg in sys.argv[1:]):
        sys.argv[1:1] = ["--only", "Viewer"]
    bench_workflows.main()
