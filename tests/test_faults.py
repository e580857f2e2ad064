"""Faults on request, each observed where a bot would see it: at a real callback receiver (a duplicated batch twice,
a first attempt lost so attempt 2 comes first, a delay that keeps order, a reorder that does not) and on the API
(429/503 with Retry-After at the configured rate, seeded, and the refused action not performed). Specs are
checked (400 naming the field) and every fault is counted in the stats and on /metrics."""

from __future__ import annotations

import time

import pytest

from mediamute.api.faults import parse_fault_spec
from mediamute.settings import ServerSettings

from .helpers import (
    CALLS,
    CallbackReceiver,
    InProcessMediamute,
    admin_token,
    assert_graph_error,
    create_call,
    join_without_media,
)


def kinds(receiver: CallbackReceiver) -> list[str]:
    """What each accepted notification is about, in arrival order: 'call' or 'participants'."""
    return ["participants" if n["resourceUrl"].endswith("/participants") else "call" for n in receiver.notifications()]


async def faulty_call(http, receiver: CallbackReceiver | None = None, **faults: object) -> str:
    body: dict[str, object] = {"mediamute": {"faults": faults}}
    if receiver is not None:
        body["callbackUri"] = receiver.url
    return await create_call(http, **body)


async def stats(http, call_id: str) -> dict:
    return (await http.get(f"/ext/calls/{call_id}/stats", params={"limit": 0})).json()


# the spec -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "faults, field",
    [
        ({"notifications": {"duplicate": 1.5}}, "mediamute.faults.notifications.duplicate"),
        ({"notifications": {"delayMs": -1}}, "mediamute.faults.notifications.delayMs"),
        ({"api": {"rate": "often"}}, "mediamute.faults.api.rate"),
        ({"api": {"statuses": [500]}}, "mediamute.faults.api.statuses.0"),
        ({"api": {"routes": ["metrics"]}}, "mediamute.faults.api.routes.0"),
        ({"api": {"rate": 0.1, "burst": 3}}, "mediamute.faults.api.burst"),
    ],
)
async def test_a_bad_fault_spec_is_a_400_naming_the_field(api_http, faults, field):
    response = await api_http.post(CALLS, json={"mediamute": {"faults": faults}})
    assert_graph_error(response, 400, message_part=field)


async def test_whole_numbers_written_as_floats_are_integers_as_in_json_schema(api_http):
    faults = {"seed": 7.0, "api": {"statuses": [429.0], "retryAfterSeconds": 2.0}}
    call_id = await faulty_call(api_http, **faults)
    assert (await stats(api_http, call_id))["faults"]["spec"]["seed"] == 7
    assert_graph_error(await api_http.post(CALLS, json={"mediamute": {"faults": {"seed": 7.5}}}), 400, message_part="seed")


async def test_a_bad_server_fault_spec_stops_the_server_from_starting():
    bad = InProcessMediamute(ServerSettings(ephemeral_key=True, log_level="warning", faults={"api": {"rate": 2}}))
    with pytest.raises(ValueError, match="api.rate"):
        await bad.start()
    await bad.stop()


# notification delivery ------------------------------------------------------------------------------------------
async def test_a_duplicated_batch_arrives_twice_and_is_counted(api, api_http):
    async with CallbackReceiver() as receiver:
        call_id = await faulty_call(api_http, receiver, seed=1, notifications={"duplicate": 1})
        await receiver.wait_for(lambda r: len(r.accepted) >= 2)
        first, second = receiver.accepted[:2]
        assert first.body == second.body  # the same notifications, delivered twice
        assert first.json["value"][0]["resourceData"]["state"] == "established"
        counters = (await stats(api_http, call_id))["callbacks"]
        assert counters["faults_duplicated"] >= 1 and counters["delivered_batches"] == counters["faults_duplicated"]
        metrics = (await api_http.get("/metrics")).text
        assert f'mediamute_call_faults_injected_total{{call_id="{call_id}",fault="duplicated"}} 1.0' in metrics


async def test_a_failed_first_attempt_makes_the_receiver_see_attempt_2(api, api_http):
    async with CallbackReceiver() as receiver:
        call_id = await faulty_call(api_http, receiver, seed=1, notifications={"failFirstAttempt": 1})
        await receiver.wait_for(lambda r: len(r.accepted) >= 1)
        assert receiver.attempts[0].headers["mediamute-delivery-attempt"] == "2"  # attempt 1 was never sent
        counters = (await stats(api_http, call_id))["callbacks"]
        assert counters["faults_first_attempt_failed"] == 1 and counters["retries"] == 1 and counters["posts"] == 1


