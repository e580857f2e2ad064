// The HTTP API client: one fetch per request, Graph's error envelope turned into an ApiError. No DOM here.
//
// Graph requests (create a call, mute or unmute someone, invite) carry the application token from the page's
// address; a participant's own requests (self-mute, self-unmute, leave) carry the session token its WHIP answer
// gave it. `fetch` is looked up at each call (never kept), so a wrapper a test installs on window.fetch applies.

export const GRAPH = '/v1.0/communications/calls';
const EXT = '/ext/calls';
const segment = encodeURIComponent;

export class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }

  // From Graph's `{"error": {"code", "message", "innerError": {"request-id"}}}` body (also what the event stream
  // sends when it refuses a watcher); `fallback` stands in for a missing message.
  static fromEnvelope(status, error, fallback) {
    const inner = (error && error.innerError) || {};
    return new ApiError(status, error && error.code, (error && error.message) || fallback, inner['request-id']);
  }
}

// One request; resolves to the Response when it is 2xx, rejects with an ApiError otherwise (status 0: no answer).
export async function request(method, path, { token, json, sdp } = {}) {
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

// Graph: a new call (the resource as created); with allowSelfUnmute false its participants cannot lift a server mute.
export async function createCall(appToken, allowSelfUnmute) {
  const json = allowSelfUnmute ? {} : { mediamute: { allowSelfUnmute: false } };
  return (await request('POST', GRAPH, { token: appToken, json })).json();
}

// Graph: mute someone (the server then drops their packets before decoding).
export async function muteParticipant(appToken, callId, participantId, clientContext) {
  await request('POST', `${GRAPH}/${segment(callId)}/participants/${segment(participantId)}/mute`, {
    token: appToken,
    json: { clientContext },
  });
}

// The organiser lifts someone's server mute.
export async function unmuteParticipant(appToken, callId, participantId) {
  await request('POST', `${EXT}/${segment(callId)}/participants/${segment(participantId)}/unmute`, { token: appToken, json: {} });
}

// A participant lifts its own server mute (refused with 403 when the call's allowSelfUnmute is false).
export async function selfUnmute(sessionToken, callId, participantId) {
  await request('POST', `${EXT}/${segment(callId)}/participants/${segment(participantId)}/selfUnmute`, { token: sessionToken });
}

// A participant reports its own microphone state (the roster's Self-muted).
export async function reportSelfMute(sessionToken, callId, participantId, muted) {
  await request('POST', `${EXT}/${segment(callId)}/participants/${segment(participantId)}/selfMute`, {
    token: sessionToken,
    json: { muted },
  });
}

// A join token for the call: whoever holds it may join and watch, not mute others.
export async function joinToken(appToken, callId) {
  const { token } = await (await request('POST', `${EXT}/${segment(callId)}/joinTokens`, { token: appToken })).json();
  return token;
}

// Whether this server wants a token at all: a tokenless read of an unknown call answers 401 with auth on and 404
// with it off (`--no-auth`).
export async function needsToken() {
  try {
    await request('GET', `${EXT}/-/stats`);
    return false;
  } catch (err) {
    return err.status === 401;
  }
}

// The event stream's address (a WebSocket on this page's host); the token goes in the query, as browsers cannot
// set headers on a WebSocket.
export function eventStreamUrl(location, callId, token) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const query = token ? `?access_token=${encodeURIComponent(token)}` : '';
  return `${scheme}://${location.host}${EXT}/${segment(callId)}/events${query}`;
}
