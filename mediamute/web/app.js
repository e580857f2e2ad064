// mediamute web client: create or join a call over WHIP, hear the mix, watch the roster, mute people.
// Plain JavaScript (no build step, no CDN); standard APIs only, so it runs in Chromium and Firefox.
//
// Tokens: the page's URL carries `?token=` (what `mediamute serve` prints). It is kept for this tab in
// sessionStorage and removed from the address bar. Graph requests (create, mute, unmute someone) use it;
// the WHIP answer's session token acts for this participant (self-mute, self-unmute, leave, event stream).
'use strict';

(() => {
  const $ = (selector) => document.querySelector(selector);
  const TOKEN_KEY = 'mediamute.token';
  const NAME_KEY = 'mediamute.displayName';
  const ICE_GATHERING_TIMEOUT_MS = 5000;
  const METER_FLOOR_DB = -60; // meters span -60 dB .. 0 dB
  const GRAPH = '/v1.0/communications/calls';

  const state = {
    appToken: null,
    callId: null,
    call: null,
    allowSelfUnmute: null,
    participantId: null,
    sessionToken: null,
    whipLocation: null,
    pc: null,
    localStream: null,
    toneNodes: null,
    audioContext: null,
    analyser: null,
    remoteStream: null,
    micMuted: false,
    ws: null,
    wsWanted: false,
    wsRetry: 0,
    wsRetryTimer: null,
    participants: new Map(), // id -> Graph participant resource
    stats: new Map(), // id -> latest stats entry
    rows: new Map(), // id -> row elements and meter state
    joined: false,
    leaving: false,
  };

  // ---------------------------------------------------------------------------------------------------------
  // errors: every failed API call shows Graph's error message
  class ApiError extends Error {
    constructor(status, code, message, requestId) {
      super(message);
      this.status = status;
      this.code = code;
      this.requestId = requestId;
    }
  }

  function showError(error, context) {
    const box = document.createElement('div');
    box.className = 'error';
    box.dataset.testid = 'error';
    const text = document.createElement('div');
    text.className = 'error-text';
    const title = document.createElement('strong');
    title.textContent = context ? `${context}: ` : '';
    const message = document.createElement('span');
    message.className = 'error-message';
    message.textContent = error && error.message ? error.message : String(error);
    text.append(title, message);
    const meta = document.createElement('div');
    meta.className = 'error-meta';
    if (error instanceof ApiError) {
      meta.textContent = [error.status ? `HTTP ${error.status}` : '', error.code, error.requestId ? `request-id ${error.requestId}` : '']
        .filter(Boolean).join(' · ');
    }
    const close = document.createElement('button');
    close.className = 'error-close';
    close.type = 'button';
    close.setAttribute('aria-label', 'dismiss');
    close.textContent = '×';
    close.addEventListener('click', () => box.remove());
    box.append(text, meta, close);
    $('#errors').prepend(box);
    while ($('#errors').children.length > 4) $('#errors').lastElementChild.remove();
    setTimeout(() => box.classList.add('fading'), 19200);
    setTimeout(() => box.remove(), 20000);
    logActivity(`${context ? context + ': ' : ''}${message.textContent}`, 'is-error');
  }

  async function api(method, path, { token, json, sdp } = {}) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    let body;
    if (sdp !== undefined) {
      headers['Content-Type'] = 'application/sdp';
      body = sdp;
    } else if (json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(json);
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body, cache: 'no-store' });
    } catch (err) {
      throw new ApiError(0, 'NetworkError', `The server cannot be reached (${err.message}).`);
    }
    if (!response.ok) {
      let code = `HTTP ${response.status}`;
      let message = response.statusText || 'The request failed.';
      let requestId = response.headers.get('request-id');
      try {
        const payload = await response.json();
        if (payload && payload.error) {
          code = payload.error.code || code;
          message = payload.error.message || message;
          requestId = (payload.error.innerError && payload.error.innerError['request-id']) || requestId;
        }
      } catch (_) { /* not JSON: keep the status text */ }
      throw new ApiError(response.status, code, message, requestId);
    }
    return response;
  }

  // ---------------------------------------------------------------------------------------------------------
  // start-up: token and call from the URL
  function readUrl() {
    const params = new URLSearchParams(window.location.search);
    const token = params.get('token');
    if (token) {
      try { sessionStorage.setItem(TOKEN_KEY, token); } catch (_) { /* storage off: keep it in memory */ }
    }
    try { state.appToken = token || sessionStorage.getItem(TOKEN_KEY); } catch (_) { state.appToken = token; }
    const call = params.get('call');
    if (call) setCall(call);
    updateUrl();
  }

  function updateUrl() {
    // Keep the token out of the address bar (screen shares, screenshots); the tab remembers it.
    const params = new URLSearchParams();
    if (state.callId) params.set('call', state.callId);
    const query = params.toString();
    history.replaceState(null, '', query ? `/?${query}` : '/');
  }

  function setCall(callId) {
    state.callId = callId;
    $('#call-id').textContent = callId;
    $('#call-known').hidden = false;
    $('#call-unknown').hidden = true;
    $('#join').disabled = false;
    $('#call-summary').textContent = 'connecting to the call…';
    updateUrl();
    connectEvents();
  }

  function clearCall() {
    disconnectEvents();
    state.callId = null;
    state.call = null;
    state.participants.clear();
    state.stats.clear();
    $('#call-known').hidden = true;
    $('#call-unknown').hidden = false;
    $('#join').disabled = true;
    updateUrl();
  }

  async function createCall() {
    const button = $('#create-call');
    button.disabled = true;
    try {
      const allow = $('#allow-self-unmute').checked;
      const response = await api('POST', GRAPH, { token: state.appToken, json: allow ? {} : { mediamute: { allowSelfUnmute: false } } });
      const call = await response.json();
      logActivity(`call ${call.id} created`);
      setCall(call.id);
    } catch (err) {
      showError(err, 'Creating the call failed');
    } finally {
      button.disabled = false;
    }
  }

  // An invite: this page's address with a join token for the call (it may join and watch, not mute others).
  async function copyInvite(button) {
    button.disabled = true;
    try {
      const response = await api('POST', `/ext/calls/${encodeURIComponent(state.callId)}/joinTokens`, { token: state.appToken });
      const { token } = await response.json();
      const link = `${window.location.origin}/?call=${encodeURIComponent(state.callId)}&token=${encodeURIComponent(token)}`;
      const output = button.closest('.card').querySelector('.invite-output');
      try {
        await navigator.clipboard.writeText(link);
        output.hidden = true;
        logActivity('invite link copied: whoever opens it joins this call (and cannot mute others)');
        const label = button.textContent;
        button.textContent = 'Copied!';
        setTimeout(() => { button.textContent = label; }, 1500);
      } catch (_) {
        output.value = link; // no clipboard access: show the link to copy by hand
        output.hidden = false;
        output.select();
      }
    } catch (err) {
      showError(err, 'Making an invite link failed');
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // media: a microphone or a test tone out, the mix in (played by an <audio> element, measured by an analyser)
  async function openSource(kind) {
    if (kind === 'tone') {
      const ctx = state.audioContext;
      const frequency = Math.min(4000, Math.max(100, Number($('#tone-frequency').value) || 880));
      const oscillator = ctx.createOscillator();
      oscillator.frequency.value = frequency;
      const gain = ctx.createGain();
      gain.gain.value = 0.25;
      const destination = ctx.createMediaStreamDestination();
      oscillator.connect(gain).connect(destination);
      oscillator.start();
      state.toneNodes = { oscillator, gain };
      return { stream: destination.stream, label: `test tone ${frequency} Hz` };
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error('This page needs a secure context for the microphone: open it at http://127.0.0.1 or https.');
    }
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      video: false,
    });
    const track = stream.getAudioTracks()[0];
    return { stream, label: track && track.label ? track.label : 'microphone' };
  }

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
      const timer = setTimeout(done, timeoutMs); // send what was gathered so far
      pc.addEventListener('icegatheringstatechange', check);
      pc.addEventListener('icecandidate', onCandidate);
    });
  }

  function attachRemote(stream) {
    if (state.remoteStream === stream) return;
    state.remoteStream = stream;
    // Chrome keeps a remote WebRTC stream silent in WebAudio unless a media element plays it too.
    const audio = $('#remote-audio') || Object.assign(document.createElement('audio'), { id: 'remote-audio', autoplay: true });
    if (!audio.isConnected) document.body.append(audio);
    audio.srcObject = stream;
    audio.play().then(() => { $('#play-audio').hidden = true; }).catch(() => { $('#play-audio').hidden = false; });
    const ctx = state.audioContext;
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 8192;
    analyser.smoothingTimeConstant = 0;
    ctx.createMediaStreamSource(stream).connect(analyser); // measured only: the <audio> element is what you hear
    state.analyser = analyser;
  }

  async function join() {
    if (!state.callId || state.joined) return;
    const name = $('#display-name').value.trim() || 'Browser';
    try { localStorage.setItem(NAME_KEY, name); } catch (_) { /* ignore */ }
    const kind = document.querySelector('input[name="source"]:checked').value;
    const button = $('#join');
    button.disabled = true;
    const progress = (text) => { $('#join-progress').textContent = text; };
    try {
      // Made inside the click: both browsers then let it run (autoplay policies).
      state.audioContext = state.audioContext || new AudioContext();
      await state.audioContext.resume();
      progress(kind === 'mic' ? 'opening the microphone…' : 'starting the test tone…');
      const source = await openSource(kind);
      state.localStream = source.stream;
      const pc = new RTCPeerConnection({ iceServers: [] });
      state.pc = pc;
      pc.addTransceiver(source.stream.getAudioTracks()[0], { direction: 'sendrecv', streams: [source.stream] });
      pc.addEventListener('track', (event) => attachRemote(event.streams[0] || new MediaStream([event.track])));
      pc.addEventListener('connectionstatechange', () => setConnection(pc.connectionState));
      progress('gathering network candidates…');
      await pc.setLocalDescription(await pc.createOffer());
      await waitForIceGathering(pc, ICE_GATHERING_TIMEOUT_MS);
      progress('joining…');
      const response = await api('POST', `/whip/${encodeURIComponent(state.callId)}?displayName=${encodeURIComponent(name)}`, {
        token: state.appToken,
        sdp: pc.localDescription.sdp,
      });
      state.whipLocation = response.headers.get('Location');
      state.sessionToken = response.headers.get('Mediamute-Session-Token');
      state.participantId = state.whipLocation.replace(/\/+$/, '').split('/').pop();
      await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
      state.joined = true;
      state.micMuted = false;
      $('#me-name').textContent = name;
      $('#me-source').textContent = source.label;
      $('#setup').hidden = true;
      $('#incall').hidden = false;
      document.body.classList.add('in-call');
      progress('');
      logActivity(`you joined as ${name} (${source.label})`);
      connectEvents(true); // again, as this participant: its session token watches the call too
      renderRoster();
    } catch (err) {
      progress('');
      showError(err, 'Joining failed');
      await teardownMedia();
      button.disabled = false;
    }
  }

  async function teardownMedia() {
    if (state.pc) { try { state.pc.close(); } catch (_) { /* closed already */ } }
    state.pc = null;
    if (state.localStream) state.localStream.getTracks().forEach((t) => t.stop());
    state.localStream = null;
    if (state.toneNodes) { try { state.toneNodes.oscillator.stop(); } catch (_) { /* stopped */ } }
    state.toneNodes = null;
    const audio = $('#remote-audio');
    if (audio) { audio.srcObject = null; audio.remove(); }
    state.remoteStream = null;
    state.analyser = null;
    setConnection('closed');
  }

  async function leave(reason) {
    if (state.leaving) return;
    state.leaving = true;
    const location = state.whipLocation;
    const token = state.sessionToken;
    try {
      if (location && !reason) await api('DELETE', location, { token });
    } catch (err) {
      if (err.status !== 404 && err.status !== 409) showError(err, 'Leaving failed');
    } finally {
      disconnectEvents();
      await teardownMedia();
      state.joined = false;
      state.participantId = null;
      state.sessionToken = null;
      state.whipLocation = null;
      state.leaving = false;
      $('#incall').hidden = true;
      $('#ended').hidden = false;
      document.body.classList.remove('in-call');
      $('#ended-title').textContent = reason ? 'The call has ended' : 'You left the call';
      $('#ended-text').textContent = reason || '';
    }
  }

  async function toggleMic() {
    if (!state.localStream) return;
    const muted = !state.micMuted;
    state.localStream.getAudioTracks().forEach((t) => { t.enabled = !muted; }); // local: silence goes out
    state.micMuted = muted;
    renderMe();
    try {
      await api('POST', `/ext/calls/${state.callId}/participants/${state.participantId}/selfMute`, {
        token: state.sessionToken,
        json: { muted },
      });
    } catch (err) {
      showError(err, 'Reporting your microphone state failed');
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // mute actions
  async function muteParticipant(id, button) {
    button.disabled = true;
    try {
      await api('POST', `${GRAPH}/${state.callId}/participants/${id}/mute`, {
        token: state.appToken,
        json: { clientContext: `web-${Math.random().toString(36).slice(2, 10)}` },
      });
      logActivity(`mute ${nameOf(id)}: done`);
    } catch (err) {
      showError(err, `Muting ${nameOf(id)} failed`);
    } finally {
      button.disabled = false;
    }
  }

  async function unmuteParticipant(id, button) {
    button.disabled = true;
    try {
      await api('POST', `/ext/calls/${state.callId}/participants/${id}/unmute`, { token: state.appToken, json: {} });
      logActivity(`unmute ${nameOf(id)}: done`);
    } catch (err) {
      showError(err, `Unmuting ${nameOf(id)} failed`);
    } finally {
      button.disabled = false;
    }
  }

  async function selfUnmute(button) {
    button.disabled = true;
    try {
      await api('POST', `/ext/calls/${state.callId}/participants/${state.participantId}/selfUnmute`, { token: state.sessionToken });
      logActivity('you unmuted yourself');
    } catch (err) {
      showError(err, 'You cannot unmute yourself');
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // the event stream: snapshot, roster notifications, stats every 100 ms
  function connectEvents(asParticipant = false) {
    if (!state.callId) return;
    if (state.ws && !asParticipant) return;
    disconnectEvents();
    state.wsWanted = true;
    const token = state.sessionToken || state.appToken;
    const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
    const query = token ? `?access_token=${encodeURIComponent(token)}` : '';
    const ws = new WebSocket(`${scheme}://${window.location.host}/ext/calls/${encodeURIComponent(state.callId)}/events${query}`);
    state.ws = ws;
    let refused = false;
    ws.addEventListener('open', () => { state.wsRetry = 0; });
    ws.addEventListener('message', (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (_) { return; }
      if (message.type === 'error') {
        refused = true;
        const error = message.error || {};
        showError(new ApiError(message.status, error.code, error.message || 'The event stream was refused.',
          error.innerError && error.innerError['request-id']), 'Watching the call failed');
        $('#call-summary').textContent = error.message || 'the event stream was refused';
        return;
      }
      handleEvent(message);
    });
    ws.addEventListener('close', () => {
      if (state.ws !== ws) return;
      state.ws = null;
      if (!state.wsWanted || refused || (state.call && state.call.state === 'terminated')) return;
      const delay = Math.min(5000, 500 * 2 ** state.wsRetry++);
      $('#call-summary').textContent = 'event stream lost; reconnecting…';
      state.wsRetryTimer = setTimeout(() => connectEvents(), delay);
    });
  }

  function disconnectEvents() {
    state.wsWanted = false;
    clearTimeout(state.wsRetryTimer);
    if (state.ws) {
      const ws = state.ws;
      state.ws = null;
      try { ws.close(); } catch (_) { /* closed */ }
    }
  }

  function handleEvent(message) {
    if (message.type === 'snapshot') {
      state.call = message.call;
      state.allowSelfUnmute = message.allowSelfUnmute;
      state.participants.clear();
      for (const p of message.participants) state.participants.set(p.id, p);
      if (!state.activitySeeded) {
        state.activitySeeded = true;
        for (const past of message.history || []) describeNotification(past.body, past.at);
      }
      renderAll();
    } else if (message.type === 'notification') {
      for (const item of (message.body && message.body.value) || []) applyNotification(item);
      describeNotification(message.body, message.at);
      renderAll();
    } else if (message.type === 'stats') {
      for (const entry of message.body.participants) state.stats.set(entry.id, entry);
      updateStats();
    }
  }

  function applyNotification(item) {
    const url = item.resourceUrl || '';
    if (url.endsWith('/participants')) {
      for (const p of item.resourceData || []) {
        const known = state.participants.get(p.id);
        if (item.changeType === 'deleted') {
          state.participants.delete(p.id);
          state.stats.delete(p.id);
          if (p.id === state.participantId && state.joined && !state.leaving) {
            setTimeout(() => leave('You were removed from the call.'), 0);
          }
        } else if (!known || (p.rosterSequenceNumber || 0) >= (known.rosterSequenceNumber || 0)) {
          state.participants.set(p.id, p);
        }
      }
    } else if (item.resourceData && item.resourceData.id === state.callId) {
      state.call = item.resourceData;
      if (item.changeType === 'deleted' || state.call.state === 'terminated') {
        state.wsWanted = false;
        if (state.joined) leave('The call was ended by its owner.');
        else $('#call-summary').textContent = 'this call has ended';
      }
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // rendering
  function displayName(p) {
    const identity = (p.info && p.info.identity) || {};
    const who = identity.user || identity.application || identity.guest || {};
    return who.displayName || 'unnamed';
  }

  function nameOf(id) {
    const p = state.participants.get(id);
    return p ? displayName(p) : id;
  }

  function isApplication(p) {
    return Boolean(p.info && p.info.identity && p.info.identity.application);
  }

  function serverMuted(p) {
    return Boolean(p.mediaStreams && p.mediaStreams.some((s) => s.serverMuted));
  }

  function renderAll() {
    renderSummary();
    renderRoster();
    renderMe();
  }

  function renderSummary() {
    if (!state.call) return;
    const people = [...state.participants.values()].filter((p) => !isApplication(p)).length;
    const policy = state.allowSelfUnmute ? 'participants may unmute themselves' : 'participants may not unmute themselves';
    $('#call-summary').textContent = `${state.call.state} · ${people} ${people === 1 ? 'person' : 'people'} in the call · ${policy}`;
    const chip = $('#call-chip');
    chip.hidden = false;
    chip.textContent = `call ${state.callId.slice(0, 8)}…`;
    chip.title = state.callId;
  }

  function renderMe() {
    if (!state.joined) return;
    const mic = $('#toggle-mic');
    mic.textContent = state.micMuted ? 'Unmute my microphone' : 'Mute my microphone';
    mic.classList.toggle('active', state.micMuted);
    const policy = $('#policy');
    policy.textContent = state.allowSelfUnmute === false
      ? 'In this call only the organiser can lift a server mute: you cannot unmute yourself.'
      : 'If the server mutes you, you may unmute yourself.';
  }

  function ensureRow(id) {
    let row = state.rows.get(id);
    if (row) return row;
    const li = $('#row-template').content.firstElementChild.cloneNode(true);
    li.dataset.participantId = id;
    li.dataset.testid = `participant-${id}`;
    row = {
      li,
      name: li.querySelector('.name'),
      tags: li.querySelector('.tags'),
      avatar: li.querySelector('.avatar'),
      fill: li.querySelector('.meter:not(.meter-mix) .meter-fill'),
      mixFill: li.querySelector('.meter-mix .meter-fill'),
      value: li.querySelector('.level-value'),
      serverBadge: li.querySelector('.badge-server'),
      selfBadge: li.querySelector('.badge-self'),
      liveBadge: li.querySelector('.badge-live'),
      drops: li.querySelector('.drops-value'),
      mute: li.querySelector('.mute'),
      unmute: li.querySelector('.unmute'),
      selfUnmute: li.querySelector('.self-unmute'),
      level: 0, target: 0, mix: 0, mixTarget: 0, lastDrops: 0,
    };
    row.mute.addEventListener('click', () => muteParticipant(id, row.mute));
    row.unmute.addEventListener('click', () => unmuteParticipant(id, row.unmute));
    row.selfUnmute.addEventListener('click', () => selfUnmute(row.selfUnmute));
    state.rows.set(id, row);
    return row;
  }

  function renderRoster() {
    const list = $('#roster');
    const ids = [...state.participants.keys()];
    const order = (id) => {
      const p = state.participants.get(id);
      if (id === state.participantId) return 0;
      return isApplication(p) ? 2 : 1;
    };
    ids.sort((a, b) => order(a) - order(b)); // stable: join order within each group
    for (const [id, row] of state.rows) {
      if (!state.participants.has(id)) { row.li.remove(); state.rows.delete(id); }
    }
    ids.forEach((id, index) => {
      const p = state.participants.get(id);
      const row = ensureRow(id);
      const me = id === state.participantId;
      const app = isApplication(p);
      const name = displayName(p);
      const muted = serverMuted(p);
      row.name.textContent = name;
      row.avatar.textContent = (name.trim()[0] || '?').toUpperCase();
      row.avatar.style.setProperty('--hue', String(hue(id)));
      row.tags.replaceChildren(...[me ? 'you' : null, app ? 'application' : null].filter(Boolean).map((t) => {
        const span = document.createElement('span');
        span.className = `tag tag-${t}`;
        span.textContent = t;
        return span;
      }));
      row.li.classList.toggle('is-me', me);
      row.li.classList.toggle('is-app', app);
      row.li.classList.toggle('server-muted', muted);
      row.participant = p;
      row.me = me;
      applyBadges(row);
      row.mute.hidden = muted;
      row.unmute.hidden = !muted || me;
      row.selfUnmute.hidden = !(muted && me);
      row.selfUnmute.classList.toggle('locked', state.allowSelfUnmute === false);
      row.selfUnmute.classList.toggle('primary', state.allowSelfUnmute !== false);
      row.selfUnmute.title = state.allowSelfUnmute === false
        ? 'This call does not allow participants to unmute themselves.'
        : 'Lift the server mute with your own session.';
      row.mute.textContent = me ? 'Mute me' : 'Mute';
      if (list.children[index] !== row.li) list.insertBefore(row.li, list.children[index] || null);
    });
    const people = ids.length;
    $('#roster-count').textContent = String(people);
    updateStats();
  }

  // Server mute comes from the roster (notifications); self mute from the live stats when there are any, since
  // Graph's isMuted alone cannot tell a self mute under a server mute.
  function applyBadges(row) {
    const p = row.participant;
    if (!p) return;
    const muted = serverMuted(p);
    const entry = state.stats.get(p.id);
    const selfMuted = entry ? Boolean(entry.selfMuted) : Boolean(p.isMuted) && !muted;
    row.serverBadge.hidden = !muted;
    row.selfBadge.hidden = !selfMuted;
    row.liveBadge.hidden = muted || selfMuted;
    row.li.classList.toggle('self-muted', selfMuted);
  }

  function hue(id) {
    let h = 0;
    for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) % 360;
    return h;
  }

  function toMeter(db) {
    if (db === null || db === undefined || !Number.isFinite(db)) return 0;
    return Math.min(1, Math.max(0, (db - METER_FLOOR_DB) / -METER_FLOOR_DB));
  }

  function updateStats() {
    for (const [id, row] of state.rows) {
      const entry = state.stats.get(id);
      if (!entry) continue;
      const received = entry.receivedLevelDbov;
      row.target = toMeter(received);
      row.mixTarget = entry.gate && entry.gate.open ? toMeter(entry.mixedLevelDbfs) : 0;
      if (entry.gate && !entry.gate.open) row.mix = 0; // a closed gate mixes nothing: no glide down
      row.value.textContent = received === null || received === undefined ? '—' : `${Math.round(received)} dB`;
      const drops = entry.gate ? entry.gate.droppedPackets : 0;
      row.drops.textContent = drops.toLocaleString('en-US');
      row.drops.classList.toggle('growing', drops > row.lastDrops);
      row.lastDrops = drops;
      applyBadges(row);
    }
  }

  // meters glide at display rate: quick to rise, slow to fall
  function animate() {
    for (const row of state.rows.values()) {
      row.level += (row.target - row.level) * (row.target > row.level ? 0.45 : 0.12);
      row.mix += (row.mixTarget - row.mix) * (row.mixTarget > row.mix ? 0.45 : 0.12);
      row.fill.style.clipPath = `inset(0 ${(100 - row.level * 100).toFixed(2)}% 0 0)`;
      row.mixFill.style.clipPath = `inset(0 ${(100 - row.mix * 100).toFixed(2)}% 0 0)`;
    }
    if (state.analyser) {
      const db = analyserRmsDb();
      state.hearLevel = (state.hearLevel || 0) + (toMeter(db) - (state.hearLevel || 0)) * 0.3;
      $('#hear-fill').style.clipPath = `inset(0 ${(100 - state.hearLevel * 100).toFixed(2)}% 0 0)`;
      if (!state.hearLabelAt || performance.now() - state.hearLabelAt > 250) {
        state.hearLabelAt = performance.now();
        $('#hear-value').textContent = Number.isFinite(db) && db > -100 ? `${Math.round(db)} dB` : 'silence';
      }
    }
    requestAnimationFrame(animate);
  }

  function setConnection(connectionState) {
    const chip = $('#conn-chip');
    const labels = { new: 'connecting…', connecting: 'connecting…', connected: 'connected', disconnected: 'connection interrupted', failed: 'connection failed', closed: 'not connected' };
    chip.textContent = labels[connectionState] || connectionState;
    chip.dataset.state = connectionState;
    chip.className = `chip chip-${connectionState === 'connected' ? 'ok' : connectionState === 'failed' || connectionState === 'disconnected' ? 'bad' : 'idle'}`;
    if (connectionState === 'failed' && state.joined) {
      showError(new Error('The media connection failed (ICE found no working path to the server).'), 'Connection');
    }
  }

  // activity log: what the notifications said, newest first
  function describeNotification(body, at) {
    for (const item of (body && body.value) || []) {
      if ((item.resourceUrl || '').endsWith('/participants')) {
        for (const p of item.resourceData || []) {
          const name = displayName(p);
          if (item.changeType === 'deleted') logActivity(`${name} left`, '', at);
          else logActivity(`${name}: ${serverMuted(p) ? 'muted by server' : p.isMuted ? 'self-muted' : 'live'} (roster #${p.rosterSequenceNumber})`, '', at);
        }
      } else if (item.resourceData) {
        logActivity(`call ${item.changeType === 'deleted' ? 'ended' : item.resourceData.state}`, '', at);
      }
    }
  }

  function logActivity(text, kind = '', at) {
    const list = $('#activity');
    const li = document.createElement('li');
    if (kind) li.className = kind;
    const time = document.createElement('time');
    time.textContent = new Date(at ? at * 1000 : Date.now()).toLocaleTimeString();
    li.append(time, document.createTextNode(` ${text}`));
    list.prepend(li);
    while (list.children.length > 100) list.lastElementChild.remove();
    $('#activity-count').textContent = String(list.children.length);
  }

  // ---------------------------------------------------------------------------------------------------------
  // what the page hears, for people (the "you hear" meter) and for tests (window.mediamuteDebug)
  function analyserRmsDb() {
    const analyser = state.analyser;
    if (!analyser) return -Infinity;
    const samples = new Float32Array(analyser.fftSize);
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    return 10 * Math.log10(sum / samples.length || 1e-20);
  }

  function toneLevelsDb(frequencies) {
    const analyser = state.analyser;
    if (!analyser) return null;
    const bins = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(bins);
    const hz = analyser.context.sampleRate / analyser.fftSize;
    const result = {};
    for (const f of frequencies) {
      const centre = Math.round(f / hz);
      let best = -200;
      for (let i = Math.max(0, centre - 2); i <= Math.min(bins.length - 1, centre + 2); i += 1) {
        if (Number.isFinite(bins[i]) && bins[i] > best) best = bins[i];
      }
      result[f] = best;
    }
    return result;
  }

  // median level per frequency over `durationMs` of listening (one analyser read every 50 ms)
  async function measureTonesDb(frequencies, durationMs = 1000) {
    const reads = [];
    const end = performance.now() + durationMs;
    while (performance.now() < end) {
      const levels = toneLevelsDb(frequencies);
      if (levels) reads.push(levels);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (!reads.length) return null;
    const result = {};
    for (const f of frequencies) {
      const values = reads.map((r) => r[f]).sort((a, b) => a - b);
      result[f] = values[Math.floor(values.length / 2)];
    }
    return result;
  }

  window.mediamuteDebug = {
    toneLevelsDb,
    measureTonesDb,
    rmsDb: () => { const db = analyserRmsDb(); return Number.isFinite(db) ? db : -200; },
    state: () => ({
      callId: state.callId,
      participantId: state.participantId,
      joined: state.joined,
      connectionState: state.pc ? state.pc.connectionState : 'closed',
      allowSelfUnmute: state.allowSelfUnmute,
      micMuted: state.micMuted,
      hearing: Boolean(state.analyser),
      audioContextState: state.audioContext ? state.audioContext.state : null,
      sampleRate: state.audioContext ? state.audioContext.sampleRate : null,
      eventStream: state.ws ? state.ws.readyState : -1,
    }),
  };

  // Without a token, say where to get one, unless this server accepts requests without (`--no-auth`):
  // a tokenless read of an unknown call answers 401 with auth on, 404 with it off.
  async function showNoTokenNotice() {
    try {
      await api('GET', '/ext/calls/-/stats');
    } catch (err) {
      $('#no-token').hidden = err.status !== 401;
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  function init() {
    let name = '';
    try { name = localStorage.getItem(NAME_KEY) || ''; } catch (_) { /* ignore */ }
    $('#display-name').value = name || `Guest ${Math.floor(100 + Math.random() * 900)}`;
    $('#create-call').addEventListener('click', createCall);
    $('#existing-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const id = $('#existing-call').value.trim();
      if (id) setCall(id);
    });
    $('#change-call').addEventListener('click', clearCall);
    document.querySelectorAll('button.invite').forEach((b) => b.addEventListener('click', () => copyInvite(b)));
    $('#join').addEventListener('click', join);
    $('#leave').addEventListener('click', () => leave());
    $('#toggle-mic').addEventListener('click', toggleMic);
    $('#play-audio').addEventListener('click', () => {
      const audio = $('#remote-audio');
      if (audio) audio.play().then(() => { $('#play-audio').hidden = true; }).catch((err) => showError(err, 'Playing the call'));
      if (state.audioContext) state.audioContext.resume();
    });
    $('#rejoin').addEventListener('click', () => {
      $('#ended').hidden = true;
      $('#setup').hidden = false;
      $('#join').disabled = !state.callId;
      if (state.callId && !state.call?.state?.startsWith('termin')) connectEvents();
      else clearCall();
    });
    window.addEventListener('pagehide', () => {
      // best effort: leave the call when the tab goes away (keepalive lets the request outlive the page)
      if (state.whipLocation && state.sessionToken) {
        fetch(state.whipLocation, { method: 'DELETE', headers: { Authorization: `Bearer ${state.sessionToken}` }, keepalive: true }).catch(() => {});
      }
    });
    readUrl();
    if (!state.appToken) showNoTokenNotice();
    requestAnimationFrame(animate);
  }

  init();
})();
