"""Graph resources on the wire (pydantic): camelCase properties and `@odata.type` on every body.

Only the properties that matter to mute are filled; the others Graph defines are present as null so clients that
read them find them. Request bodies ignore properties they do not know (as Graph does with `@odata.type`).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

MAX_CLIENT_CONTEXT = 256

# What the server accepts, stated once: the JSON schema carries these patterns and the validators apply them.
PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
CALLBACK_URI_PATTERN = rf"^https?://(127\.0\.0\.1|localhost|\[::1\])(:{PORT})?([/?#][!-~]*)?$"  # printable ASCII, no spaces
SAMPLE_NAMES = ("alice.wav", "bob.wav", "carol.wav", "dave.wav", "prompt.wav")
TONE_HZ = r"([1-9][0-9]{1,3}|1[0-9]{4}|2[0-3][0-9]{3})(\.[0-9]{1,3})?"  # 10 Hz up to below Nyquist (24 kHz)
APP_SOURCE_PATTERN = rf"^(silence|(tone:)?{TONE_HZ}|" + "|".join(re.escape(n) for n in SAMPLE_NAMES) + ")$"


class GraphModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def odata(type_name: str) -> Any:
    return Field(default=f"#microsoft.graph.{type_name}", alias="@odata.type")


# resources ----------------------------------------------------------------------------------------------------
class Identity(GraphModel):
    odata_type: str = odata("identity")
    display_name: str | None = None
    id: str | None = None


class IdentitySet(GraphModel):
    odata_type: str = odata("identitySet")
    user: Identity | None = None
    application: Identity | None = None
    device: Identity | None = None


class ParticipantInfo(GraphModel):
    odata_type: str = odata("participantInfo")
    identity: IdentitySet
    region: str | None = None
    language_id: str | None = None
    country_code: str | None = None
    endpoint_type: Literal["default", "voicemail", "skypeForBusiness", "skypeForBusinessVoipPhone"] | None = None
    participant_id: str | None = None


class MediaStream(GraphModel):
    odata_type: str = odata("mediaStream")
    media_type: Literal["audio", "video", "videoBasedScreenSharing", "data", "unknown"] = "audio"
    label: str | None = "main-audio"
    source_id: str = "1"
    direction: Literal["inactive", "sendOnly", "receiveOnly", "sendReceive"] = "sendReceive"
    server_muted: bool = False


class RemovedState(GraphModel):
    odata_type: str = odata("removedState")
    reason: str | None = None


class ParticipantExtension(GraphModel):
    """mediamute's own properties of a participant, under the key `mediamute` (outside Graph's schema)."""

    talking_while_muted: bool = Field(
        default=False,
        description="The server has muted this participant and the audio level its packets carry says it is talking.",
    )


class Participant(GraphModel):
    odata_type: str = odata("participant")
    id: str
    info: ParticipantInfo
    is_muted: bool
    is_in_lobby: bool = False
    media_streams: list[MediaStream]
    metadata: str | None = None
    roster_sequence_number: int
    removed_state: RemovedState | None = None
    recording_info: dict[str, Any] | None = None
    restricted_experience: dict[str, Any] | None = None
    mediamute: ParticipantExtension = Field(
        default_factory=ParticipantExtension, description="Extension properties (not Graph's): talkingWhileMuted."
    )


class ParticipantCollection(GraphModel):
    odata_context: str = Field(alias="@odata.context")
    value: list[Participant]


class ResultInfo(GraphModel):
    odata_type: str = odata("resultInfo")
    code: int = 200
    subcode: int = 0
    message: str | None = None


class CommsOperation(GraphModel):
    odata_type: str = odata("commsOperation")
    odata_context: str | None = Field(default=None, alias="@odata.context", exclude_if=lambda v: v is None)
    odata_id: str | None = Field(
        default=None, alias="@odata.id", exclude_if=lambda v: v is None,
        description="In a completing notification: the operation's path, as its resourceUrl.",
    )
    id: str
    status: Literal["notStarted", "running", "completed", "failed"]
    client_context: str | None = None
    result_info: ResultInfo | None = None


class MuteParticipantOperation(CommsOperation):
    odata_type: str = odata("muteParticipantOperation")


class UnmuteParticipantOperation(CommsOperation):
    odata_type: str = odata("unmuteParticipantOperation")


def _absent_if_none(value: Any) -> bool:
    return value is None


class PlayPromptOperation(CommsOperation):
    odata_type: str = odata("playPromptOperation")
    completion_reason: Literal["unknown", "completedSuccessfully", "mediaOperationCanceled", "unknownFutureValue"] | None = Field(
        default=None, exclude_if=_absent_if_none, description="Graph beta's completionReason, once the prompt ended."
    )


class RecordOperation(CommsOperation):
    odata_type: str = odata("recordOperation")
    recording_location: str | None = None
    recording_access_token: str | None = None
    completion_reason: str | None = Field(
        default=None, exclude_if=_absent_if_none,
        description="Why the recording ended (Graph beta's recordCompletionReason, also in v1.0's examples).",
    )


class CancelMediaProcessingOperation(CommsOperation):
    odata_type: str = odata("cancelMediaProcessingOperation")


class SubscribeToToneOperation(CommsOperation):
    odata_type: str = odata("subscribeToToneOperation")


class SendDtmfTonesOperation(CommsOperation):
    odata_type: str = odata("sendDtmfTonesOperation")
    completion_reason: Literal["unknown", "completedSuccessfully", "mediaOperationCanceled", "unknownFutureValue"] | None = None


class StartHoldMusicOperation(CommsOperation):
    odata_type: str = odata("startHoldMusicOperation")


class StopHoldMusicOperation(CommsOperation):
    odata_type: str = odata("stopHoldMusicOperation")


class InviteParticipantsOperation(CommsOperation):
    odata_type: str = odata("inviteParticipantsOperation")
    participants: list[dict[str, Any]] | None = None


ToneName = Literal[
    "tone0", "tone1", "tone2", "tone3", "tone4", "tone5", "tone6", "tone7", "tone8", "tone9",
    "star", "pound", "a", "b", "c", "d", "flash",
]


class ToneInfo(GraphModel):
    odata_type: str = odata("toneInfo")
    sequence_id: int = Field(description="Increasing per call: the order of the key presses.")
    tone: ToneName


class ToneExtension(GraphModel):
    """mediamute's own properties of a tone notification, under the key `mediamute` (outside Graph's schema)."""

    participant_id: str = Field(description="Who pressed the key (Graph's tone notification does not say).")
    server_muted: bool = Field(description="Whether that participant was server-muted: its tones are still read.")


class ToneNotificationCall(GraphModel):
    """A tone notification's resourceData: the call's state and the key press, as Graph's example has it."""

    odata_type: str = odata("call")
    state: str
    tone_info: ToneInfo
    mediamute: ToneExtension


