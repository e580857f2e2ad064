"""The bench's profile tooling: per-thread CPU from /proc, and bench/profile_breakdown.py's sorting of py-spy stacks
into stages, scaled by each thread's measured CPU (pure data in, figures out)."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from pathlib import Path

import pytest

from mediamute.benchmark.procstat import MAIN_THREAD, CpuWindow

BREAKDOWN = Path(__file__).parent.parent / "bench" / "profile_breakdown.py"


@pytest.fixture(scope="module")
def breakdown():
    spec = importlib.util.spec_from_file_location("profile_breakdown", BREAKDOWN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_cpu_window_names_the_main_thread_and_sees_a_busy_one():
    import os

    window = CpuWindow(os.getpid())
    window.start(time.monotonic())
    done = threading.Event()

    def spin() -> None:
        from mediamute.rtc.encode_pool import name_native_thread

        name_native_thread("busy-spinner")
        start = time.thread_time()
        while time.thread_time() - start < 0.05:  # 50 ms of CPU, however long that takes
            pass
        done.set()
        time.sleep(0.2)  # stay alive until the window closes

    thread = threading.Thread(target=spin)
    thread.start()
    assert done.wait(30)
    window.stop(time.monotonic())
    thread.join()
    names = {t.name for t in window.threads}
    assert MAIN_THREAD in names and "busy-spinner" in names
    assert next(t for t in window.threads if t.name == "busy-spinner").percent > 0


RAW = """\
thread (100): MainThread;<module> (x.py);Runner.run (asyncio/runners.py);BaseEventLoop._run_once (asyncio/base_events.py);EpollSelector.select (selectors.py) 40
thread (100): MainThread;<module> (x.py);Handle._run (asyncio/events.py);MixClock._fire (mediamute/media/clock.py);Call._tick (mediamute/calls/call.py);Mixer.tick (mediamute/media/mixer.py);Mixer._mix (mediamute/media/mixer.py) 10
thread (100): MainThread;<module> (x.py);Handle._run (asyncio/events.py);MixEncoding.tick_done (mediamute/rtc/encoding.py);TickBatch.deliver (mediamute/rtc/encode_pool.py);MixOutlet.__call__ (mediamute/rtc/rtp_send.py);LeanRtpSender.send (mediamute/rtc/rtp_send.py);Session.protect (pylibsrtp/__init__.py);Session.__process (pylibsrtp/__init__.py) 5
thread (100): MainThread;<module> (x.py);LeanRtpSender.send (mediamute/rtc/rtp_send.py);LeanRtpSender._write (mediamute/rtc/rtp_send.py) 5
thread (100): MainThread;<module> (x.py);RTCDtlsTransport._recv_next (aiortc/rtcdtlstransport.py);Session.unprotect (pylibsrtp/__init__.py);Session.__process (pylibsrtp/__init__.py) 10
thread (100): MainThread;<module> (x.py);RTCRtpReceiver._handle_rtp_packet (aiortc/rtcrtpreceiver.py);InlineDecoder.add (mediamute/rtc/gate_adapter.py);MonoOpusDecoder.decode (mediamute/rtc/codec.py) 20
thread (100): MainThread;<module> (x.py);RTCRtpReceiver._handle_rtp_packet (aiortc/rtcrtpreceiver.py);StreamStatistics.add (aiortc/rtcrtpreceiver.py) 10
thread (200): mm-encode-0;Thread._bootstrap (threading.py);EncodePool._work (mediamute/rtc/encode_pool.py) 60
thread (200): mm-encode-0;Thread._bootstrap (threading.py);EncodePool._work (mediamute/rtc/encode_pool.py);TickBatch.encode (mediamute/rtc/encode_pool.py);LibopusEncoder.encode (mediamute/rtc/mix_encoder.py) 40
"""


def test_stacks_are_sorted_into_stages_and_scaled_by_each_threads_measured_cpu(breakdown, tmp_path):
    profile = tmp_path / "p.raw"
    profile.write_text(RAW)
    threads = breakdown.read_profile(profile)
    main, pool = threads[100], threads[200]
    assert main.stages[breakdown.IDLE] == 40 and main.active == 60
    assert main.stages[breakdown.MIX] == 10 and main.stages[breakdown.TX_SRTP] == 5
    assert main.stages[breakdown.TX_SENDTO] == 5 and main.stages[breakdown.RX_SRTP] == 10
    assert main.stages[breakdown.RX_DECODE] == 20 and main.stages[breakdown.RX_STATS] == 10
    assert pool.stages[breakdown.IDLE] == 60 and pool.stages[breakdown.ENCODE] == 40

    results = tmp_path / "r.json"
    results.write_text(json.dumps({
        "profile": {"path": str(profile)}, "server_cpu_percent": 33.0,
        "server_threads": [{"tid": 100, "name": "main", "percent": 30.0}, {"tid": 200, "name": "mm-encode-0", "percent": 3.0}],
        "config": {"participants": 3, "scenario": "all-talking"},
    }))
    run = breakdown.run_from_bench(results)
    assert run.stages[breakdown.RX_DECODE] == pytest.approx(30.0 * 20 / 60)  # the main thread's 30 % shared out
    assert run.stages[breakdown.ENCODE] == pytest.approx(3.0)  # all of the pool thread's active samples
    assert sum(run.stages.values()) == pytest.approx(33.0)
    lines: list[str] = []
    breakdown.main([str(results)], out=lines.append)
    table = lines[0]
    assert "| receive: Opus decode (libopus: decode, FEC, concealment) | 666.7 | 3.333 | 30.3 % |" in table  # 10 % of a core / 3 participants
    assert "server process, /proc" in table


def test_the_receive_paths_jitter_buffer_and_its_decodes_on_the_pool_have_their_own_stages(breakdown):
    frames = lambda text: [breakdown.parse_frame(f) for f in text.split(";")]  # noqa: E731
    arrival = "RTCRtpReceiver._handle_rtp_packet (aiortc/rtcrtpreceiver.py);ReceivePath.add (mediamute/rtc/receive.py);PlayoutBuffer.insert (mediamute/media/jitter.py)"
    gate = "RTCRtpReceiver._handle_rtp_packet (aiortc/rtcrtpreceiver.py);ReceivePath.add (mediamute/rtc/receive.py);GateFront._admit (mediamute/rtc/gate_adapter.py)"
    pooled = "Thread._bootstrap (threading.py);EncodePool._work (mediamute/rtc/encode_pool.py);DecodeBatch.run (mediamute/rtc/decode_pool.py);PendingDecode.run (mediamute/rtc/receive.py);ReceivePath._decode (mediamute/rtc/receive.py);OpusDecoder._run (mediamute/rtc/opus.py)"
    landed = "Handle._run (asyncio/events.py);Call._finish_tick (mediamute/calls/call.py);Mixer.finish_tick (mediamute/media/mixer.py);PendingDecode.complete (mediamute/rtc/receive.py);ReceivePath._landed (mediamute/rtc/receive.py)"
    admitted = "Handle._run (asyncio/events.py);Call._finish_tick (mediamute/calls/call.py);Mixer.finish_tick (mediamute/media/mixer.py);Mixer._admit (mediamute/media/mixer.py);Mixer._queue (mediamute/media/mixer.py)"
    assert breakdown.classify(frames(arrival)) == breakdown.RX_JITTER
    assert breakdown.classify(frames(gate)) == breakdown.RX_GATE
    assert breakdown.classify(frames(pooled)) == breakdown.RX_DECODE
    assert breakdown.classify(frames(landed)) == breakdown.RX_JITTER
    assert breakdown.classify(frames(admitted)) == breakdown.RX_INBOX
