#!/usr/bin/env python3
"""Fill a deploy/ template: every @NAME@ is replaced by NAME's value; a name left unset is an error.

Usage: python3 deploy/render.py TEMPLATE NAME=VALUE... > OUTPUT
Standard library only, so it runs with Debian's python3 before the virtualenv exists.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")


class RenderError(ValueError):
    pass


def render(template: str, values: dict[str, str]) -> str:
    missing = sorted({name for name in PLACEHOLDER.findall(template) if name not in values})
    if missing:
        raise RenderError(f"no value for {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def parse_assignments(args: list[str]) -> dict[str, str]:
    values = {}
    for arg in args:
        name, sep, value = arg.partition("=")
        if not sep or not PLACEHOLDER.fullmatch(f"@{name}@"):
            raise RenderError(f"expected NAME=VALUE, got {arg!r}")
        values[name] = value
    return values


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        text = render(Path(argv[1]).read_text(), parse_assignments(argv[2:]))
    except (RenderError, OSError) as exc:
        print(f"render: {argv[1]}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
