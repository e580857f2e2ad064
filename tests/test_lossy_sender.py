"""Over real WebRTC: a participant whose real sender loses and reorders packets is still heard continuously by the
others, its lost frames rebuilt from in-band FEC by the server's receive path; a mute of it still leaks nothing."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mediamute.analysis import tone_amplitudes
from mediamute.client import CallParticipant
from mediamute.rtc.sender_faults import SenderFaults
from mediamute.sources import SyllableToneSource, ToneSource

from .helpers import A, CALLS, admin_token, amplitude, assert_tone_stops, hear_for, leave_all, wait_until

pytestmark = pytest.mark.integration


async def test_a_lossy_reordering_sender_is_heard_continuously_and_its_mute_leaks_nothing(server, http, call_id):
    token = admin_token(server)
    # a sender that sizes its FEC for 10 % loss from the start (a browser does once its first reports show the loss;
    # tests/test_sender_fec.py follows that adaptation): what is judged here is the server's receive path
    lossy = CallParticipant(server.base_url, call_id, SyllableToneSource(440), display_name="lossy", token=token,
                            expected_loss=10)
    b = CallParticipant(server.base_url, call_id, ToneSource(660), display_name="b", token=token)
    c = CallParticipant(server.base_url, call_id, ToneSource(880), display_name="c", token=token)
    participants = [lossy, b, c]
    for p in participants:
        await p.join()
    call = server.registry.get(call_id)
    try:
        await hear_for(participants, 1.0)
        faults = SenderFaults(lossy.pc.getSenders()[0])
        faults.reorder_every(10, 3)  # every tenth packet overtaken by the next one (a 20 ms reordering)
        faults.lose_every(10, 7)  # and every tenth lost: 10 % loss, never two in a row
        path = call.participant(lossy.participant_id).media.receive_path
        await wait_until(lambda: faults.lost >= 10, timeout=5)  # the buffer has seen the reordering and adapted
        t0 = time.monotonic()
        await wait_until(lambda: faults.lost >= 40, timeout=10)  # four more seconds of it
        t1 = time.monotonic()
        await hear_for([b, c], 0.3)  # what the listeners play of [t0, t1) has arrived

        # the server: packets lost and reordered on the way, the lost frames rebuilt from FEC (or concealed)
        counters = path.buffer.counters
        assert counters.reordered >= 30 and counters.recovered >= 20, counters
        assert counters.recovered >= 0.6 * faults.lost, (counters, faults.lost)  # most losses rebuilt from FEC
        audit = call.mixer.audit.between(t0, t1)
        assert sum(lossy.participant_id in r.recovered for r in audit) >= 15
        assert sum(lossy.participant_id in r.contributors for r in audit) >= len(audit) - 3  # in (nearly) every mix

        # the listeners: the 440 Hz tone at its level, continuously (a dropout would pull the low percentile down)
        for listener in (b, c):
            _, frames = listener.recording.window(t0 + 0.2, t1)
            levels = tone_amplitudes(frames, 440)
            assert len(frames) >= 150
            assert np.median(levels) == pytest.approx(A, rel=0.1), listener.display_name
            # what the server sent the listener, that is every frame the listener did not have to conceal itself (on a
            # loaded machine its own downlink has hiccups too, which are not the lossy talker's): continuous, no
            # dropout (three frames in a row below a quarter of the tone). With one packet in ten lost, a rebuilt or
            # concealed frame (and the frame after it, where the decoder finds its way back) may be off by more than
            # 20 %; the rest is not
            own = listener.recording.concealed_in(t0 + 0.2, t1)
            assert own.mean() <= 0.1, listener.display_name
            delivered = levels[~own]
            weak = np.concatenate(([0], (delivered < 0.25 * A).astype(int), [0]))
            edges = np.flatnonzero(np.diff(weak))
            longest_dip = int((edges[1::2] - edges[::2]).max()) if edges.size else 0
            assert longest_dip <= 2, (listener.display_name, np.round(delivered / A, 2))  # no dropout of 60 ms
            assert np.mean(np.abs(delivered - A) < 0.2 * A) >= 0.8, (listener.display_name, np.sort(delivered)[:30])
            assert amplitude(listener, 660 if listener is c else 880, t0, t1) == pytest.approx(A, rel=0.1)

        # a mute of the lossy talker: no frame of it after the 200 OK, not even a concealed one, and its tone stops
        response = await http.post(f"{CALLS}/{call_id}/participants/{lossy.participant_id}/mute", json={})
        assert response.status_code == 200
        muted_at = call.operation(response.json()["id"]).completed_monotonic
        sent = time.monotonic()
        await hear_for([b, c], 1.0)
        assert call.mixer.audit.frames_from(lossy.participant_id, muted_at) == 0
        assert not any(lossy.participant_id in r.concealed for r in call.mixer.audit.between(muted_at))
        assert path.buffer.depth == 0
        for listener in (b, c):
            assert_tone_stops(listener, 440, sent)
    finally:
        await leave_all(participants)
