"""`StateBank`: every stream's state as one row of shared arrays, so a batch gathers its rows in
one vectorised copy (or none, when its rows are consecutive) instead of one per stream.

Rows live in pages of fixed size that never move once made (a worker may be reading one page
while another stream opens), so growth only adds pages. `np.zeros` memory is untouched until a
row is used: an idle page costs address space, not RAM.
"""

from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

ROWS_PER_PAGE = 256


@dataclass(frozen=True)
class Field:
    """One per-stream array: its name, shape per stream, dtype and value for a new stream."""

    name: str
    shape: tuple[int, ...]
    dtype: type[np.generic]
    initial: npt.NDArray[np.generic] | float = 0.0


class Page:
    """`rows` streams' worth of every field; `arrays[name][row]` is one stream's value."""

    def __init__(self, fields: tuple[Field, ...], rows: int) -> None:
        self.arrays = {f.name: np.zeros((rows, *f.shape), f.dtype) for f in fields}
        self.free = list(range(rows))  # a heap: the lowest row first, so rows stay packed


@dataclass(frozen=True)
class Slot:
    page: Page
    row: int


class StateBank:
    """Allocates rows for streams and frees them; thread-safe."""

    def __init__(self, fields: tuple[Field, ...], rows_per_page: int = ROWS_PER_PAGE) -> None:
        self.fields = fields
        self._rows = rows_per_page
        self._pages: list[Page] = []
        self._lock = threading.Lock()

    @property
    def row_bytes(self) -> int:
        """Bytes of state one stream holds."""
        return sum(int(np.prod(f.shape)) * np.dtype(f.dtype).itemsize for f in self.fields)

    def allocate(self) -> Slot:
        """A row set to every field's initial value."""
        with self._lock:
            page = next((p for p in self._pages if p.free), None)
            if page is None:
                page = Page(self.fields, self._rows)
                self._pages.append(page)
            row = heapq.heappop(page.free)
        for field in self.fields:
            page.arrays[field.name][row] = field.initial
        return Slot(page, row)

    def release(self, slot: Slot) -> None:
        with self._lock:
            heapq.heappush(slot.page.free, slot.row)


def row_index(rows: list[int]) -> slice | npt.NDArray[np.intp]:
    """Index of `rows` in a page: a slice (a view, no copy) when they are consecutive."""
    if rows == list(range(rows[0], rows[0] + len(rows))):
        return slice(rows[0], rows[0] + len(rows))
    return np.array(rows, dtype=np.intp)