class Call(GraphModel):
    odata_type: str = odata("call")
    odata_context: str | None = Field(default=None, alias="@odata.context", exclude_if=lambda v: v is None)
    id: str
    state: Literal["incoming", "establishing", "established", "hold", "transferring", "transferAccepted",
                   "redirecting", "terminating", "terminated"]
    direction: Literal["incoming", "outgoing"] = "outgoing"
    callback_uri: str | None = None
    my_participant_id: str
    requested_modalities: list[str]
    media_config: dict[str, Any] | None = None
    source: ParticipantInfo | None = None
    targets: list[dict[str, Any]] | None = None
    subject: str | None = None
    chat_info: dict[str, Any] | None = None
    meeting_info: dict[str, Any] | None = None
    tenant_id: str | None = None
    result_info: ResultInfo | None = None
    call_chain_id: str | None = None
    tone_info: ToneInfo | None = Field(
        default=None, description="The latest key press since subscribeToTone (null before any, or without one)."
    )


class CommsNotification(GraphModel):
    odata_type: str = odata("commsNotification")
    change_type: Literal["created", "updated", "deleted"]
    resource_url: str
    resource_data: Any = None


class CommsNotifications(GraphModel):
    odata_type: str = odata("commsNotifications")
    value: list[CommsNotification]


