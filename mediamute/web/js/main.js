// mediamute web client: create or join a call over WHIP, hear the mix, watch the roster, mute people.
// Plain JavaScript modules (no build step, no CDN); standard APIs only, so it runs in Chromium and Firefox.
// This module wires the parts together and owns the page's flow: choose a call, join, act in it, leave.

import { describeNotification, describeTone, logActivity } from './activity.js';
import { inviteLink, readAddress, showAddress } from './address.js';
import * as api from './api.js';
import { CallAudio } from './audio.js';
import { $ } from './dom.js';
import { showError } from './errors.js';
import { EventStream } from './events.js';
import { animateMeters, HearMeter } from './meters.js';
import { CallModel } from './model.js';
import { RosterView } from './roster.js';
import { WhipSession } from './whip.js';

const NAME_KEY = 'mediamute.displayName';
const CONNECTION_LABELS = {
  new: 'connecting…', connecting: 'connecting…', connected: 'connected',
  disconnected: 'connection interrupted', failed: 'connection failed', closed: 'not connected',
};

const address = readAddress();
const page = {
  appToken: address.appToken, // Graph requests: create, mute or unmute someone, invite
  callId: null,
  joined: false,
  leaving: false,
  micMuted: false,
  activitySeeded: false, // the first snapshot's history went into the activity log
};
const model = new CallModel();
const audio = new CallAudio();
const session = new WhipSession({
  onTrack: (stream) => audio.hear(stream, (playing) => { $('#play-audio').hidden = playing; }),
  onConnectionState: (state) => { setConnection(state); renderKeypad(); },
});
const events = new EventStream({
  // the session token once joined (it watches the call as this participant), the application token before
  target: () => (page.callId ? { callId: page.callId, token: session.sessionToken || page.appToken } : null),
  onMessage: handleEvent,
  onRefused: (err, message) => {
    showError(err, 'Watching the call failed');
    $('#call-summary').textContent = message || 'the event stream was refused';
  },
  onLost: () => { $('#call-summary').textContent = 'event stream lost; reconnecting…'; },
  keepTrying: () => !model.terminated,
});
const roster = new RosterView({
  list: $('#roster'),
  template: $('#row-template'),
  count: $('#roster-count'),
  onMute: muteParticipant,
  onUnmute: unmuteParticipant,
  onSelfUnmute: selfUnmute,
});

// ---------------------------------------------------------------------------------------------------------------
// choosing a call
function setCall(callId) {
  page.callId = callId;
  $('#call-id').textContent = callId;
  $('#call-known').hidden = false;
  $('#call-unknown').hidden = true;
  $('#join').disabled = false;
  $('#call-summary').textContent = 'connecting to the call…';
  showAddress(page.callId, address.testHooks);
  events.watch();
}

function clearCall() {
  events.stop();
  page.callId = null;
  model.clear();
  $('#call-known').hidden = true;
  $('#call-unknown').hidden = false;
  $('#join').disabled = true;
  showAddress(page.callId, address.testHooks);
}

