"""Request body parsers for the JSON API (kept apart from api_errors: DRF's APIView imports this
module while it is being defined, so it must not import rest_framework.views)."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, but a body nested too deep for Python's decoder is a 400 too."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:  # json raises it past ~1000 levels; DRF only catches ValueError
            raise exceptions.ParseError("JSON parse error - the body is nested too deeply.") from exc
