"""The `mediamute` command line: serve (and, as they land, demo, join, bench, token)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Optional

import typer
from rich.console import Console

from pathlib import Path

from .server import MediamuteServer
from .settings import ServerSettings
from .tokens import ALL_CALL_ROLES, SigningKey, default_key_file

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
KeyFile = Annotated[
    Optional[Path],
    typer.Option("--key-file", help=f"The signing key (PEM; created if missing). Default: {default_key_file()}"),
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
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Accept requests without tokens (local play).")] = False,
    key_file: KeyFile = None,
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
        auth=not no_auth,
        key_file=str(key_file) if key_file else None,
    )
    server = MediamuteServer(settings)

    async def run() -> None:
        try:
            await server.start()
        except OSError as exc:
            console.print(f"[bold red]cannot listen on {host}:{port}:[/] {exc.strerror}")
            raise typer.Exit(2) from None
        base = server.base_url
        token = server.signing_key.app_token(list(ALL_CALL_ROLES))
        auth = f" -H 'Authorization: Bearer {token}'" if settings.auth else ""
        console.print(f"[bold green]mediamute[/] listening on [link={base}]{base}[/link]")
        page = f"{base}/?token={token}" if settings.auth else f"{base}/"
        console.print(f"  web page:       {page}", soft_wrap=True)
        console.print(f"  API docs:       {base}/docs")
        console.print(f"  create a call:  curl -X POST {base}/v1.0/communications/calls{auth} -H 'Content-Type: application/json' -d '{{}}'", soft_wrap=True)
        console.print(f"  join (WHIP):    POST {base}/whip/<callId>?displayName=NAME  (Content-Type: application/sdp)", soft_wrap=True)
        if settings.auth:
            console.print(f"  token (all calls roles, 24 h):\n{token}", soft_wrap=True)
        else:
            console.print("  [yellow]auth is off[/]: any request is accepted")
        await server.serve_forever()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


@app.command()
def token(
    role: Annotated[
        Optional[list[str]],
        typer.Option("--role", help=f"A Graph application role (repeatable). Default: all of {', '.join(ALL_CALL_ROLES)}."),
    ] = None,
    join: Annotated[Optional[str], typer.Option("--join", metavar="CALL_ID", help="Mint a join token for this call.")] = None,
    delegated: Annotated[bool, typer.Option("--delegated", help="A delegated (scp) token, which the API refuses.")] = False,
    hours: Annotated[float, typer.Option(help="Lifetime in hours.")] = 24.0,
    key_file: KeyFile = None,
) -> None:
    """Mint a development token that `mediamute serve` (same key file) accepts."""
    key = SigningKey.load_or_create(key_file)
    lifetime = hours * 3600
    if join:
        typer.echo(key.join_token(join, lifetime))
    elif delegated:
        typer.echo(key.delegated_token(lifetime=lifetime))
    else:
        typer.echo(key.app_token(list(role or ALL_CALL_ROLES), lifetime))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
