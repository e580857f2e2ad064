// The roster view: one row per participant (you first, then people, then applications; join order within each),
// with what the server receives and mixes of them, their mute state (and whether they talk while muted), their
// dropped packets and the mute buttons.

import { LevelMeter } from './meters.js';
import { displayName, isApplication, serverMuted, talkingWhileMuted } from './model.js';

function hue(id) {
  let h = 0;
  for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return h;
}

function tag(text) {
  const span = document.createElement('span');
  span.className = `tag tag-${text}`;
  span.textContent = text;
  return span;
}

export class RosterView {
  // list: the <ul>; template: the row <template>; count: the element showing how many rows there are.
  // onMute(id, button), onUnmute(id, button), onSelfUnmute(button): a row's buttons were clicked.
  constructor({ list, template, count, onMute, onUnmute, onSelfUnmute }) {
    Object.assign(this, { list, template, count, onMute, onUnmute, onSelfUnmute });
    this.rows = new Map(); // id -> the row's elements, meters and drop count
  }

  // Every bar in the roster, for the meter animation.
  *meters() {
    for (const row of this.rows.values()) yield* [row.received, row.mixed];
  }

  row(id) {
    let row = this.rows.get(id);
    if (row) return row;
    const li = this.template.content.firstElementChild.cloneNode(true);
    li.dataset.participantId = id;
    li.dataset.testid = `participant-${id}`;
    row = {
      li,
      name: li.querySelector('.name'),
      tags: li.querySelector('.tags'),
      avatar: li.querySelector('.avatar'),
      received: new LevelMeter(li.querySelector('.meter:not(.meter-mix) .meter-fill')),
      mixed: new LevelMeter(li.querySelector('.meter-mix .meter-fill')),
      value: li.querySelector('.level-value'),
      serverBadge: li.querySelector('.badge-server'),
      selfBadge: li.querySelector('.badge-self'),
      talkingBadge: li.querySelector('.badge-talking'),
      liveBadge: li.querySelector('.badge-live'),
      drops: li.querySelector('.drops-value'),
      mute: li.querySelector('.mute'),
      unmute: li.querySelector('.unmute'),
      selfUnmute: li.querySelector('.self-unmute'),
      lastDrops: 0,
    };
    row.mute.addEventListener('click', () => this.onMute(id, row.mute));
    row.unmute.addEventListener('click', () => this.onUnmute(id, row.unmute));
    row.selfUnmute.addEventListener('click', () => this.onSelfUnmute(row.selfUnmute));
    this.rows.set(id, row);
    return row;
  }

  // Rows for the model's participants; `me` is this page's participant id (or null).
  render(model, me) {
    const ids = [...model.participants.keys()];
    const order = (id) => (id === me ? 0 : isApplication(model.participants.get(id)) ? 2 : 1);
    ids.sort((a, b) => order(a) - order(b)); // stable: join order within each group
    for (const [id, row] of this.rows) {
      if (!model.participants.has(id)) { row.li.remove(); this.rows.delete(id); }
    }
    const locked = model.allowSelfUnmute === false;
    ids.forEach((id, index) => {
      const p = model.participants.get(id);
      const row = this.row(id);
      const isMe = id === me;
      const app = isApplication(p);
      const name = displayName(p);
      const muted = serverMuted(p);
      row.name.textContent = name;
      row.avatar.textContent = (name.trim()[0] || '?').toUpperCase();
      row.avatar.style.setProperty('--hue', String(hue(id)));
      row.tags.replaceChildren(...[isMe ? 'you' : null, app ? 'application' : null].filter(Boolean).map(tag));
      row.li.classList.toggle('is-me', isMe);
      row.li.classList.toggle('is-app', app);
      row.li.classList.toggle('server-muted', muted);
      row.participant = p;
      this.badges(row, model);
      row.mute.hidden = muted;
      row.unmute.hidden = !muted || isMe;
      row.selfUnmute.hidden = !(muted && isMe);
      row.selfUnmute.classList.toggle('locked', locked);
      row.selfUnmute.classList.toggle('primary', !locked);
      row.selfUnmute.title = locked
        ? 'This call does not allow participants to unmute themselves.'
        : 'Lift the server mute with your own session.';
      row.mute.textContent = isMe ? 'Mute me' : 'Mute';
      if (this.list.children[index] !== row.li) this.list.insertBefore(row.li, this.list.children[index] || null);
    });
    this.count.textContent = String(ids.length);
    this.updateStats(model);
  }

  // Levels, drop counters and badges from the latest stats.
  updateStats(model) {
    for (const [id, row] of this.rows) {
      const entry = model.stats.get(id);
      if (!entry) continue;
      const received = entry.receivedLevelDbov;
      const open = Boolean(entry.gate && entry.gate.open);
      row.received.show(received);
      if (open) row.mixed.show(entry.mixedLevelDbfs);
      else row.mixed.empty();
      if (entry.gate && !entry.gate.open) row.mixed.cut();
      row.value.textContent = received === null || received === undefined ? '—' : `${Math.round(received)} dB`;
      const drops = entry.gate ? entry.gate.droppedPackets : 0;
      row.drops.textContent = drops.toLocaleString('en-US');
      row.drops.classList.toggle('growing', drops > row.lastDrops);
      row.lastDrops = drops;
      this.badges(row, model);
    }
  }

  // Server mute comes from the roster (notifications); self mute from the live stats when there are any, since
  // Graph's isMuted alone cannot tell a self mute under a server mute.
  badges(row, model) {
    const p = row.participant;
    if (!p) return;
    const muted = serverMuted(p);
    const entry = model.stats.get(p.id);
    const selfMuted = entry ? Boolean(entry.selfMuted) : Boolean(p.isMuted) && !muted;
    // talking while muted: the roster notification says so at once, the live stats keep it current
    const talking = muted && (talkingWhileMuted(p) || Boolean(entry && entry.talkingWhileMuted && entry.talkingWhileMuted.talking));
    row.serverBadge.hidden = !muted;
    row.selfBadge.hidden = !selfMuted;
    row.talkingBadge.hidden = !talking;
    row.liveBadge.hidden = muted || selfMuted;
    row.li.classList.toggle('self-muted', selfMuted);
    row.li.classList.toggle('talking-while-muted', talking);
  }
}
