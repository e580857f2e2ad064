"""Roster, call-state and tone notifications: commsNotifications POSTed to each call's callbackUri, and the same
batches fanned out to the call's live event streams (WebSocket), which also get every key press (`type: tone`).

Domain events only enqueue (O(1), synchronous); delivery runs in its own task per call with a bounded queue,
batching, retries with exponential backoff, and a signed bearer token on every POST. A receiver that hangs or
fails therefore delays only its own notifications, never a mixer tick.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pyee import EventEmitter

from ..calls import call as call_events
from ..calls.call import Call
from ..calls.model import Operation, Participant
from ..tokens import SigningKey
from . import schemas
from .resources import call_resource, operation_path, operation_resource, participant_resource, tone_notification_data

log = logging.getLogger("mediamute.notifications")

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclass
class DeliveryPolicy:
    queue_size: int = 1000
    batch_size: int = 50
    attempts: int = 6
    first_backoff: float = 0.2
    max_backoff: float = 5.0
    timeout: float = 5.0


@dataclass
class DeliveryCounters:
    enqueued: int = 0
    posts: int = 0
    delivered_batches: int = 0
    delivered_notifications: int = 0
    retries: int = 0
    failed_batches: int = 0
    dropped_overflow: int = 0


class CallbackDelivery:
    """One call's notifications POSTed to its callbackUri in order, each batch retried up to `policy.attempts`
    times (so a receiver may see a batch twice); a batch that fails every attempt, and the oldest notification
    when the queue is full, are dropped and counted."""

    def __init__(self, call_id: str, uri: str, key: SigningKey, client: httpx.AsyncClient, policy: DeliveryPolicy) -> None:
        self.call_id = call_id
        self.uri = uri
        self.key = key
        self.client = client
        self.policy = policy
        self.counters = DeliveryCounters()
        self._queue: deque[schemas.CommsNotification] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"callbacks-{call_id}")

    def enqueue(self, notification: schemas.CommsNotification) -> None:
        if len(self._queue) >= self.policy.queue_size:
            self._queue.popleft()
            self.counters.dropped_overflow += 1
            log.warning("call %s: callback queue full, oldest notification dropped", self.call_id)
        self._queue.append(notification)
        self.counters.enqueued += 1
        self._wake.set()

    async def close(self, drain_timeout: float = 2.0) -> None:
        """Stop after what is queued is delivered (or `drain_timeout` passes)."""
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), drain_timeout)
        except asyncio.CancelledError:
            if not self._task.cancelled():  # our own cancellation, not the delivery task's
                raise
        except asyncio.TimeoutError:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.policy.batch_size))]
            await self._deliver(batch)

    async def _deliver(self, batch: list[schemas.CommsNotification]) -> None:
        body = json.dumps(schemas.CommsNotifications(value=batch).wire(), separators=(",", ":")).encode()
        backoff = self.policy.first_backoff
        for attempt in range(1, self.policy.attempts + 1):
            headers = {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.key.sign_callback(body, self.uri)}",
                "Mediamute-Delivery-Attempt": str(attempt),
            }
            self.counters.posts += 1
            try:
                response = await self.client.post(self.uri, content=body, headers=headers, timeout=self.policy.timeout)
                if 200 <= response.status_code < 300:
                    self.counters.delivered_batches += 1
                    self.counters.delivered_notifications += len(batch)
                    return
                if response.status_code not in RETRYABLE_STATUS:
                    log.warning("call %s: callback %s refused with %d; not retried", self.call_id, self.uri, response.status_code)
                    self.counters.failed_batches += 1
                    return
                reason = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if attempt == self.policy.attempts:
                break
            self.counters.retries += 1
            log.info("call %s: callback attempt %d failed (%s); retrying in %.2f s", self.call_id, attempt, reason, backoff)
            await asyncio.sleep(backoff * (0.8 + 0.4 * random.random()))  # backoff with jitter
            backoff = min(backoff * 2, self.policy.max_backoff)
        self.counters.failed_batches += 1
        log.error("call %s: callback %s failed %d times; batch of %d dropped", self.call_id, self.uri, self.policy.attempts, len(batch))


Subscriber = Callable[[dict[str, Any]], None]


class NotificationHub:
    """Turns domain events into commsNotifications and hands them to callbacks and event-stream subscribers."""

    def __init__(self, events: EventEmitter, key: SigningKey, policy: DeliveryPolicy | None = None) -> None:
        self.key = key
        self.policy = policy or DeliveryPolicy()
        self.deliveries: dict[str, CallbackDelivery] = {}
        self.subscribers: dict[str, set[Subscriber]] = {}
        self.history: dict[str, deque[dict[str, Any]]] = {}
        self._client: httpx.AsyncClient | None = None
        self._closing: set[asyncio.Task[None]] = set()
        events.on(call_events.CALL_UPDATED, self._call_updated)
        events.on(call_events.CALL_ENDED, self._call_ended)
        events.on(call_events.PARTICIPANT_JOINED, self._participants_updated)
        events.on(call_events.PARTICIPANT_UPDATED, self._participants_updated)
        events.on(call_events.PARTICIPANT_LEFT, self._participant_left)
        events.on(call_events.OPERATION_FINISHED, self._operation_finished)
        events.on(call_events.TONE_RECEIVED, self._tone_received)

    # event handlers (synchronous, O(1) per listener) ---------------------------------------------------------
    def _call_updated(self, call: Call) -> None:
        self._publish(call, "updated", f"/communications/calls/{call.id}", call_resource(call).wire())

    def _call_ended(self, call: Call) -> None:
        self._publish(call, "deleted", f"/communications/calls/{call.id}", call_resource(call).wire())
        delivery = self.deliveries.get(call.id)
        if delivery is not None:  # deliver what is queued (the `deleted` included), then stop; counters stay readable
            self._closing.add(asyncio.get_running_loop().create_task(delivery.close(drain_timeout=10.0)))

    def _participants_updated(self, call: Call, *participants: Participant) -> None:
        data = [participant_resource(p).wire() for p in participants]
        self._publish(call, "updated", f"/communications/calls/{call.id}/participants", data)

    def _participant_left(self, call: Call, participant: Participant) -> None:
        data = [participant_resource(participant, removed_reason="left").wire()]
        self._publish(call, "deleted", f"/communications/calls/{call.id}/participants", data)

    def _operation_finished(self, call: Call, operation: Operation) -> None:
        """An operation answered `running` has ended: Graph's `deleted` on the operation, with its final state."""
        path = operation_path(call.id, operation.id)
        self._publish(call, "deleted", path, operation_resource(operation, odata_id=path).wire())

    def _tone_received(self, call: Call, participant: Participant, tone: str) -> None:
        """A key press: under subscribeToTone Graph's call update with toneInfo; on the event stream, always."""
        info = call.tone_info if call.tone_subscription is not None else None
        if info is not None:
            self._publish(call, "updated", f"/communications/calls/{call.id}", tone_notification_data(call, info).wire())
        self._stream(call.id, {
            "type": "tone",
            "at": time.time(),
            "participantId": participant.id,
            "tone": tone,
            "sequenceId": info.sequence_id if info is not None else None,
            "serverMuted": participant.server_muted,
        })

    # fan-out ------------------------------------------------------------------------------------------------
    def _stream(self, call_id: str, message: dict[str, Any]) -> None:
        """To the call's event-stream subscribers only (not the callback, not the history)."""
        for subscriber in list(self.subscribers.get(call_id, ())):
            subscriber(message)

    def _publish(self, call: Call, change_type: str, resource_url: str, data: Any) -> None:
        notification = schemas.CommsNotification(change_type=change_type, resource_url=resource_url, resource_data=data)
        uri = call.options.callback_uri
        if uri:
            delivery = self.deliveries.get(call.id)
            if delivery is None:
                if self._client is None:
                    self._client = httpx.AsyncClient(trust_env=False)
                delivery = CallbackDelivery(call.id, uri, self.key, self._client, self.policy)
                self.deliveries[call.id] = delivery
            delivery.enqueue(notification)
        message = {"type": "notification", "at": time.time(), "body": schemas.CommsNotifications(value=[notification]).wire()}
        self.history.setdefault(call.id, deque(maxlen=200)).append(message)
        self._stream(call.id, message)

    def subscribe(self, call_id: str, subscriber: Subscriber) -> Callable[[], None]:
        self.subscribers.setdefault(call_id, set()).add(subscriber)
        return lambda: self.subscribers.get(call_id, set()).discard(subscriber)

    def delivery_counters(self, call_id: str) -> DeliveryCounters | None:
        delivery = self.deliveries.get(call_id)
        return delivery.counters if delivery else None

    async def close(self) -> None:
        # every call's queue drains at once: a stop costs one drain timeout, not one per call still retrying
        await asyncio.gather(*(delivery.close() for delivery in list(self.deliveries.values())))
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
