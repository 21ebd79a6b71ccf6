"""The suite's property tests are deterministic (issue 17, item 15)."""

from __future__ import annotations

from hypothesis import settings

from tests.e2e import test_admin_openapi


def test_examples_are_derandomized_and_never_stored() -> None:
    assert settings.default.derandomize is True
    assert settings.default.database is None


def test_schemathesis_tests_inherit_the_profile() -> None:
    # schemathesis builds one hypothesis test per operation from the decorated function;
    # the settings it applies are those of the function's @settings over the profile.
    own = test_admin_openapi.test_admin_api_conforms_to_its_openapi
    applied: settings = own._hypothesis_internal_use_settings  # type: ignore[attr-defined]
    assert applied.derandomize is True
    assert applied.database is None
