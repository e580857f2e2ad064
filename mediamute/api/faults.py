"""Faults on request, so a bot developer can prove their bot copes: callback notifications delayed, duplicated,
reordered or failing their first attempt, and API answers of 429 / 503 with `Retry-After`. Off by default.

A fault spec (JSON, camelCase) applies per server (`mediamute serve --faults '{...}'`, `ServerSettings.faults`) or
per call (`"mediamute": {"faults": {...}}` when the call is created); a call's own spec replaces the server's for
that call (its notifications and the requests on its paths). Every decision is drawn from a random generator
seeded by the spec's `seed`, one per call and per kind (notifications, API), so the same requests and
notifications meet the same faults run after run; every fault is counted (`/ext/calls/{id}/stats`, `/metrics`).

This module holds the spec, the seeded decisions and their counters. The delivery faults are applied by
`notifications.CallbackDelivery`; the API faults by the middleware in `fault_injection.py`.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

RouteKind = Literal["graph", "ext", "whip"]
FAULT_STATUSES = (429, 503)


class _Spec(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _whole_numbers(cls, value: Any) -> Any:
        """JSON Schema's integers include 7.0: a whole float is taken as the integer it is (strings stay refused)."""
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, list):
            return [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]
        return value


class NotificationFaultSpec(_Spec):
    """What happens to a call's callback deliveries (each probability is per batch of notifications)."""

    delay_ms: float = Field(default=0, ge=0, le=60_000, description="Hold each batch this long after its first notification was published.")
    jitter_ms: float = Field(default=0, ge=0, le=60_000, description="Plus a uniform random 0..jitterMs.")
    duplicate: float = Field(default=0, ge=0, le=1, description="Probability that a delivered batch is POSTed a second time.")
    reorder: float = Field(default=0, ge=0, le=1, description="Probability that a batch is held and sent after the next one.")
    reorder_hold_ms: float = Field(default=1000, gt=0, le=10_000, description="How long a held batch waits for a next one before it goes anyway.")
    fail_first_attempt: float = Field(
        default=0, ge=0, le=1,
        description="Probability that a batch's first POST is not sent and counts as failed, so the retry path runs "
        "(the receiver sees attempt 2 first: Mediamute-Delivery-Attempt: 2).",
    )


class ApiFaultSpec(_Spec):
    """Which API answers are refused as a throttled or unavailable service would (the action is not performed)."""

    rate: float = Field(default=0, ge=0, le=1, description="Probability that a request is refused.")
    statuses: list[Literal[429, 503]] = Field(default=[429, 503], min_length=1, description="Refused with one of these, at random.")
    retry_after_seconds: int = Field(default=1, ge=0, le=3600, description="The Retry-After header of a refusal.")
    routes: list[RouteKind] = Field(
        default=["graph"], min_length=1, description="Which routes: graph (/v1.0, /beta), ext (/ext) and whip (/whip)."
    )


class FaultSpec(_Spec):
    """A fault spec: a seed, and the faults of notifications and of API answers (absent: none)."""

    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    notifications: NotificationFaultSpec | None = None
    api: ApiFaultSpec | None = None


def parse_fault_spec(raw: str | dict[str, Any] | None) -> FaultSpec | None:
    """A spec from JSON text or an already-decoded object; raises pydantic.ValidationError (naming the field)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        return FaultSpec.model_validate_json(raw)
    return FaultSpec.model_validate(raw)


def fault_spec_errors(error: ValidationError) -> str:
    """A spec's validation errors in one line, each naming its field (`notifications.duplicate: ...`)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in e['loc']) or 'spec'}: {e['msg']}" for e in error.errors(include_url=False)
    )


