// Level meters: dB to a bar's fill, bars that glide at display rate (quick to rise, slow to fall), and the
// "you hear" meter read from the analyser on the call's mix.

const FLOOR_DB = -60; // meters span -60 dB .. 0 dB
const RISE = 0.45;
const FALL = 0.12;
const HEAR_SMOOTHING = 0.3;
const HEAR_LABEL_MS = 250; // the number under the "you hear" meter changes at most 4 times a second

// dB to a fill fraction 0..1 (no level: empty).
export function toMeter(db) {
  if (db === null || db === undefined || !Number.isFinite(db)) return 0;
  return Math.min(1, Math.max(0, (db - FLOOR_DB) / -FLOOR_DB));
}

// RMS level (dB full scale) of the analyser's current time-domain window; -Infinity without an analyser.
export function analyserRmsDb(analyser) {
  if (!analyser) return -Infinity;
  const samples = new Float32Array(analyser.fftSize);
  analyser.getFloatTimeDomainData(samples);
  let sum = 0;
  for (const s of samples) sum += s * s;
  return 10 * Math.log10(sum / samples.length || 1e-20);
}

function draw(fill, fraction) {
  fill.style.clipPath = `inset(0 ${(100 - fraction * 100).toFixed(2)}% 0 0)`;
}

// One bar: set its target (a dB level, or 0 for nothing); each frame() moves the shown level towards it.
export class LevelMeter {
  constructor(fill) {
    this.fill = fill;
    this.level = 0;
    this.target = 0;
  }

  show(db) {
    this.target = toMeter(db);
  }

  empty() {
    this.target = 0;
  }

  // Drop to nothing at once (a closed gate mixes nothing: no glide down).
  cut() {
    this.level = 0;
  }

  frame() {
    this.level += (this.target - this.level) * (this.target > this.level ? RISE : FALL);
    draw(this.fill, this.level);
  }
}

// What this page hears of the call: a smoothed bar and a dB (or "silence") label.
export class HearMeter {
  constructor(fill, label) {
    this.fill = fill;
    this.label = label;
    this.level = 0;
    this.labelAt = null;
  }

  frame(analyser) {
    const db = analyserRmsDb(analyser);
    this.level += (toMeter(db) - this.level) * HEAR_SMOOTHING;
    draw(this.fill, this.level);
    if (this.labelAt === null || performance.now() - this.labelAt > HEAR_LABEL_MS) {
      this.labelAt = performance.now();
      this.label.textContent = Number.isFinite(db) && db > -100 ? `${Math.round(db)} dB` : 'silence';
    }
  }
}

// Every display frame: each of meters() glides; the hear meter follows analyser() while there is one.
export function animateMeters(meters, hear, analyser) {
  const frame = () => {
    for (const meter of meters()) meter.frame();
    const source = analyser();
    if (source) hear.frame(source);
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}