async function createCall() {
  const button = $('#create-call');
  button.disabled = true;
  try {
    const call = await api.createCall(page.appToken, $('#allow-self-unmute').checked);
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
    const link = inviteLink(page.callId, await api.joinToken(page.appToken, page.callId));
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

// ---------------------------------------------------------------------------------------------------------------
// joining and leaving
async function join() {
  if (!page.callId || page.joined) return;
  const name = $('#display-name').value.trim() || 'Browser';
  try { localStorage.setItem(NAME_KEY, name); } catch (_) { /* ignore */ }
  const kind = document.querySelector('input[name="source"]:checked').value;
  const button = $('#join');
  button.disabled = true;
  const progress = (text) => { $('#join-progress').textContent = text; };
  try {
    await audio.start(); // inside the click
    progress(kind === 'mic' ? 'opening the microphone…' : 'starting the test tone…');
    const source = await audio.openSource(kind, $('#tone-frequency').value);
    await session.join(page.callId, name, page.appToken, source.stream, progress);
    page.joined = true;
    page.micMuted = false;
    $('#me-name').textContent = name;
    $('#me-source').textContent = source.label;
    $('#setup').hidden = true;
    $('#incall').hidden = false;
    document.body.classList.add('in-call');
    progress('');
    logActivity(`you joined as ${name} (${source.label})`);
    events.watch(true); // again, as this participant: its session token watches the call too
    roster.render(model, session.participantId);
    renderKeypad();
  } catch (err) {
    progress('');
    showError(err, 'Joining failed');
    await teardownMedia();
    button.disabled = false;
  }
}

async function teardownMedia() {
  session.close();
  audio.stop();
  setConnection('closed');
}

// Leave the call; with a `reason` the server has removed us already (the call ended, we were removed).
async function leave(reason) {
  if (page.leaving) return;
  page.leaving = true;
  try {
    if (!reason) await session.leave();
  } catch (err) {
    if (err.status !== 404 && err.status !== 409) showError(err, 'Leaving failed');
  } finally {
    events.stop();
    await teardownMedia();
    page.joined = false;
    renderKeypad();
    session.forget();
    page.leaving = false;
    $('#incall').hidden = true;
    $('#ended').hidden = false;
    document.body.classList.remove('in-call');
    $('#ended-title').textContent = reason ? 'The call has ended' : 'You left the call';
    $('#ended-text').textContent = reason || '';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// acting in the call
async function toggleMic() {
  if (!audio.localStream) return;
  const muted = !page.micMuted;
  audio.setSending(!muted); // local: silence goes out
  page.micMuted = muted;
  renderMe();
  try {
    await api.reportSelfMute(session.sessionToken, page.callId, session.participantId, muted);
  } catch (err) {
    showError(err, 'Reporting your microphone state failed');
  }
}

// A key of the keypad: DTMF on our audio (RFC 4733, the browser's RTCDTMFSender), as a phone's keypad would.
function pressKey(button) {
  const dtmf = session.dtmf;
  if (!dtmf) return;
  dtmf.insertDTMF(button.dataset.key, 100, 70);
  button.classList.add('pressed');
  setTimeout(() => button.classList.remove('pressed'), 150);
}

// The keypad shows only once telephone-event is negotiated (the sender can insert DTMF).
function renderKeypad() {
  $('#keypad').hidden = !(page.joined && session.dtmf);
}

async function muteParticipant(id, button) {
  button.disabled = true;
  try {
    await api.muteParticipant(page.appToken, page.callId, id, `web-${Math.random().toString(36).slice(2, 10)}`);
    logActivity(`mute ${model.nameOf(id)}: done`);
  } catch (err) {
    showError(err, `Muting ${model.nameOf(id)} failed`);
  } finally {
    button.disabled = false;
  }
}

async function unmuteParticipant(id, button) {
  button.disabled = true;
  try {
    await api.unmuteParticipant(page.appToken, page.callId, id);
    logActivity(`unmute ${model.nameOf(id)}: done`);
  } catch (err) {
    showError(err, `Unmuting ${model.nameOf(id)} failed`);
  } finally {
    button.disabled = false;
  }
}

async function selfUnmute(button) {
  button.disabled = true;
  try {
    await api.selfUnmute(session.sessionToken, page.callId, session.participantId);
    logActivity('you unmuted yourself');
  } catch (err) {
    showError(err, 'You cannot unmute yourself'); // with the server's reason, e.g. the call's allowSelfUnmute
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// the event stream: snapshot, roster notifications, key presses, stats every 100 ms
function handleEvent(message) {
  if (message.type === 'snapshot') {
    model.applySnapshot(message);
    if (!page.activitySeeded) {
      page.activitySeeded = true;
      for (const past of message.history || []) describeNotification(past.body, past.at);
    }
    renderAll();
  } else if (message.type === 'notification') {
    for (const item of (message.body && message.body.value) || []) {
      for (const effect of model.applyNotification(item, page.callId)) follow(effect);
    }
    describeNotification(message.body, message.at);
    renderAll();
  } else if (message.type === 'tone') {
    describeTone(message, (id) => (id === session.participantId ? 'you' : model.nameOf(id)));
  } else if (message.type === 'stats') {
    model.applyStats(message.body);
    roster.updateStats(model);
  }
}

// What a notification means for this page beyond the roster: we were removed, or the call ended.
function follow(effect) {
  if (effect.left !== undefined) {
    if (effect.left === session.participantId && page.joined && !page.leaving) {
      setTimeout(() => leave('You were removed from the call.'), 0);
    }
  } else if (effect.ended) {
    events.stopRetrying();
    if (page.joined) leave('The call was ended by its owner.');
    else $('#call-summary').textContent = 'this call has ended';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// rendering what is not the roster
function renderAll() {
  renderSummary();
  roster.render(model, session.participantId);
  renderMe();
}

function renderSummary() {
  if (!model.call) return;
  const people = model.people;
  const policy = model.allowSelfUnmute ? 'participants may unmute themselves' : 'participants may not unmute themselves';
  $('#call-summary').textContent = `${model.call.state} · ${people} ${people === 1 ? 'person' : 'people'} in the call · ${policy}`;
  const chip = $('#call-chip');
  chip.hidden = false;
  chip.textContent = `call ${page.callId.slice(0, 8)}…`;
  chip.title = page.callId;
}

function renderMe() {
  if (!page.joined) return;
  const mic = $('#toggle-mic');
  mic.textContent = page.micMuted ? 'Unmute my microphone' : 'Mute my microphone';
  mic.classList.toggle('active', page.micMuted);
  $('#policy').textContent = model.allowSelfUnmute === false
    ? 'In this call only the organiser can lift a server mute: you cannot unmute yourself.'
    : 'If the server mutes you, you may unmute yourself.';
}

function setConnection(connectionState) {
  const chip = $('#conn-chip');
  chip.textContent = CONNECTION_LABELS[connectionState] || connectionState;
  chip.dataset.state = connectionState;
  const tone = connectionState === 'connected' ? 'ok' : connectionState === 'failed' || connectionState === 'disconnected' ? 'bad' : 'idle';
  chip.className = `chip chip-${tone}`;
  if (connectionState === 'failed' && page.joined) {
    showError(new Error('The media connection failed (ICE found no working path to the server).'), 'Connection');
  }
}

// ---------------------------------------------------------------------------------------------------------------
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
  document.querySelectorAll('#keypad .key').forEach((b) => b.addEventListener('click', () => pressKey(b)));
  $('#play-audio').addEventListener('click', () => {
    const playing = audio.resumePlayback();
    if (playing) playing.then(() => { $('#play-audio').hidden = true; }).catch((err) => showError(err, 'Playing the call'));
  });
  $('#rejoin').addEventListener('click', () => {
    $('#ended').hidden = true;
    $('#setup').hidden = false;
    $('#join').disabled = !page.callId;
    if (page.callId && !model.call?.state?.startsWith('termin')) events.watch();
    else clearCall();
  });
  // best effort: leave the call when the tab goes away
  window.addEventListener('pagehide', () => session.leaveOnUnload());
  if (address.callId) setCall(address.callId);
  showAddress(page.callId, address.testHooks);
  // Without a token, say where to get one, unless this server accepts requests without (`--no-auth`).
  if (!page.appToken) api.needsToken().then((needed) => { $('#no-token').hidden = !needed; });
  animateMeters(() => roster.meters(), new HearMeter($('#hear-fill'), $('#hear-value')), () => audio.analyser);
}

if (address.testHooks) {
  const { installTestHooks } = await import('./testhooks.js');
  installTestHooks({ page, model, audio, session, events });
}
init();
