"""Every error a caller of the SDK may catch is importable from ``keyturn.client`` (issue 17, 5).

The rule is checked, not listed: each `KeyturnError` subclass that the core or
the SDK defines (outside the admin API, which exports its own from
``keyturn.client.api``) must be the very same class under ``keyturn.client``.
"""

from __future__ import annotations

import importlib
import pkgutil

import keyturn.client
import keyturn.core
from keyturn.core.errors import KeyturnError


def _load(package: str) -> None:
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if ".api" in info.name.removeprefix("keyturn.client"):
            continue
        importlib.import_module(info.name)


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def sdk_errors() -> list[type]:
    _load("keyturn.core")
    _load("keyturn.client")
    return sorted(
        (
            cls
            for cls in _subclasses(KeyturnError) | {KeyturnError}
            if cls.__module__.startswith(("keyturn.core", "keyturn.client"))
            and not cls.__module__.startswith("keyturn.client.api")
            and not cls.__name__.startswith("_")
        ),
        key=lambda cls: cls.__name__,
    )


def test_every_error_is_exported_from_keyturn_client() -> None:
    errors = sdk_errors()
    assert len(errors) > 20  # the walk found the RFC 6749 family, not nothing
    missing = [
        cls.__name__ for cls in errors if getattr(keyturn.client, cls.__name__, None) is not cls
    ]
    assert missing == []
    unlisted = [cls.__name__ for cls in errors if cls.__name__ not in keyturn.client.__all__]
    assert unlisted == []


def test_the_errors_named_in_the_issue_are_there() -> None:
    from keyturn.client import (  # noqa: F401 - importable is the point
        InvalidGrantError,
        InvalidTokenError,
        UnsupportedTokenTypeError,
    )
