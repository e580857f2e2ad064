// The page's audio: an AudioContext, what it sends (the microphone or a test tone) and what it hears (the call's
// mix, played by an <audio> element and measured by an AnalyserNode that tests and the "you hear" meter read).

const TONE_GAIN = 0.25;
const TONE_MIN_HZ = 100;
const TONE_MAX_HZ = 4000;
const TONE_DEFAULT_HZ = 880;

export class CallAudio {
  constructor() {
    this.context = null;
    this.localStream = null;
    this.tone = null; // the test tone's oscillator, while it plays
    this.remoteStream = null;
    this.analyser = null;
  }

  // Call from a click: both browsers then let the context run (autoplay policies).
  async start() {
    this.context = this.context || new AudioContext();
    await this.context.resume();
  }

  // What to send: kind 'tone' (at `frequency` Hz, clamped to 100..4000) or 'mic'. Resolves to {stream, label}.
  async openSource(kind, frequency) {
    const source = kind === 'tone' ? this.startTone(frequency) : await openMicrophone();
    this.localStream = source.stream;
    return source;
  }

  startTone(frequency) {
    const hz = Math.min(TONE_MAX_HZ, Math.max(TONE_MIN_HZ, Number(frequency) || TONE_DEFAULT_HZ));
    const oscillator = this.context.createOscillator();
    oscillator.frequency.value = hz;
    const gain = this.context.createGain();
    gain.gain.value = TONE_GAIN;
    const destination = this.context.createMediaStreamDestination();
    oscillator.connect(gain).connect(destination);
    oscillator.start();
    this.tone = oscillator;
    return { stream: destination.stream, label: `test tone ${hz} Hz` };
  }

  // The local track's own mute: silence goes out, the connection stays.
  setSending(enabled) {
    if (this.localStream) this.localStream.getAudioTracks().forEach((t) => { t.enabled = enabled; });
  }

  // Play and measure the call's mix; onPlayback(true|false) says whether the browser let it play.
  hear(stream, onPlayback) {
    if (this.remoteStream === stream) return;
    this.remoteStream = stream;
    // Chrome keeps a remote WebRTC stream silent in WebAudio unless a media element plays it too.
    const audio = remoteAudio() || Object.assign(document.createElement('audio'), { id: 'remote-audio', autoplay: true });
    if (!audio.isConnected) document.body.append(audio);
    audio.srcObject = stream;
    audio.play().then(() => onPlayback(true)).catch(() => onPlayback(false));
    const analyser = this.context.createAnalyser();
    analyser.fftSize = 8192;
    analyser.smoothingTimeConstant = 0;
    this.context.createMediaStreamSource(stream).connect(analyser); // measured only: the <audio> element is what you hear
    this.analyser = analyser;
  }

  // After a click, for a browser that refused to play without one: the play() promise, or null with nothing to play.
  resumePlayback() {
    const audio = remoteAudio();
    const playing = audio ? audio.play() : null;
    if (this.context) this.context.resume();
    return playing;
  }

  stop() {
    if (this.localStream) this.localStream.getTracks().forEach((t) => t.stop());
    this.localStream = null;
    if (this.tone) { try { this.tone.stop(); } catch (_) { /* stopped */ } }
    this.tone = null;
    const audio = remoteAudio();
    if (audio) { audio.srcObject = null; audio.remove(); }
    this.remoteStream = null;
    this.analyser = null;
  }
}

function remoteAudio() {
  return document.getElementById('remote-audio');
}

async function openMicrophone() {
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
