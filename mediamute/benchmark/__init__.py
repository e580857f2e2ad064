"""`mediamute bench`: a live loopback call of N participants, measured.

The server runs in its own process (`python -m mediamute.benchmark.server`), the cheap clients in another
(`python -m mediamute.benchmark.clients`), and `run.py` orchestrates both from the `mediamute bench` process,
so the server's CPU figure (utime + stime of its process, all threads, from /proc) holds nothing but the server.
"""

from .run import BenchConfig, run_bench

__all__ = ["BenchConfig", "run_bench"]
