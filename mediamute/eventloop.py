"""The one place that chooses the event loop for everything mediamute runs: `serve`, `demo`, `join`, `bench` and the
benchmark's server and clients processes.

uvloop (asyncio's loop on libuv, in C) when it is installed: the server's loop wakes for every datagram and every
timer, and uvloop does that bookkeeping in C rather than in `asyncio.base_events`. The standard loop keeps working
without it (and is what the test suite runs on, except the test that runs a call on uvloop).
`MEDIAMUTE_LOOP=asyncio` forces the standard loop, `MEDIAMUTE_LOOP=uvloop` insists on uvloop (an error if it is
missing); unset or `auto` takes uvloop when it can. The benchmark's children inherit the variable, so
`mediamute bench --loop asyncio` measures both under the same code.

uvicorn parses HTTP with httptools when it is installed (its `http="auto"`), whichever loop runs it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

LoopKind = Literal["uvloop", "asyncio"]
LOOP_ENV = "MEDIAMUTE_LOOP"
CHOICES = ("auto", "uvloop", "asyncio")

T = TypeVar("T")


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def loop_kind(requested: str | None = None) -> LoopKind:
    """Which loop to run: `requested`, else $MEDIAMUTE_LOOP, else uvloop if installed, else asyncio's."""
    choice = (requested or os.environ.get(LOOP_ENV) or "auto").strip().lower()
    if choice not in CHOICES:
        raise ValueError(f"{LOOP_ENV} must be one of {', '.join(CHOICES)}, not {choice!r}")
    if choice == "asyncio":
        return "asyncio"
    if uvloop_available():
        return "uvloop"
    if choice == "uvloop":
        raise RuntimeError("uvloop was asked for but is not installed (pip install uvloop)")
    return "asyncio"


def loop_factory(kind: LoopKind) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], requested: str | None = None) -> T:
    """`asyncio.run(main)` on the chosen loop."""
    try:
        factory = loop_factory(loop_kind(requested))
    except Exception:
        main.close()  # never started: no "coroutine was never awaited" warning on top of the error
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def running_loop_kind() -> LoopKind:
    """Which kind of loop runs the calling coroutine (for reports)."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
