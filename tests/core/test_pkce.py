from __future__ import annotations

import pytest

from keyturn.core.pkce import Pkce, code_challenge, generate_verifier, verify


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


APPENDIX_B = (
    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
)


def test_verify_s256() -> None:
    verifier, challenge = APPENDIX_B
    assert verify(verifier, challenge)
    assert verify(verifier, challenge, "S256")
    assert not verify(generate_verifier(), challenge)
    assert not verify(verifier, challenge[:-1] + "N")
    assert not verify(verifier, verifier)  # a challenge is never its own verifier under S256


def test_verify_plain_compares_as_is() -> None:
    verifier = generate_verifier()
    assert verify(verifier, verifier, "plain")
    assert not verify(verifier, code_challenge(verifier), "plain")


@pytest.mark.parametrize("bad", ["short", "a" * 129, "x" * 42 + "!", "é" * 43])
def test_verify_refuses_a_malformed_s256_verifier(bad: str) -> None:
    with pytest.raises(ValueError, match="verifier"):
        verify(bad, APPENDIX_B[1])


def test_verify_refuses_an_unknown_method() -> None:
    with pytest.raises(ValueError, match="code_challenge_method"):
        verify(APPENDIX_B[0], APPENDIX_B[1], "S512")


def test_the_generated_pair_verifies() -> None:
    pair = Pkce.generate()
    assert verify(pair.verifier, pair.challenge, pair.method)
