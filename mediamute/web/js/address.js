// The page's address: `?token=` (what `mediamute serve` prints) and `?call=` come in through it. The token is kept
// for this tab in sessionStorage and taken out of the address bar (screen shares, screenshots); `?testHooks=1`
// (only the browser tests set it) installs window.mediamuteDebug and stays in the address for a reload.

const TOKEN_KEY = 'mediamute.token';
const TEST_HOOKS = 'testHooks';

// What the address says, read once at start-up: {appToken, callId, testHooks}.
export function readAddress() {
  const params = new URLSearchParams(window.location.search);
  const token = params.get('token');
  if (token) {
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch (_) { /* storage off: keep it in memory */ }
  }
  let appToken;
  try { appToken = token || sessionStorage.getItem(TOKEN_KEY); } catch (_) { appToken = token; }
  return { appToken, callId: params.get('call'), testHooks: params.get(TEST_HOOKS) === '1' };
}

// Show `/?call=...` (or `/`) in the address bar, without the token.
export function showAddress(callId, testHooks) {
  const params = new URLSearchParams();
  if (callId) params.set('call', callId);
  if (testHooks) params.set(TEST_HOOKS, '1');
  const query = params.toString();
  history.replaceState(null, '', query ? `/?${query}` : '/');
}

// This page's address for call `callId` with a join token: what an invite hands out.
export function inviteLink(callId, joinToken) {
  return `${window.location.origin}/?call=${encodeURIComponent(callId)}&token=${encodeURIComponent(joinToken)}`;
}
