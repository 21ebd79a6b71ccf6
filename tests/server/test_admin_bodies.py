"""Admin routes that hand a request body to its service whole (``**dict(body)``):
each body's fields must be exactly parameters of that service, or the route
would fail at run time instead of here."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from keyturn.server import token_service
from keyturn.server.admin.models import RevokeAllRequest, TokenCreate


@pytest.mark.parametrize(
    ("body", "service"),
    [(TokenCreate, token_service.create), (RevokeAllRequest, token_service.revoke_all)],
)
def test_a_body_passed_whole_fits_its_service(
    body: type[BaseModel], service: Callable[..., Any]
) -> None:
    inspect.signature(service).bind("ctx", **dict.fromkeys(body.model_fields))


def test_a_field_the_service_lacks_is_caught() -> None:
    with pytest.raises(TypeError):
        inspect.signature(token_service.revoke_all).bind("ctx", **dict.fromkeys(["nope"]))
