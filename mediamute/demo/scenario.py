"""Demo scenarios as data (TOML or JSON): who joins with which voice, and a timed list of actions.

Every problem is reported before anything starts, as `file: field.path: what is wrong`.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..media.netem import ProfileError, parse_network
from ..sources import SAMPLES_DIR

DEFAULT_SCENARIO = SAMPLES_DIR / "default-scenario.toml"
PILOT_BASE_HZ = 9000.0
PILOT_STEP_HZ = 500.0

ActionName = Literal["mute", "unmute", "self-unmute", "app-mute", "app-unmute", "app-play", "leave", "join", "network"]
NEEDS_PARTICIPANT = {"mute", "unmute", "self-unmute", "leave", "join", "network"}
NetworkValue = str | dict[str, Any]
"""A network profile in a scenario: a preset's name or a table of profile fields (README: Network impairment)."""


class ScenarioError(ValueError):
    """A scenario that cannot run; the message names the file and the field."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParticipantSpec(Strict):
    name: str = Field(min_length=1, max_length=32)
    source: str = Field(description="a WAV in samples/ (or a path), 'tone:HZ', or 'silence'")
    pilot_hz: float | None = Field(default=None, gt=8000, lt=20000, description="per-speaker tag above speech")
    network: NetworkValue | None = Field(default=None, description="the network it joins with (both directions)")


class ActionSpec(Strict):
    at: float = Field(ge=0)
    action: ActionName
    participant: str | None = None
    client_context: str | None = Field(default=None, max_length=256)
    source: str | None = None
    label: str | None = None
    profile: NetworkValue | None = Field(default=None, description="'network': both directions' new profile")
    uplink: NetworkValue | None = Field(default=None, description="'network': the participant → server profile")
    downlink: NetworkValue | None = Field(default=None, description="'network': the server → participant profile")

    def network_body(self) -> dict[str, NetworkValue]:
        """The body of the network PUT this action sends."""
        if self.profile is not None:
            return {"uplink": self.profile, "downlink": self.profile}
        return {d: v for d, v in (("uplink", self.uplink), ("downlink", self.downlink)) if v is not None}


class CallSpec(Strict):
    allow_self_unmute: bool = True
    app_name: str = Field(default="Contoso bot", min_length=1, max_length=64)
    app_pilot_hz: float = Field(default=12000.0, gt=8000, lt=20000)


class Scenario(Strict):
    title: str = "mediamute demo"
    duration: float = Field(gt=0, le=600)
    call: CallSpec = Field(default_factory=CallSpec)
    participants: list[ParticipantSpec] = Field(min_length=2, max_length=12)
    actions: list[ActionSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> "Scenario":
        names = [p.name for p in self.participants]
        for index, name in enumerate(names):
            if names.index(name) != index:
                raise _field_error(f"participants[{index}].name", f"{name!r} is used twice")
        joined_late: set[str] = set()
        for index, action in enumerate(self.actions):
            where = f"actions[{index}]"
            if action.at > self.duration:
                raise _field_error(f"{where}.at", f"{action.at} s is after the end of the scenario ({self.duration} s)")
            if action.action in NEEDS_PARTICIPANT:
                if action.participant is None:
                    raise _field_error(f"{where}.participant", f"'{action.action}' needs a participant")
                if action.participant not in names:
                    raise _field_error(
                        f"{where}.participant", f"{action.participant!r} is not a participant ({', '.join(names)})"
                    )
            elif action.participant is not None:
                raise _field_error(f"{where}.participant", f"'{action.action}' acts on the application, not a participant")
            if action.action == "app-play" and not action.source:
                raise _field_error(f"{where}.source", "'app-play' needs a source")
            _check_network_action(action, where)
            if action.action == "join":
                joined_late.add(action.participant or "")
            if index and action.at < self.actions[index - 1].at:
                raise _field_error(f"{where}.at", "actions must be listed in time order")
        for index, spec in enumerate(self.participants):
            if spec.network is not None:
                _check_network(spec.network, f"participants[{index}].network")
            if spec.pilot_hz is None:
                spec.pilot_hz = PILOT_BASE_HZ + PILOT_STEP_HZ * index
        pilots = [p.pilot_hz for p in self.participants] + [self.call.app_pilot_hz]
        if len(set(pilots)) != len(pilots) or min(abs(a - b) for i, a in enumerate(pilots) for b in pilots[i + 1:]) < 300:
            raise _field_error("participants[].pilot_hz", "pilot tones must be at least 300 Hz apart")
        return self

    def joins_late(self, name: str) -> bool:
        return any(a.action == "join" and a.participant == name for a in self.actions)


class _FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")


def _field_error(field: str, message: str) -> _FieldError:
    return _FieldError(field, message)


def _check_network(value: NetworkValue, where: str) -> None:
    try:
        parse_network(value, where)
    except ProfileError as exc:
        raise _FieldError(exc.field, exc.message) from None


def _check_network_action(action: ActionSpec, where: str) -> None:
    """'network' takes `profile` (both directions) or `uplink`/`downlink`; no other action takes any of them."""
    given = {k: v for k, v in (("profile", action.profile), ("uplink", action.uplink), ("downlink", action.downlink)) if v is not None}
    if action.action != "network":
        if given:
            raise _field_error(f"{where}.{next(iter(given))}", f"only a 'network' action takes a profile, not '{action.action}'")
        return
    if not given:
        raise _field_error(f"{where}.profile", "'network' needs a profile (or uplink / downlink)")
    if "profile" in given and len(given) > 1:
        raise _field_error(f"{where}.profile", "give either profile (both directions) or uplink / downlink")
    for key, value in given.items():
        _check_network({"uplink": value} if key == "uplink" else {"downlink": value} if key == "downlink" else value,
                       f"{where}" if key != "profile" else f"{where}.profile")


def resolve_source(spec: str, base: Path) -> str:
    """Check a source spec names something playable; returns it with WAV paths made absolute."""
    text = spec.strip()
    if text == "silence" or text.startswith("tone:"):
        if text.startswith("tone:"):
            float(text[5:])
        return text
    for candidate in (Path(text), base / text, SAMPLES_DIR / text):
        if candidate.is_file():
            return str(candidate.resolve())
    raise FileNotFoundError(f"{text!r} is not 'silence', 'tone:HZ', or a WAV file (looked in {base} and {SAMPLES_DIR})")


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Read and check a scenario; raises ScenarioError naming the file and the field at fault. A bare file name that
    is not in the current directory is looked up among the scenarios mediamute ships (`samples/`)."""
    path = Path(path) if path is not None else DEFAULT_SCENARIO
    if not path.exists() and path.parent == Path(".") and (SAMPLES_DIR / path.name).is_file():
        path = SAMPLES_DIR / path.name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the scenario: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise ScenarioError(f"{path}: not valid {kind}: {exc}") from None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in first["loc"]).replace(".[", "[")
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "value_error" and ": " in message and not location:
            raise ScenarioError(f"{path}: {message}") from None
        raise ScenarioError(f"{path}: {location or 'scenario'}: {message}") from None
    base = path.parent
    for index, spec in enumerate(scenario.participants):
        try:
            spec.source = resolve_source(spec.source, base)
        except (FileNotFoundError, ValueError) as exc:
            raise ScenarioError(f"{path}: participants[{index}].source: {exc}") from None
    for index, action in enumerate(scenario.actions):
        if action.source is not None:
            try:
                action.source = resolve_source(action.source, base)
            except (FileNotFoundError, ValueError) as exc:
                raise ScenarioError(f"{path}: actions[{index}].source: {exc}") from None
    return scenario
