// Short tones for the signals, made with WebAudio (no sound files). A device
// without audio output, or a page not yet allowed to play, stays silent.

import type { Sound } from "../state/signals";

/** Each tone: notes as [frequency Hz, start s, length s]. */
const TONES: Record<Sound, [number, number, number][]> = {
  // Two knocks.
  knock: [
    [660, 0, 0.09],
    [660, 0.16, 0.09],
  ],
  // One soft blip.
  message: [[880, 0, 0.12]],
  // Rising: you are in.
  admitted: [
    [523, 0, 0.12],
    [784, 0.12, 0.18],
  ],
  // Rising three notes: the consultation starts.
  started: [
    [523, 0, 0.1],
    [659, 0.1, 0.1],
    [784, 0.2, 0.2],
  ],
};

const VOLUME = 0.12;

let ctx: AudioContext | null = null;

function audio(): AudioContext | null {
  if (ctx) return ctx;
  const Ctor = globalThis.AudioContext;
  if (!Ctor) return null;
  try {
    ctx = new Ctor();
  } catch {
    return null;
  }
  return ctx;
}

/** Plays `sound` once; never throws. */
export function playSound(sound: Sound): void {
  const a = audio();
  if (!a) return;
  try {
    if (a.state === "suspended") void a.resume().catch(() => undefined);
    const t0 = a.currentTime + 0.01;
    for (const [hz, at, len] of TONES[sound]) {
      const osc = a.createOscillator();
      const gain = a.createGain();
      osc.type = "sine";
      osc.frequency.value = hz;
      gain.gain.setValueAtTime(0, t0 + at);
      gain.gain.linearRampToValueAtTime(VOLUME, t0 + at + 0.01);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + at + len);
      osc.connect(gain).connect(a.destination);
      osc.start(t0 + at);
      osc.stop(t0 + at + len + 0.02);
    }
  } catch {
    // No output device: signals still show in the title and the live region.
  }
}
