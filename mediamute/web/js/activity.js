// The activity log (newest first, at most 100 lines) and what each notification says in it.

import { $ } from './dom.js';
import { displayName, keyOf, serverMuted, talkingWhileMuted } from './model.js';

const MAX_LINES = 100;

// `kind` is a class for the line ('is-error'); `at` a Unix time in seconds (default: now).
export function logActivity(text, kind = '', at) {
  const list = $('#activity');
  const li = document.createElement('li');
  if (kind) li.className = kind;
  const time = document.createElement('time');
  time.textContent = new Date(at ? at * 1000 : Date.now()).toLocaleTimeString();
  li.append(time, document.createTextNode(` ${text}`));
  list.prepend(li);
  while (list.children.length > MAX_LINES) list.lastElementChild.remove();
  $('#activity-count').textContent = String(list.children.length);
}

export function describeNotification(body, at) {
  for (const item of (body && body.value) || []) {
    if ((item.resourceUrl || '').endsWith('/participants')) {
      for (const p of item.resourceData || []) {
        const name = displayName(p);
        if (item.changeType === 'deleted') logActivity(`${name} left`, '', at);
        else if (talkingWhileMuted(p)) logActivity(`${name} is talking while muted (roster #${p.rosterSequenceNumber})`, '', at);
        else logActivity(`${name}: ${serverMuted(p) ? 'muted by server' : p.isMuted ? 'self-muted' : 'live'} (roster #${p.rosterSequenceNumber})`, '', at);
      }
    } else if (item.resourceData && item.resourceData.toneInfo && !item.resourceData.id) {
      // a tone notification: the key press itself is logged from the stream's `tone` message, with who pressed it
    } else if (item.resourceData) {
      logActivity(`call ${item.changeType === 'deleted' ? 'ended' : item.resourceData.state}`, '', at);
    }
  }
}

// A key press on the event stream: who pressed what, and whether the app (subscribeToTone) was told.
export function describeTone(message, nameOf) {
  const who = nameOf(message.participantId);
  const told = message.sequenceId ? `notified to the app as tone #${message.sequenceId}` : 'not notified: no subscribeToTone';
  const muted = message.serverMuted ? ' while muted by the server' : '';
  logActivity(`${who} pressed ${keyOf(message.tone)}${muted} · ${told}`, '', message.at);
}

