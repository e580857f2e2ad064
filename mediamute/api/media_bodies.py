"""Request bodies of Graph's media actions (playPrompt, recordResponse, cancelMediaProcessing, sendDtmfTones,
startHoldMusic, stopHoldMusic), with every limit the server enforces stated in the schema: Graph's where it gives
one (≤ 20 prompts, ≤ 1 for recordResponse, timeouts 1..120 s, clientContext ≤ 256), mediamute's where it is silent.

Like Graph, bodies ignore properties they do not know (`@odata.type` included); numbers must be JSON integers and
flags JSON booleans (Graph's Int32 and Boolean).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator
from pydantic.alias_generators import to_camel

from ..dtmf import GRAPH_TONES, KEYPAD_SPELLINGS, graph_tone
from ..prompts import check_place
from .schemas import PORT, ClientContextBody, GraphModel

STRICT = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", strict=True)

def graph_tone_name(value: str) -> str:
    if value not in GRAPH_TONES:
        raise ValueError(f"{value!r} is not one of Graph's tone names ({', '.join(GRAPH_TONES)})")
    return value


def tone_of(value: object) -> object:
    """A toneInfo object's `tone` (anything else as it is, for the string check)."""
    if isinstance(value, dict):
        if not isinstance(value.get("tone"), str):
            raise ValueError("a toneInfo object needs its 'tone' (one of Graph's tone names)")
        sequence = value.get("sequenceId")
        if sequence is not None and (not isinstance(sequence, int) or isinstance(sequence, bool)):
            raise ValueError("a toneInfo object's sequenceId is an integer")
        return value["tone"]
    return value


def dtmf_key(value: str) -> str:
    graph_tone(value)  # raises, naming the value and what is allowed
    return value


MEDIA_URI_PATTERN = (
    rf"^(https?://(127\.0\.0\.1|localhost|\[::1\])(:{PORT})?([/?#][!-~]*)?"  # an http(s) URL on this machine
    r"|file://(localhost)?/[!-~]+"  # a file URL (under the media directory)
    r"|[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*)$"  # a sample's name, or a path in the media directory
)
MAX_URI = 2048
MAX_PROMPTS = 20
MAX_TONES = 100
MAX_TONE_DELAY_MS = 10_000
DEFAULT_TONE_DELAY_MS = 100

GRAPH_TONE_PATTERN = r"^(tone[0-9]|star|pound|[a-d]|flash)$"
STOP_TONE_PATTERN = r"^(tone[0-9]|star|pound|[a-dA-D]|flash|[0-9*#])$"
ToneItem = Annotated[
    str,
    BeforeValidator(tone_of),
    AfterValidator(graph_tone_name),
    WithJsonSchema({"anyOf": [
        {"type": "string", "pattern": GRAPH_TONE_PATTERN},
        {"type": "object", "properties": {"tone": {"type": "string", "pattern": GRAPH_TONE_PATTERN},
                                          "sequenceId": {"type": ["integer", "null"]}}, "required": ["tone"]},
    ]}),
]
"""A DTMF key in sendDtmfTones' `tones`: Graph's tone name, or a toneInfo object carrying one (Graph types the
collection as toneInfo, its example sends bare names). A pattern in the schema rather than an enum: the same set,
stated compactly."""
StopTone = Annotated[str, AfterValidator(dtmf_key), WithJsonSchema({"type": "string", "pattern": STOP_TONE_PATTERN})]
"""A DTMF key by Graph's name or its keypad spelling (Graph's recordResponse example: `["#", "1", "*"]`)."""


class MediaInfo(GraphModel):
    model_config = STRICT
    uri: str = Field(
        min_length=1, max_length=MAX_URI, json_schema_extra={"pattern": MEDIA_URI_PATTERN},
        description="A package sample's name (prompt.wav, hold-music.wav, ...), a file under the server's "
        "--media-dir (a relative path or a file: URL), or an http(s) URL on 127.0.0.1, localhost or [::1]. WAV.",
    )
    resource_id: str | None = Field(default=None, max_length=256, description="A cache key for the uri's media.")

    @field_validator("uri")
    @classmethod
    def _allowed_form(cls, value: str) -> str:
        if not re.search(MEDIA_URI_PATTERN, value):
            check_place(value)  # another host or scheme: say so
            raise ValueError(
                "uri must be a package sample's name, a path under the server's media directory (a relative path "
                "of letters, digits, '_', '-', '.' and '/', no '..'; or a file: URL), or an http(s) URL on this "
                "machine (127.0.0.1, localhost or [::1])"
            )
        return value


class MediaPrompt(GraphModel):
    model_config = STRICT
    media_info: MediaInfo


class PlayPromptBody(ClientContextBody):
    prompts: list[MediaPrompt] = Field(min_length=1, max_length=MAX_PROMPTS, description="1 to 20 prompts, played in order.")


class RecordResponseBody(ClientContextBody):
    prompts: list[MediaPrompt] = Field(default_factory=list, max_length=1, description="At most one prompt, played first.")
    barge_in_allowed: bool = Field(
        default=False, description="Cancel what is playing and queued (as cancelMediaProcessing does) and start now."
    )
    initial_silence_timeout_in_seconds: int = Field(
        default=5, ge=1, le=120, description="Fail if nobody speaks this long after the prompt (and beep) ended."
    )
    max_silence_timeout_in_seconds: int = Field(default=5, ge=1, le=120, description="End after a pause this long.")
    max_record_duration_in_seconds: int = Field(default=5, ge=1, le=120, description="End after recording this long.")
    play_beep: bool = Field(default=True, description="Play a beep before recording.")
    stop_tones: list[StopTone] = Field(
        default_factory=list, max_length=len(GRAPH_TONES) + len(KEYPAD_SPELLINGS),
        description="DTMF tones that end the recording: Graph's names (pound, star, tone1, ...) or keypad "
        "spellings (#, *, 1, ...).",
    )


class SendDtmfTonesBody(ClientContextBody):
    tones: list[ToneItem] = Field(
        min_length=1, max_length=MAX_TONES, description="Graph's tone names (tone0..tone9, star, pound, a..d, flash), "
        "or toneInfo objects carrying them.",
    )
    delay_between_tones_ms: int = Field(
        default=DEFAULT_TONE_DELAY_MS, ge=0, le=MAX_TONE_DELAY_MS, description="Silence between two tones (ms)."
    )

    def tone_names(self) -> list[str]:
        return list(self.tones)


class StartHoldMusicBody(ClientContextBody):
    custom_prompt: MediaPrompt | None = Field(
        default=None, description="What the held participant hears, looped; default: the package's hold-music.wav."
    )
