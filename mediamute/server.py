"""Runs the HTTP API and WebRTC media in one asyncio event loop (uvicorn + aiortc), as `mediamute serve` does
and as the tests, the demo and the benchmarks do in-process."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .api.app import create_app
from .api.notifications import NotificationHub
from .calls.call import CallRegistry
from .loopback import LoopbackServer
from .rtc.encode_pool import EncodePool
from .rtc.encoding import MixEncoding
from .rtc.mix_encoder import mix_encoder_factory
from .rtc.ice import configure_ice
from .settings import ServerSettings
from .tokens import SigningKey

if TYPE_CHECKING:
    from .cluster.node import ClusterNode
    from .media.audit import TickRecord

log = logging.getLogger(__name__)


class MediamuteServer:
    """A running mediamute: start it, use `base_url`, stop it. The port may be 0 (any free port).

    Clients use the HTTP API (the application's participant speaks through Graph's playPrompt, as a bot does). A
    program that runs the server in its own process and event loop (the demo, the tests) also has `subscribe_audit`:
    the in-process interface for embedding.
    """

    def __init__(self, settings: ServerSettings | None = None, signing_key: SigningKey | None = None) -> None:
        self.settings = settings or ServerSettings()
        self.encode_pool: EncodePool | None = None
        """The threads that encode every call's mixes (one per core), started with the server."""
        new_encoder = mix_encoder_factory(self.settings.mix_encoder)  # refuses an unknown or missing encoder now
        self.registry = CallRegistry(encoding_factory=lambda: MixEncoding(self.encode_pool, new_encoder))
        if signing_key is None:
            key_file = Path(self.settings.key_file) if self.settings.key_file else None
            signing_key = SigningKey.generate() if self.settings.ephemeral_key else SigningKey.load_or_create(key_file)
        self.signing_key = signing_key
        self.hub: NotificationHub | None = None
        self.cluster: ClusterNode | None = None
        """This server's node of a cluster (`settings.cluster`, `--redis`); None for the embedded default."""
        self._stopped = False
        self._app = None
        self._http: LoopbackServer | None = None
        self.port = self.settings.port

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def app(self):
        if self._app is None:
            raise RuntimeError("the server is not started")
        return self._app

    async def start(self) -> None:
        if self.settings.accept_foreign_tokens and self.settings.auth:
            log.warning(
                "accepting other issuers' tokens (e.g. Entra ID's) WITHOUT verifying their signature "
                "(--accept-foreign-tokens): anyone who can reach this server can forge one; local testing only"
            )
        configure_ice(self.settings.ice_addresses)
        if self.encode_pool is None:
            self.encode_pool = EncodePool.for_cores(self.settings.encode_threads)
        # the hub starts delivery tasks, so it is made inside the running loop
        self.hub = NotificationHub(self.registry.events, self.signing_key)
        self._app = create_app(self.registry, self.settings, self.signing_key, self.hub)
        served = self._app
        cluster = self.settings.cluster
        if cluster is not None:  # imported only here: without --redis nothing of the cluster (or redis) is loaded
            from .cluster.node import ClusterNode

            self.cluster = ClusterNode(cluster, self.registry, self.signing_key, self.hub)
            served = self.cluster.wrap(self._app)
        self._http = LoopbackServer(
            served, self.settings.host, self.settings.port, self.settings.log_level,
            shared_fd=cluster.listen_fd if cluster is not None else None,
        )
        await self._http.start()
        self.port = self._http.port
        if self.cluster is not None:
            try:
                await self.cluster.start(self.base_url)  # raises ClusterError (with the reason) if it cannot join
            except Exception:
                await self._http.stop()
                raise
            self.cluster.install_metrics(self._app)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        await self.registry.close()
        if self._app is not None:
            await self._app.state.mediamute.invitations.close()
        if self.cluster is not None:  # after the calls ended (their records say so), leave the cluster
            await self.cluster.stop()
        if self.hub is not None:
            await self.hub.close()
        if self._http is not None:
            await self._http.stop()
        if self.encode_pool is not None:
            self.encode_pool.close()
            self.encode_pool = None

    # the in-process interface for embedding ---------------------------------------------------------------
    def subscribe_audit(self, call_id: str, on_record: Callable[[TickRecord], None]) -> Callable[[], None]:
        """Call `on_record` with every contributor-audit record of the call, as each tick is mixed; returns the
        function that ends the subscription (safe to call twice).

        In-process interface for embedding: `on_record` runs on the server's event loop inside the tick, so it
        must be quick. The call's own audit is a bounded ring; a subscriber that must keep every record of a run
        (the demo's report) collects them here. Raises CallNotFound / CallTerminated for a call that is not live.
        """
        call = self.registry.live(call_id)

        def on_tick(_deadline: float) -> None:
            record = call.mixer.audit.last()
            if record is not None:
                on_record(record)

        call.tick_listeners.append(on_tick)

        def unsubscribe() -> None:
            if on_tick in call.tick_listeners:
                call.tick_listeners.remove(on_tick)

        return unsubscribe

    async def __aenter__(self) -> "MediamuteServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        if self._http is None:
            await self.start()
        assert self._http is not None and self._http.task is not None
        try:
            await self._http.task
        finally:
            await self.stop()
