// The main page's noise control: presets in plain words, the exact strength as "advanced".
// The choice is the user's preference on the server (GET/PATCH /api/me/noise/), so every device
// shows it, and a live stream takes it at once.

import { api } from "./api.js";
import { PRESETS, FULL_DB, presetOf, strengthWords } from "./noise.js";
import { $, debounce, el } from "./ui.js";

const SAVE_DELAY_MS = 300;

export class NoisePanel {
  /** @param {{initial: {denoise: boolean, atten_lim_db: number},
   *   apply: (change: object) => Promise<boolean>, announce: (text: string) => void,
   *   onError: (text: string) => void}} deps */
  constructor({ initial, apply, announce, onError }) {
    this.value = { denoise: Boolean(initial.denoise), atten_lim_db: Number(initial.atten_lim_db) };
    this.apply = apply;
    this.announce = announce;
    this.onError = onError;
    this.nodes = { presets: $("presets"), strength: $("strength"), strengthValue: $("strength-value") };
    this.radios = PRESETS.map((preset) => {
      const input = el("input", { type: "radio", name: "preset", value: preset.id, id: `preset-${preset.id}` });
      input.addEventListener("change", () => input.checked && this.choose(preset));
      this.nodes.presets.append(
        el("div", { class: "preset" }, input,
          el("label", { for: input.id }, el("span", { class: "preset-name", text: preset.name }),
            el("span", { class: "preset-hint", text: preset.hint }))),
      );
      return input;
    });
    const saveSoon = debounce(() => this.save({ atten_lim_db: this.value.atten_lim_db }), SAVE_DELAY_MS);
    this.nodes.strength.addEventListener("input", () => {
      this.value.atten_lim_db = Number(this.nodes.strength.value);
      this.render();
      saveSoon();
    });
    this.render();
  }

  /** What to start a stream with. */
  settings() {
    return { ...this.value };
  }

  choose(preset) {
    this.value = { denoise: preset.denoise, atten_lim_db: preset.denoise ? preset.atten : this.value.atten_lim_db };
    this.render();
    this.save({ ...this.value }).then((ok) => ok && this.announce(`Noise removal: ${preset.name}.`));
  }

  render() {
    const { denoise, atten_lim_db: atten } = this.value;
    const preset = presetOf(denoise, atten);
    this.radios.forEach((radio) => (radio.checked = Boolean(preset) && radio.value === preset.id));
    this.nodes.strength.value = String(Math.round(denoise ? atten : FULL_DB));
    this.nodes.strength.disabled = !denoise;
    this.nodes.strengthValue.textContent = denoise ? strengthWords(atten) : "off";
    this.nodes.presets.dataset.custom = String(!preset);
  }

  /** Remember the change for the account, and apply it to a running stream. */
  async save(change) {
    const [saved, applied] = await Promise.all([
      api("/api/me/noise/", { method: "PATCH", body: change }).then(() => true, (err) => {
        this.onError(`Your noise choice was not saved: ${err.message}`);
        return false;
      }),
      this.apply(change),
    ]);
    return saved && applied;
  }
}