# request bodies -----------------------------------------------------------------------------------------------
class ClientContextBody(GraphModel):
    """The body of mute/unmute: an optional clientContext of at most 256 characters."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", strict=True)
    client_context: str | None = Field(default=None, max_length=MAX_CLIENT_CONTEXT)


class MuteAllBody(ClientContextBody):
    participants: list[str] = Field(default_factory=list)


class MediamuteCallOptions(GraphModel):
    """Extension properties of a created call (outside Graph's schema, under the key `mediamute`)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    app_source: str | None = Field(
        default=None, json_schema_extra={"pattern": APP_SOURCE_PATTERN},
        description="What the application's own participant plays: 'silence', a tone of 10 Hz to 23999 Hz ('440' "
        "or 'tone:440') or one of the WAV files in samples/.",
    )
    app_display_name: str = Field(default="mediamute application", max_length=64)
    allow_self_unmute: bool = Field(default=True, strict=True, description="May a server-muted participant unmute itself?")
    peer_to_peer: bool | None = Field(default=None, strict=True, description="Force a peer-to-peer (True) or group call.")

    @field_validator("app_source")
    @classmethod
    def _known_source(cls, value: str | None) -> str | None:
        if value is not None and not re.search(APP_SOURCE_PATTERN, value):
            raise ValueError(f"appSource must be 'silence', a tone of 10 Hz to 23999 Hz ('440' or 'tone:440') or one of {', '.join(SAMPLE_NAMES)}")
        return value


class CreateCallBody(GraphModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")
    callback_uri: str | None = Field(
        default=None, json_schema_extra={"pattern": CALLBACK_URI_PATTERN},
        description="An absolute http(s) URL on this machine (127.0.0.1, localhost or [::1]).",
    )
    requested_modalities: list[Literal["audio", "video", "videoBasedScreenSharing", "data", "unknown"]] = Field(
        default=["audio"], json_schema_extra={"contains": {"const": "audio"}}, description="Must include 'audio'."
    )
    media_config: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    targets: list[dict[str, Any]] | None = None
    subject: str | None = Field(default=None, max_length=256)
    chat_info: dict[str, Any] | None = None
    meeting_info: dict[str, Any] | None = None
    tenant_id: str | None = None
    mediamute: MediamuteCallOptions | None = None

    @field_validator("callback_uri")
    @classmethod
    def _local_callback(cls, value: str | None) -> str | None:
        if value is not None and not re.search(CALLBACK_URI_PATTERN, value):
            raise ValueError(
                "callbackUri must be an absolute http(s) URL on this machine (127.0.0.1, localhost or [::1]): "
                "mediamute is a local simulator"
            )
        return value

    @field_validator("requested_modalities")
    @classmethod
    def _audio_required(cls, value: list[str]) -> list[str]:
        if "audio" not in value:
            raise ValueError("mediamute calls carry audio: requestedModalities must include 'audio'")
        return value

    @property
    def is_peer_to_peer(self) -> bool:
        """Graph's peer-to-peer shape: one target and no chat/meeting info (ours: unless forced)."""
        if self.mediamute is not None and self.mediamute.peer_to_peer is not None:
            return self.mediamute.peer_to_peer
        return bool(self.targets) and len(self.targets or []) == 1 and not self.chat_info and not self.meeting_info


class SelfMuteBody(GraphModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", strict=True)
    muted: bool


# errors ---------------------------------------------------------------------------------------------------------
class InnerError(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    request_id: str = Field(alias="request-id")
    date: str
    client_request_id: str | None = Field(default=None, alias="client-request-id")


class ErrorDetail(BaseModel):
    code: str
    message: str
    innerError: InnerError


class ErrorResponse(BaseModel):
    """Graph's error envelope: every 4xx and 5xx answer has this body."""

    error: ErrorDetail
