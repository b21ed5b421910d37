"""The route class of every API router: input is read strictly before FastAPI sees it.

FastAPI decodes a JSON body with ``json.loads``, which accepts more than the standard, and
answers a body it cannot decode with a bare 400. :class:`StrictRoute` reads the body with
:func:`api.strict_json.loads` instead and hands FastAPI the decoded value, so every route
taking a body gets the same rules and the same 422 naming the offending location; a body
that is not JSON at all is a 415. Path and query values are held to the same text rule
(no NUL, which PostgreSQL text cannot hold).
"""

from __future__ import annotations

import email.message
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from api import strict_json

JSON_MEDIA_TYPE = "application/json"


class _DecodedRequest(Request):
    """A request whose body was already decoded strictly: FastAPI's ``json()`` returns it."""

    decoded: Any = None

    async def json(self) -> Any:
        """The strictly decoded body."""
        return self.decoded


class StrictRoute(APIRoute):
    """An :class:`APIRoute` that checks path, query and JSON body before the endpoint runs."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, behind the strict reading of the request."""
        handler = super().get_route_handler()
        takes_body = self.body_field is not None

        async def strict_handler(request: Request) -> Response:
            _check_parameters(request)
            if takes_body:
                request = await _decode_body(request)
            return await handler(request)

        return strict_handler


async def _decode_body(request: Request) -> Request:
    decoded = _DecodedRequest(request.scope, request.receive)
    body = await decoded.body()
    if not body:
        return decoded  # FastAPI reports the missing body itself
    _check_media_type(decoded.headers.get("content-type"))
    try:
        decoded.decoded = strict_json.loads(body)
    except strict_json.StrictJsonError as exc:
        errors = [_error("json_invalid", ("body", *p.path), p.message) for p in exc.problems]
        raise RequestValidationError(errors) from exc
    return decoded


def _check_media_type(content_type: str | None) -> None:
    header = email.message.Message()
    header["content-type"] = content_type or ""
    subtype = header.get_content_subtype()
    charset = header.get_content_charset("utf-8")
    if (
        content_type is None
        or header.get_content_maintype() != "application"
        or not (subtype == "json" or subtype.endswith("+json"))
        or charset not in ("utf-8", "utf8")
    ):
        raise HTTPException(415, f"the request body must be {JSON_MEDIA_TYPE} (UTF-8)")


def _check_parameters(request: Request) -> None:
    errors = []
    for where, items in (
        ("path", request.path_params.items()),
        ("query", request.query_params.multi_items()),
    ):
        for name, value in items:
            if isinstance(value, str) and (problem := strict_json.text_problem(value)):
                errors.append(_error("value_error", (where, name), problem))
    if errors:
        raise RequestValidationError(errors)


def _error(kind: str, loc: tuple[str | int, ...], message: str) -> dict[str, Any]:
    # A key may hold a lone surrogate; the location must still encode as UTF-8.
    printable = tuple(strict_json.printable(p) if isinstance(p, str) else p for p in loc)
    return {"type": kind, "loc": printable, "msg": message}