class DeliveryFaults:
    """The seeded decisions of one call's callback deliveries."""

    def __init__(self, spec: NotificationFaultSpec, seed: int) -> None:
        self.spec = spec
        self._rng = random.Random(f"{seed}:notifications")

    def _chance(self, probability: float) -> bool:
        return probability > 0 and self._rng.random() < probability

    def delay(self) -> float:
        """Seconds a batch waits after its first notification was published."""
        delay = self.spec.delay_ms
        if self.spec.jitter_ms > 0:
            delay += self._rng.uniform(0, self.spec.jitter_ms)
        return delay / 1000

    def reorder(self) -> bool:
        return self._chance(self.spec.reorder)

    @property
    def hold(self) -> float:
        return self.spec.reorder_hold_ms / 1000

    def fail_first_attempt(self) -> bool:
        return self._chance(self.spec.fail_first_attempt)

    def duplicate(self) -> bool:
        return self._chance(self.spec.duplicate)


class ApiFaults:
    """The seeded decisions of API answers under one spec (a call's, or the server's)."""

    def __init__(self, spec: ApiFaultSpec, seed: int) -> None:
        self.spec = spec
        self._rng = random.Random(f"{seed}:api")

    def draw(self, kind: RouteKind) -> int | None:
        """The status to refuse a request on a route of `kind` with, or None to let it through."""
        spec = self.spec
        if kind not in spec.routes or spec.rate <= 0 or self._rng.random() >= spec.rate:
            return None
        return spec.statuses[0] if len(spec.statuses) == 1 else self._rng.choice(spec.statuses)


class FaultBook:
    """The fault specs in force (the server's, and each call's own) with their seeded decisions and API counters."""

    def __init__(self, server: FaultSpec | None = None) -> None:
        self.server: FaultSpec | None = None
        self._server_api: ApiFaults | None = None
        self._calls: dict[str, FaultSpec] = {}
        self._call_api: dict[str, ApiFaults] = {}
        self.refused: dict[str, Counter[int]] = {}
        """API requests refused per call id (by status); requests on no call's path count under ''."""
        self.refused_total: Counter[int] = Counter()
        """Every API request refused, by status."""
        self.set_server(server)

    def set_server(self, spec: FaultSpec | None) -> None:
        self.server = spec
        self._server_api = ApiFaults(spec.api, spec.seed) if spec is not None and spec.api is not None else None

    def register(self, call_id: str, spec: FaultSpec | None) -> None:
        """A new call's own spec (before the call publishes anything); None: the server's applies."""
        if spec is not None:
            self._calls[call_id] = spec
            if spec.api is not None:
                self._call_api[call_id] = ApiFaults(spec.api, spec.seed)

    def spec_for(self, call_id: str | None) -> FaultSpec | None:
        if call_id is not None and call_id in self._calls:
            return self._calls[call_id]
        return self.server

    def delivery_faults(self, call_id: str) -> DeliveryFaults | None:
        """Fresh seeded decisions for a call's callback deliveries, or None when its notifications have no faults."""
        spec = self.spec_for(call_id)
        if spec is None or spec.notifications is None:
            return None
        return DeliveryFaults(spec.notifications, spec.seed)

    def draw_api(self, call_id: str | None, kind: RouteKind) -> tuple[int, int] | None:
        """(status, Retry-After seconds) to refuse a request on `kind` routes of `call_id` (None: not a call's
        path) with, or None to let it through. Counted when refused."""
        if call_id is not None and call_id in self._calls:
            faults = self._call_api.get(call_id)
        else:
            faults = self._server_api
        if faults is None:
            return None
        status = faults.draw(kind)
        if status is None:
            return None
        self.refused.setdefault(call_id or "", Counter())[status] += 1
        self.refused_total[status] += 1
        return status, faults.spec.retry_after_seconds

    def call_report(self, call_id: str) -> dict[str, Any] | None:
        """A call's fault spec in force and its refused API requests by status (None: no faults for it)."""
        spec = self.spec_for(call_id)
        if spec is None:
            return None
        refused = self.refused.get(call_id, Counter())
        return {
            "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
            "source": "call" if call_id in self._calls else "server",
            "apiRefused": {str(status): refused.get(status, 0) for status in FAULT_STATUSES},
        }
