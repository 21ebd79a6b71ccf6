from __future__ import annotations

import pytest

from keyturn.core.pkce import Pkce, code_challenge, generate_verifier


def test_rfc7636_appendix_b_vector() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_generated_verifiers_are_valid_and_unique() -> None:
    verifiers = {generate_verifier() for _ in range(50)}
    assert len(verifiers) == 50
    for v in verifiers:
        assert 43 <= len(v) <= 128
        code_challenge(v)


@pytest.mark.parametrize("bad", ["short", "a" * 129, "x" * 42 + "!"])
def test_invalid_verifier_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="verifier"):
        code_challenge(bad)


def test_repr_hides_verifier() -> None:
    pkce = Pkce.generate()
    assert pkce.verifier not in repr(pkce)
    assert pkce.method == "S256"
