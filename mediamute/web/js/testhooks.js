// Test-only: window.mediamuteDebug, what the browser tests read of the page (the tones in what it hears, its
// state). main.js imports this module only when the address carries `?testHooks=1`; a user's page never loads it.

import { analyserRmsDb } from './meters.js';

// Peak level (dB) near each of `frequencies` in the analyser's current spectrum; null before the page hears the call.
function toneLevelsDb(analyser, frequencies) {
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

// Median level per frequency over `durationMs` of listening (one analyser read every 50 ms).
async function measureTonesDb(analyser, frequencies, durationMs) {
  const reads = [];
  const end = performance.now() + durationMs;
  while (performance.now() < end) {
    const levels = toneLevelsDb(analyser(), frequencies);
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

// `parts`: main.js's page state and its model, audio, WHIP session and event stream, read at each call.
export function installTestHooks({ page, model, audio, session, events }) {
  const analyser = () => audio.analyser;
  window.mediamuteDebug = {
    toneLevelsDb: (frequencies) => toneLevelsDb(analyser(), frequencies),
    measureTonesDb: (frequencies, durationMs = 1000) => measureTonesDb(analyser, frequencies, durationMs),
    rmsDb: () => { const db = analyserRmsDb(analyser()); return Number.isFinite(db) ? db : -200; },
    state: () => ({
      callId: page.callId,
      participantId: session.participantId,
      joined: page.joined,
      connectionState: session.connectionState,
      allowSelfUnmute: model.allowSelfUnmute,
      micMuted: page.micMuted,
      hearing: Boolean(audio.analyser),
      audioContextState: audio.context ? audio.context.state : null,
      sampleRate: audio.context ? audio.context.sampleRate : null,
      eventStream: events.readyState,
    }),
  };
}
