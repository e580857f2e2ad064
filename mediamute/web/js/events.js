// The call's event stream: a WebSocket sending a snapshot, then notifications, key presses and stats every 100 ms.
// It reconnects with a backoff after a loss, unless the server refused it or the owner says it is no longer wanted.

import { ApiError, eventStreamUrl } from './api.js';

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 5000;

export class EventStream {
  // target() -> {callId, token} or null: what to watch, asked again at each (re)connection.
  // onMessage(message): a snapshot, notification, tone or stats message. onRefused(apiError, serverMessage): the server
  // refused the stream (no retry). onLost(): the stream dropped and a retry is scheduled. keepTrying() -> false
  // stops the retries (the call has ended).
  constructor({ target, onMessage, onRefused, onLost, keepTrying }) {
    Object.assign(this, { target, onMessage, onRefused, onLost, keepTrying });
    this.ws = null;
    this.wanted = false;
    this.retries = 0;
    this.retryTimer = null;
  }

  // WebSocket readyState, or -1 without a socket.
  get readyState() {
    return this.ws ? this.ws.readyState : -1;
  }

  // Watch the target; with `renew` a stream already open is replaced (e.g. by one under a new token).
  watch(renew = false) {
    const target = this.target();
    if (!target) return;
    if (this.ws && !renew) return;
    this.stop();
    this.wanted = true;
    const ws = new WebSocket(eventStreamUrl(window.location, target.callId, target.token));
    this.ws = ws;
    let refused = false;
    ws.addEventListener('open', () => { this.retries = 0; });
    ws.addEventListener('message', (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (_) { return; }
      if (message.type === 'error') {
        refused = true;
        const error = message.error || {};
        this.onRefused(ApiError.fromEnvelope(message.status, error, 'The event stream was refused.'), error.message);
        return;
      }
      this.onMessage(message);
    });
    ws.addEventListener('close', () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (!this.wanted || refused || !this.keepTrying()) return;
      const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** this.retries++);
      this.onLost();
      this.retryTimer = setTimeout(() => this.watch(), delay);
    });
  }

  // No more retries; a socket still open stays open.
  stopRetrying() {
    this.wanted = false;
  }

  stop() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try { ws.close(); } catch (_) { /* closed */ }
    }
  }
}
