"""Arrow memory a step leaves behind.

pyarrow's default pool (mimalloc in its wheels) keeps the blocks a step freed for reuse: the landing reader's
buffers, rows collected for a ``deltalake`` write and pandera's frames stayed resident under the next step's peak
(150-300 MB on the bench's 5,000,000 lines, ``BENCHMARKS.md`` item 30). Each asset step and each pandera check gives
them back when it ends; it takes a few milliseconds.
"""

from __future__ import annotations

import pyarrow as pa


def release_arrow_memory() -> None:
    """Return the blocks pyarrow's default pool holds but no longer uses to the system."""
    pa.default_memory_pool().release_unused()
