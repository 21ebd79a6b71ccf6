"""The token-manager state machine stepped by hand with next()/send(): no transport at all."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from keyturn.core.commands import (
    CallUpdate,
    Send,
    SendApi,
    StoreLoad,
    StoreLock,
    StoreSave,
    StoreUnlock,
    WaitFlight,
)
from keyturn.core.credentials import ClientCredentials
from keyturn.core.errors import TransportError
from keyturn.core.http import HttpResponse
from keyturn.core.manager import ManagerSettings, TokenCore
from keyturn.testing import FakeClock

CREDS = ClientCredentials(client_id="c", client_secret="s", token_url="https://a.example/token")


def token_response(n: int, expires_in: int = 3600) -> HttpResponse:
    body = {"access_token": f"AT{n}", "token_type": "Bearer", "expires_in": expires_in}
    return HttpResponse(200, {"Content-Type": "application/json"}, json.dumps(body).encode())


def make(clock: FakeClock, **settings: Any) -> TokenCore:
    return TokenCore(CREDS, clock=clock, settings=ManagerSettings(**settings), rng=random.Random(7))


class Req:
    def __init__(self) -> None:
        self.headers: dict[str, str] = {}


def attach(req: Any, token: Any) -> None:
    req.headers["Authorization"] = token.authorization


def run_exchange(flow: Any, response: HttpResponse) -> Any:
    """Answer store and hook commands like an empty store; send ``response`` to Send."""
    cmd = next(flow)
    while not isinstance(cmd, SendApi):
        if isinstance(cmd, Send):
            cmd = flow.send(response)
        else:
            assert isinstance(cmd, StoreLock | StoreLoad | StoreSave | StoreUnlock | CallUpdate)
            cmd = flow.send(None)
    return cmd


def test_first_request_fetches_then_sends_with_header() -> None:
    core = make(FakeClock())
    req = Req()
    flow = core.request_flow(req, attach, replayable=True)
    assert isinstance(next(flow), StoreLock)
    assert isinstance(flow.send(None), StoreLoad)
    send = flow.send(None)
    assert isinstance(send, Send)
    assert send.request.url == CREDS.token_url
    save = flow.send(token_response(1))
    assert isinstance(save, StoreSave)
    assert save.token.access_token == "AT1"  # saved before anyone uses it
    assert isinstance(flow.send(None), StoreUnlock)
    assert isinstance(flow.send(None), CallUpdate)
    api = flow.send(None)
    assert isinstance(api, SendApi)
    assert req.headers["Authorization"] == "Bearer AT1"
    with pytest.raises(StopIteration):
        flow.send(200)
    # Cached: the next request goes straight to the API.
    flow2 = core.request_flow(Req(), attach, replayable=True)
    assert isinstance(next(flow2), SendApi)


def test_401_on_current_token_renews_and_replays_once() -> None:
    core = make(FakeClock())
    req = Req()
    flow = core.request_flow(req, attach, replayable=True)
    run_exchange(flow, token_response(1))
    cmd = flow.send(401)
    replay = run_exchange_from(flow, cmd, token_response(2))
    assert isinstance(replay, SendApi)
    assert req.headers["Authorization"] == "Bearer AT2"
    with pytest.raises(StopIteration):
        flow.send(401)  # a second 401 is returned to the caller, not retried


def run_exchange_from(flow: Any, cmd: Any, response: HttpResponse) -> Any:
    while not isinstance(cmd, SendApi):
        cmd = flow.send(response if isinstance(cmd, Send) else None)
    return cmd


def test_401_without_replayable_body_is_returned() -> None:
    core = make(FakeClock())
    flow = core.request_flow(Req(), attach, replayable=False)
    run_exchange(flow, token_response(1))
    with pytest.raises(StopIteration):
        flow.send(401)
    assert core.is_token_expired()  # but the rejected token is dropped


def test_401_for_an_older_token_does_not_drop_the_new_one() -> None:
    core = make(FakeClock())
    old_req = Req()
    old = core.request_flow(old_req, attach, replayable=False)
    run_exchange(old, token_response(1))
    core.invalidate(core.token)  # type: ignore[arg-type]
    new = core.request_flow(Req(), attach, replayable=False)
    run_exchange(new, token_response(2))
    with pytest.raises(StopIteration):
        old.send(401)  # rejects AT1, which is no longer current
    assert core.token is not None
    assert core.token.access_token == "AT2"
    assert not core.is_token_expired()


def test_second_caller_waits_on_the_flight() -> None:
    core = make(FakeClock())
    leader = core.request_flow(Req(), attach, replayable=True)
    cmd = next(leader)
    while not isinstance(cmd, Send):
        cmd = leader.send(None)
    follower_req = Req()
    follower = core.request_flow(follower_req, attach, replayable=True)
    wait = next(follower)
    assert isinstance(wait, WaitFlight)
    run_exchange_from(leader, leader.send(token_response(1)), token_response(1))
    assert wait.flight.done
    assert isinstance(follower.send(None), SendApi)
    assert follower_req.headers["Authorization"] == "Bearer AT1"


def test_leader_closed_mid_exchange_fails_waiters_with_transport_error() -> None:
    core = make(FakeClock())
    leader = core.request_flow(Req(), attach, replayable=True)
    cmd = next(leader)
    while not isinstance(cmd, Send):
        cmd = leader.send(None)
    follower = core.request_flow(Req(), attach, replayable=True)
    wait = next(follower)
    assert isinstance(wait, WaitFlight)
    leader.close()  # what httpx does when its transport raises
    assert isinstance(wait.flight.error, TransportError)
    with pytest.raises(TransportError):
        follower.send(None)
    # The next caller leads a new exchange.
    again = core.request_flow(Req(), attach, replayable=True)
    assert isinstance(next(again), StoreLock)


def test_refresh_point_has_jitter_and_short_tokens_are_capped() -> None:
    clock = FakeClock()
    points = set()
    for seed in range(20):
        core = TokenCore(
            CREDS,
            clock=clock,
            settings=ManagerSettings(leeway=60, jitter=0.5),
            rng=random.Random(seed),
        )
        flow = core.request_flow(Req(), attach, replayable=True)
        run_exchange(flow, token_response(1, expires_in=3600))
        held = core._held
        assert held is not None
        lead = held.deadline - held.refresh_at
        assert 60 <= lead <= 90
        points.add(round(lead, 3))
    assert len(points) > 10
    core = make(clock, leeway=60, jitter=0)
    run_exchange(core.request_flow(Req(), attach, replayable=True), token_response(1, 30))
    held = core._held
    assert held is not None
    assert held.deadline - held.refresh_at == 15  # half of a 30 s lifetime, not 60 s
