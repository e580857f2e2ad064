// The WHIP session: one RTCPeerConnection sending a local audio track and receiving the call's mix, joined by
// POSTing its offer to /whip/{call} and left by DELETEing the resource the answer names.

import { request } from './api.js';

const ICE_GATHERING_TIMEOUT_MS = 5000;

// Resolves once ICE gathering is complete, or after `timeoutMs` (the offer then carries what was gathered so far).
function waitForIceGathering(pc, timeoutMs) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      pc.removeEventListener('icecandidate', onCandidate);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    const onCandidate = (event) => { if (!event.candidate) done(); };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener('icegatheringstatechange', check);
    pc.addEventListener('icecandidate', onCandidate);
  });
}

export class WhipSession {
  // onTrack(stream): the call's mix arrived; onConnectionState(state): the peer connection's state changed.
  constructor({ onTrack, onConnectionState }) {
    this.onTrack = onTrack;
    this.onConnectionState = onConnectionState;
    this.pc = null;
    this.location = null; // the WHIP resource: DELETE it to leave
    this.sessionToken = null; // acts for this participant (self-mute, self-unmute, leave, event stream)
    this.participantId = null;
  }

  get connectionState() {
    return this.pc ? this.pc.connectionState : 'closed';
  }

  // Offer `stream`'s audio track to the call as `displayName`, with the application token; `progress(text)` says
  // what it is waiting for.
  async join(callId, displayName, appToken, stream, progress) {
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendrecv', streams: [stream] });
    pc.addEventListener('track', (event) => this.onTrack(event.streams[0] || new MediaStream([event.track])));
    pc.addEventListener('connectionstatechange', () => this.onConnectionState(pc.connectionState));
    progress('gathering network candidates…');
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc, ICE_GATHERING_TIMEOUT_MS);
    progress('joining…');
    // On a cluster the node this page came from may answer 307 to the node that holds the call: fetch follows it
    // (the redirect carries its own short token, since Authorization is not sent to another origin, and that node
    // answers CORS). The session's Location is a path: used from this page it goes to this page's node, which
    // relays it to the owner.
    const response = await request('POST', `/whip/${encodeURIComponent(callId)}?displayName=${encodeURIComponent(displayName)}`, {
      token: appToken,
      sdp: pc.localDescription.sdp,
    });
    this.location = response.headers.get('Location');
    this.sessionToken = response.headers.get('Mediamute-Session-Token');
    this.participantId = this.location.replace(/\/+$/, '').split('/').pop();
    await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
  }

  // Leave the call (the server removes the participant); the peer connection stays until close().
  async leave() {
    if (this.location) await request('DELETE', this.location, { token: this.sessionToken });
  }

  // Best effort for a tab that goes away: keepalive lets the request outlive the page.
  leaveOnUnload() {
    if (this.location && this.sessionToken) {
      fetch(this.location, { method: 'DELETE', headers: { Authorization: `Bearer ${this.sessionToken}` }, keepalive: true }).catch(() => {});
    }
  }

  close() {
    if (this.pc) { try { this.pc.close(); } catch (_) { /* closed already */ } }
    this.pc = null;
  }

  // After leaving: this page no longer acts as that participant.
  forget() {
    this.location = null;
    this.sessionToken = null;
    this.participantId = null;
  }
}