async def test_a_delay_holds_notifications_back_in_order_and_a_reorder_swaps_two_batches(api, api_http):
    async with CallbackReceiver() as delayed_receiver, CallbackReceiver() as reordered_receiver:
        published = time.monotonic()
        delayed = await faulty_call(api_http, delayed_receiver, notifications={"delayMs": 300, "jitterMs": 100})
        reordered = await faulty_call(api_http, reordered_receiver, seed=5, notifications={"reorder": 1, "reorderHoldMs": 5000})
        for call_id in (delayed, reordered):  # the call's "established", then a roster update published after it
            join_without_media(api.registry.get(call_id), "Bob")
        await delayed_receiver.wait_for(lambda r: len(r.notifications()) >= 1)
        assert time.monotonic() - published >= 0.3  # not delivered before its delay
        await delayed_receiver.wait_for(lambda r: len(r.notifications()) >= 2)
        await reordered_receiver.wait_for(lambda r: len(r.notifications()) >= 2)
        assert kinds(delayed_receiver) == ["call", "participants"]  # delayed, still in order
        assert kinds(reordered_receiver) == ["participants", "call"]  # the held batch went after its successor
        assert (await stats(api_http, delayed))["callbacks"]["faults_delayed"] >= 1
        assert (await stats(api_http, reordered))["callbacks"]["faults_reordered"] == 1


# API answers ----------------------------------------------------------------------------------------------------
async def test_api_faults_refuse_at_the_configured_rate_with_retry_after_and_the_same_seed_draws_the_same(api_http):
    spec = {"seed": 42, "api": {"rate": 0.3, "retryAfterSeconds": 2}}
    outcomes = []
    for _ in range(2):  # two calls with the same spec meet the same faults, request by request
        call_id = await faulty_call(api_http, **spec)
        answers = [await api_http.get(f"{CALLS}/{call_id}") for _ in range(200)]
        refused = [r for r in answers if r.status_code != 200]
        assert 0.2 * 200 <= len(refused) <= 0.4 * 200
        assert {r.status_code for r in refused} == {429, 503}
        for r in refused:
            error = assert_graph_error(r, r.status_code, code={429: "TooManyRequests", 503: "ServiceUnavailable"}[r.status_code])
            assert r.headers["Retry-After"] == "2" and r.headers["request-id"] and "injected fault" in error["message"]
        report = (await stats(api_http, call_id))["faults"]  # /ext is not refused unless the spec names it
        assert report["source"] == "call"
        assert report["apiRefused"] == {str(s): sum(r.status_code == s for r in refused) for s in (429, 503)}
        outcomes.append([r.status_code for r in answers])
    assert outcomes[0] == outcomes[1]
    metrics = (await api_http.get("/metrics")).text
    assert f'mediamute_api_faults_injected_total{{status="429"}} {float(outcomes[0].count(429) * 2)}' in metrics


async def test_a_refused_mute_is_not_performed(api, api_http):
    async with CallbackReceiver() as receiver:
        call_id = await faulty_call(api_http, receiver, api={"rate": 1, "statuses": [503]})
        call = api.registry.get(call_id)
        bob = join_without_media(call, "Bob")
        response = await api_http.post(f"{CALLS}/{call_id}/participants/{bob.id}/mute", json={"clientContext": "m"})
        assert_graph_error(response, 503, code="ServiceUnavailable")
        assert response.headers["Retry-After"] == "1"
        assert bob.gate.is_open and not call.operations  # the gate stayed open; no operation was recorded
        await receiver.wait_for(lambda r: len(r.notifications()) >= 2)  # established, Bob joined, and no mute
        assert all(not p["isMuted"] for n in receiver.notifications()[1:] for p in n["resourceData"])
        assert (await api_http.post(f"/ext/calls/{call_id}/participants/{bob.id}/unmute", json={})).status_code == 200


async def test_server_faults_cover_every_call_and_graph_routes_only():
    settings = ServerSettings(ephemeral_key=True, log_level="warning", faults={"api": {"rate": 1, "statuses": [429]}})
    async with InProcessMediamute(settings) as app:
        async with app.client(admin_token(app)) as http:
            assert_graph_error(await http.post(CALLS, json={}), 429)
            assert_graph_error(await http.post("/beta/communications/calls", json={}), 429)
            assert (await http.get("/ext/keys")).status_code == 200
            assert (await http.get("/metrics")).status_code == 200
            assert (await http.get("/openapi.json")).status_code == 200
            other = app.registry.create()  # every call meets the server's faults ...
            assert_graph_error(await http.get(f"{CALLS}/{other.id}"), 429)
            # ... unless it has its own spec, which replaces the server's (here one without API faults); registered
            # as the create route does, since the API refuses every creation here
            assert app.hub is not None
            app.hub.faults.register("own-spec", parse_fault_spec({"seed": 3, "notifications": {"delayMs": 10}}))
            app.registry.create(call_id="own-spec")
            assert (await http.get(f"{CALLS}/own-spec")).status_code == 200
