"""The `mediamute` command line: serve (and, as they land, demo, join, bench, token)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Optional

import typer
from rich.console import Console

from .server import MediamuteServer
from .settings import ServerSettings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="mediamute: a local media-plane simulator of server-side mute in a WebRTC group call.",
)
console = Console()

IceAddresses = Annotated[
    Optional[str],
    typer.Option(
        "--ice-addresses",
        help="Host candidates ICE offers: default 127.0.0.1 only; 'auto' for the machine's interfaces (LAN "
        "calls); or a comma-separated list of IPs.",
    ),
]
IceServers = Annotated[
    Optional[list[str]],
    typer.Option("--ice-server", help="A STUN/TURN URL (repeatable). None by default: no public STUN."),
]


@app.callback()
def _root() -> None:
    """mediamute: a local media-plane simulator of server-side mute in a WebRTC group call."""


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind the HTTP API and WHIP endpoint to.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port (0: any free port).")] = 8080,
    ice_addresses: IceAddresses = None,
    ice_server: IceServers = None,
    no_jitter_reset: Annotated[
        bool, typer.Option("--no-jitter-reset", help="Do not reset the jitter buffer on unmute (to measure it).")
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the Graph-shaped calls API, WHIP and the media server on 127.0.0.1."""
    _logging(log_level)
    settings = ServerSettings(
        host=host,
        port=port,
        ice_addresses=ice_addresses,
        ice_servers=list(ice_server or []),
        reset_jitter_on_unmute=not no_jitter_reset,
        log_level=log_level,
    )
    server = MediamuteServer(settings)

    async def run() -> None:
        try:
            await server.start()
        except OSError as exc:
            console.print(f"[bold red]cannot listen on {host}:{port}:[/] {exc.strerror}")
            raise typer.Exit(2) from None
        base = server.base_url
        console.print(f"[bold green]mediamute[/] listening on [link={base}]{base}[/link]")
        console.print(f"  create a call:  curl -X POST {base}/v1.0/communications/calls -H 'Content-Type: application/json' -d '{{}}'")
        console.print(f"  join (WHIP):    POST {base}/whip/<callId>?displayName=NAME  (Content-Type: application/sdp)")
        console.print(f"  API docs:       {base}/docs")
        await server.serve_forever()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


def main() -> None:
    app()


if __name__ == "__main__":
    main()
