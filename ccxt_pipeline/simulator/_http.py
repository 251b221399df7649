"""Small HTTP helpers shared by the exchange modules (no simulator state here)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

JSON_CONTENT_TYPE = "application/json"


def dumps(data: Any) -> str:
    """Compact JSON, as exchanges send it."""
    return json.dumps(data, separators=(",", ":"))


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(text=dumps(data), status=status, content_type=JSON_CONTENT_TYPE, headers=headers)


def text_response(text: str, status: int, content_type: str = "text/plain") -> web.Response:
    return web.Response(text=text, status=status, content_type=content_type)


class ParamError(Exception):
    """A request parameter is missing or malformed; `name` is the parameter."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


def opt_int(query: Mapping[str, str], name: str) -> int | None:
    """The integer query parameter `name`, None if absent or empty; ParamError if not an integer."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ParamError(name, "malformed") from None
