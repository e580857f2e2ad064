"""What every request handler shares: the call registry, settings, signing key, notification hub and invitations."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from ..calls.call import CallRegistry
from ..calls.errors import CallError
from ..settings import ServerSettings
from ..tokens import SigningKey
from .invitations import Invitations
from .notifications import NotificationHub

log = logging.getLogger("mediamute.api")


@dataclass
class AppState:
    registry: CallRegistry
    settings: ServerSettings
    signing_key: SigningKey
    hub: NotificationHub
    invitations: Invitations

    async def participant_gone(self, call_id: str, participant_id: str) -> None:
        """A participant's connection vanished without a DELETE: take it out of the call."""
        try:
            call = self.registry.get(call_id)
            if participant_id in call.participants:
                await call.remove(participant_id)
                log.info("call %s: participant %s vanished and was removed", call_id, participant_id)
        except CallError:
            pass


def app_state(connection: HTTPConnection) -> AppState:
    return connection.app.state.mediamute
