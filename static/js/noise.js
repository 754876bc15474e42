// Noise removal in plain words: the presets the pages offer and what they mean for the engine.
//
// The engine (DeepFilterNet3) takes `atten_lim_db`, the most it may turn noise down, in dB:
// 100 means no limit. A preset is a (denoise, atten_lim_db) pair:
//   Off      denoise off            you hear the microphone as it is
//   Light    up to 6 dB  (noise at about half its loudness; voices keep all their air)
//   Strong   up to 15 dB (noise a faint background)
//   Maximum  no limit (100) (as much as the model removes, ~20 dB on a steady hum or fan)
// Any other strength (the advanced slider) is shown as "Custom".

export const PRESETS = Object.freeze([
  Object.freeze({ id: "off", name: "Off", denoise: false, atten: 100, hint: "You hear the microphone as it is." }),
  Object.freeze({ id: "light", name: "Light", denoise: true, atten: 6, hint: "Background noise turned down a little." }),
  Object.freeze({ id: "strong", name: "Strong", denoise: true, atten: 15, hint: "Background noise a faint hush." }),
  Object.freeze({ id: "maximum", name: "Maximum", denoise: true, atten: 100, hint: "As much noise removed as possible." }),
]);

export const FULL_DB = 100;

/** The preset of these settings, or null for a custom strength. */
export function presetOf(denoise, atten) {
  if (!denoise) return PRESETS[0];
  return PRESETS.find((p) => p.denoise && p.atten === Math.round(atten)) || null;
}

/** Is noise being removed at all? Strength 0 dB is "on" in name only. */
export function removesNoise(denoise, atten) {
  return Boolean(denoise) && Number(atten) > 0;
}

/** The slider's value in words. */
export function strengthWords(atten) {
  const db = Math.round(Number(atten));
  if (db >= FULL_DB) return "no limit (maximum)";
  if (db <= 0) return "0 dB: nothing removed";
  return `up to ${db} dB quieter`;
}

/** What a listener hears, in words: "Strong noise removal", "Off: the raw microphone"... */
export function describe(denoise, atten) {
  if (denoise == null) return null; // not live: nothing to describe
  if (!removesNoise(denoise, atten)) return "Off: you hear the microphone as it is";
  const preset = presetOf(denoise, atten);
  return preset ? `${preset.name} noise removal` : `Custom noise removal (${strengthWords(atten)})`;
}
