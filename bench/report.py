"""Write one benchmark's section of docs/BENCHMARKS.md, leaving the other sections alone."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nEach section is rewritten by its `bench/` script (`make bench`).\n"


def machine() -> str:
    """One line naming the machine and date, for the figures' provenance."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    today = dt.date.today().isoformat()
    return f"Measured {today} on {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}."


def write_section(name: str, title: str, body: str, doc: Path = DOC) -> None:
    """Replace (or append) the section marked with `name` in `doc` (docs/BENCHMARKS.md)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n## {title}\n\n{machine()}\n\n{body.strip()}\n{end}"
    text = doc.read_text() if doc.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    )
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
