// What the page knows of the call, from its event stream: the call resource, its self-unmute policy, the roster
// (Graph participant resources) and the latest stats per participant. Pure data: no DOM, no network.

export function displayName(p) {
  const identity = (p.info && p.info.identity) || {};
  const who = identity.user || identity.application || identity.guest || {};
  return who.displayName || 'unnamed';
}

export function isApplication(p) {
  return Boolean(p.info && p.info.identity && p.info.identity.application);
}

export function serverMuted(p) {
  return Boolean(p.mediaStreams && p.mediaStreams.some((s) => s.serverMuted));
}

// mediamute's extension property on a participant: muted by the server, and its packets' audio level says it talks.
export function talkingWhileMuted(p) {
  return Boolean(p.mediamute && p.mediamute.talkingWhileMuted);
}

const KEYS = { star: '*', pound: '#', a: 'A', b: 'B', c: 'C', d: 'D', flash: 'flash' };

// Graph's tone name (`tone5`, `star`, `pound`, `a`..`d`, `flash`) as the key a person pressed.
export function keyOf(tone) {
  return tone.startsWith('tone') ? tone.slice(4) : KEYS[tone] || tone;
}

export class CallModel {
  constructor() {
    this.call = null;
    this.allowSelfUnmute = null;
    this.participants = new Map(); // id -> Graph participant resource, in join order
    this.stats = new Map(); // id -> latest stats entry
  }

  clear() {
    this.call = null;
    this.participants.clear();
    this.stats.clear();
  }

  get terminated() {
    return Boolean(this.call && this.call.state === 'terminated');
  }

  get people() {
    return [...this.participants.values()].filter((p) => !isApplication(p)).length;
  }

  nameOf(id) {
    const p = this.participants.get(id);
    return p ? displayName(p) : id;
  }

  applySnapshot(message) {
    this.call = message.call;
    this.allowSelfUnmute = message.allowSelfUnmute;
    this.participants.clear();
    for (const p of message.participants) this.participants.set(p.id, p);
  }

  // One item of a notification's `value`. Returns what it means beyond the data: {left: id} per participant
  // deleted, {ended: true} when call `callId` was deleted or terminated. A participant resource older (by roster
  // sequence number) than the one already known is ignored: notifications may arrive out of order.
  applyNotification(item, callId) {
    const effects = [];
    const url = item.resourceUrl || '';
    if (url.endsWith('/participants')) {
      for (const p of item.resourceData || []) {
        const known = this.participants.get(p.id);
        if (item.changeType === 'deleted') {
          this.participants.delete(p.id);
          this.stats.delete(p.id);
          effects.push({ left: p.id });
        } else if (!known || (p.rosterSequenceNumber || 0) >= (known.rosterSequenceNumber || 0)) {
          this.participants.set(p.id, p);
        }
      }
    } else if (item.resourceData && item.resourceData.id === callId) {
      this.call = item.resourceData;
      if (item.changeType === 'deleted' || this.call.state === 'terminated') effects.push({ ended: true });
    }
    return effects;
  }

  applyStats(body) {
    for (const entry of body.participants) this.stats.set(entry.id, entry);
  }
}
