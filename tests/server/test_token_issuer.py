"""The token issuer: a token's record is written while it is signed, and answered after both."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from keyturn.keys.jwt import Signer, generate_private_key
from keyturn.keys.signing_batch import SigningBatch
from keyturn.server.issuance import TokenDecision, TokenIssuer
from keyturn.server.secrets import Hasher
from keyturn.storage.records import TOKEN_KIND_ACCESS, TOKEN_KIND_REFRESH, Client, TokenRecord

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the recorder runs on asyncio's primitives


HASHER = Hasher(b"p" * 32)


class GatedStorage:
    """A write that starts, then waits until the test lets it finish."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.gate = asyncio.Event()
        self.rows: list[TokenRecord] = []

    async def record_token(self, token: TokenRecord) -> None:
        await self.record_tokens([token])

    async def record_tokens(self, tokens: Sequence[TokenRecord]) -> None:
        self.events.append("write starts")
        await self.gate.wait()
        self.rows.extend(tokens)
        self.events.append("write ends")


class LoggedSigner(Signer):
    """A real ES256 signer that notes each signature as it is made (or fails it)."""

    __slots__ = ("events", "fail")

    def __init__(self, events: list[str], fail: bool) -> None:
        super().__init__(generate_private_key("ES256"), "ES256", "k1")
        self.events = events
        self.fail = fail

    def complete(self, signing_input: bytes) -> str:
        self.events.append("sign")
        if self.fail:
            raise RuntimeError("the signing key is unusable")
        return super().complete(signing_input)


class StepKeyRing:
    """The key ring's signing interface around one real signer, signing on the loop
    as the key ring does: at the end of the turn (`SigningBatch`)."""

    def __init__(self, events: list[str], fail: bool = False) -> None:
        self.signer = LoggedSigner(events, fail)
        self.batch = SigningBatch()

    async def prepare(self, claims: dict[str, Any], typ: str = "at+jwt") -> tuple[Signer, bytes]:
        return self.signer, self.signer.signing_input(claims, typ)

    async def sign_prepared(
        self, signer: Signer, signing_input: bytes, *, busy: bool | None = None
    ) -> str:
        token = self.batch.sign(signer, signing_input)
        return token if isinstance(token, str) else await token

    async def verify(self, token: str, kid: str) -> bool:
        return kid == self.signer.kid and self.signer.verify(token)

    async def verifier(self, kid: str) -> Signer | None:
        return self.signer if kid == self.signer.kid else None


def decision() -> TokenDecision:
    client = Client(client_id="c", scopes=("read",), audiences=("https://api.test",))
    return TokenDecision(
        client=client,
        subject="c",
        scopes=("read",),
        audience=("https://api.test",),
        grant_type="client_credentials",
        lifetime=300,
    )


def issuer(events: list[str], fail: bool = False) -> tuple[TokenIssuer, GatedStorage]:
    storage = GatedStorage(events)
    keyring = StepKeyRing(events, fail)
    return TokenIssuer(storage, keyring, HASHER, "https://issuer.test"), storage  # type: ignore[arg-type]


async def test_the_write_starts_before_the_signature_and_the_answer_waits_for_it() -> None:
    events: list[str] = []
    tokens, storage = issuer(events)
    task = asyncio.ensure_future(tokens.issue_access_token(decision()))
    for _ in range(5):
        await asyncio.sleep(0)
    assert events == ["write starts", "sign"]
    assert not task.done()  # signed, but not answered before its record is written
    storage.gate.set()
    issued = await task
    assert events == ["write starts", "sign", "write ends"]
    assert storage.rows == [issued.record]
    signing_input = issued.access_token.rpartition(".")[0]
    assert issued.record.token_hash == HASHER.short_hash(signing_input)
    assert len(issued.record.token_hash) == 22  # 128 bits, base64url
    assert await tokens.recorded_as(issued.access_token, issued.record)


async def test_a_failed_signature_fails_the_request_and_leaves_no_waiter_behind() -> None:
    events: list[str] = []
    tokens, storage = issuer(events, fail=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a coroutine never awaited would warn
        with pytest.raises(RuntimeError, match="unusable"):
            await tokens.issue_access_token(decision())
        storage.gate.set()
        for _ in range(5):
            await asyncio.sleep(0)
        gc.collect()
    # The write was already under way and went on; its token was never handed out.
    assert events == ["write starts", "sign", "write ends"]
    assert len(storage.rows) == 1


async def test_recorded_as_accepts_only_the_very_token() -> None:
    tokens, storage = issuer([])
    storage.gate.set()
    issued = await tokens.issue_access_token(decision())
    token, record = issued.access_token, issued.record
    header, payload, signature = token.split(".")
    other = await tokens.issue_access_token(decision())
    forged = [
        f"{header}.{payload}.{other.access_token.split('.')[2]}",  # a real signature, not its own
        f"{header}.{payload}.",
        f"{header}.{payload}.{signature[:-4]}",
        f"{header}.{payload}.{signature}x",
        f"{header}.{payload}.{signature}.",
        f"{header}.{payload}.é",
        f"{header}.{payload}",
    ]
    assert await tokens.recorded_as(token, record)
    for fake in forged:
        assert not await tokens.recorded_as(fake, record), fake
    assert not await tokens.recorded_as(token, other.record)  # another token's record
    assert record.kind == TOKEN_KIND_ACCESS
    unknown_key = replace(record, kid="retired-and-deleted")
    assert not await tokens.recorded_as(token, unknown_key)
    assert not await tokens.recorded_as(token, replace(record, kind=TOKEN_KIND_REFRESH))
    # Records written by earlier Keyturns hold the whole hash of the signing
    # input, or of the whole token; both still match, and only that token.
    for earlier_hash in (HASHER.hash(f"{header}.{payload}"), HASHER.hash(token)):
        earlier = replace(record, token_hash=earlier_hash)
        assert await tokens.recorded_as(token, earlier)
        assert not await tokens.recorded_as(forged[0], earlier)
        assert not await tokens.recorded_as(other.access_token, earlier)
    # A short hash of another signing input does not match.
    wrong = replace(record, token_hash=HASHER.short_hash(other.access_token.rpartition(".")[0]))
    assert not await tokens.recorded_as(token, wrong)
