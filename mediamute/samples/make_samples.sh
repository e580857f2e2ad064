#!/usr/bin/env bash
# Regenerate the mediamute demo voice clips from text.
# Needs: espeak-ng, sox (Debian: apt-get install espeak-ng sox).
# Output: 16 kHz, mono, 16-bit signed PCM WAV, peak -3 dBFS,
#         leading/trailing silence trimmed, then 0.15 s padded at each end.
set -euo pipefail

cd "$(dirname "$0")"

MAX_BYTES=$((190 * 1024))
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# clip NAME VOICE PITCH SPEED TEXT
clip() {
  local name=$1 voice=$2 pitch=$3 speed=$4 text=$5
  espeak-ng -v "$voice" -p "$pitch" -s "$speed" -w "$tmp/$name.raw.wav" "$text"
  # -D: no dither, so the output is byte-for-byte reproducible.
  sox -D "$tmp/$name.raw.wav" -r 16000 -c 1 -b 16 -e signed-integer "$name.wav" \
    silence 1 0.02 0.1% reverse silence 1 0.02 0.1% reverse \
    rate 16000 gain -n -3 pad 0.15 0.15
  local bytes
  bytes=$(stat -c %s "$name.wav")
  if (( bytes >= MAX_BYTES )); then
    echo "error: $name.wav is $bytes bytes (limit $MAX_BYTES)" >&2
    exit 1
  fi
  printf '%-11s %7d bytes  %ss\n' "$name.wav" "$bytes" "$(soxi -D "$name.wav")"
}

# Voice notes: espeak-ng 1.51 ignores a "+variant" suffix on "en-gb", so the
# British voices use "en" (= gmw/en, British English) or "en-gb-x-rp".
#    name   voice         -p  -s   text
clip alice  en-us+f3      60  165  "Hi everyone, this is Alice. Let's go through the release checklist together."
clip bob    en-us+m3      65  185  "Bob here. I think the latency numbers look good, but I want to double check the jitter buffer."
clip carol  en+f2         90  155  "Carol speaking. The browser client joined fine on my side."
clip dave   en+m7         15  150  "This is Dave. I can hear all of you clearly."
clip prompt en-gb-x-rp+m2 48  140  "Attention please. This call is being recorded for a demonstration."
