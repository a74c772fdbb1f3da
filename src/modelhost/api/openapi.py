"""The management API's OpenAPI document, saying what the server really answers.

FastAPI documents a 422 for every route with parameters; modelhost answers 400 (every error is
``{"error", "code"}``, :mod:`modelhost.api.errors`). The routes list the errors they give
(:data:`ERRORS` and the ``responses`` of each route); this module drops the 422s FastAPI adds,
declares the bearer key every route needs, and gives path parameters their patterns.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Path
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from modelhost.storage.base import MODEL_NAME_MAX_LENGTH, MODEL_NAME_PATTERN

# The largest number an id or version may be: past 2**53 a JSON parser that reads numbers as
# doubles (JavaScript's, and schema validators') no longer keeps an integer exact, and the
# database holds int64.
LARGEST_ID = 2**53
USER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,127}$"
ALIAS_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
KEY_ID_PATTERN = r"^[0-9a-f]{12}$"

ModelName = Annotated[
    str,
    Path(
        pattern=MODEL_NAME_PATTERN, max_length=MODEL_NAME_MAX_LENGTH, description="A model's name."
    ),
]
UserName = Annotated[str, Path(pattern=USER_NAME_PATTERN, description="A user's name.")]
AliasName = Annotated[str, Path(pattern=ALIAS_PATTERN, description="Not a number.")]
KeyId = Annotated[str, Path(pattern=KEY_ID_PATTERN, description="The id part of a key.")]
VersionNumber = Annotated[int, Path(ge=1, le=LARGEST_ID)]


class ErrorBody(BaseModel):
    """Every error's body."""

    error: str
    code: str


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("A parameter or the body is malformed."),
    401: _error("No API key, or not a valid one."),
    403: _error("The key may not do this (not an admin, or limited to other models)."),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _error("No such model, version or user.")}
CONFLICT: dict[int | str, dict[str, Any]] = {409: _error("It conflicts with what is there.")}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: _error("The model store or the model cannot serve it now; retry later.")
}


def install_openapi(api: FastAPI) -> None:
    """Make ``api.openapi()`` return the document described above."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            document = get_openapi(
                title=api.title, version=api.version, routes=api.routes, servers=api.servers
            )
            for operations in document.get("paths", {}).values():
                for operation in operations.values():
                    operation["responses"].pop("422", None)
                    operation["security"] = [{"bearer": []}]
            schemas = document.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            document.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "mh_<id>_<secret>"}
            }
            api.openapi_schema = document
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
