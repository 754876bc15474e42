// The raw microphone, with the reasons it may not open in plain words.

// The browser's own processing would fight the server's denoiser; we want the raw microphone.
const MIC_CONSTRAINTS = { audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } };

function micMessage(err) {
  switch (err && err.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Microphone access was blocked. Allow the microphone for this site in your browser settings, then press Go live again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Connect one and press Go live again.";
    case "NotReadableError":
    case "AbortError":
      return "Your microphone could not be opened; another application may be using it. Close it and try again.";
    default:
      return "The microphone could not be started. Check that one is connected and try again.";
  }
}

export async function openMicrophone() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("This browser cannot use the microphone on this page. Open the site over HTTPS (or on localhost).");
  }
  try {
    return await navigator.mediaDevices.getUserMedia(MIC_CONSTRAINTS);
  } catch (err) {
    throw new Error(micMessage(err), { cause: err });
  }
}

/** "Hear yourself": the raw microphone to the speakers, while a switch is on. */
export class SelfMonitor {
  /** @param {HTMLInputElement} toggle  a checkbox role="switch"
   *  @param {HTMLAudioElement} audio
   *  @param {(text: string) => void} onError */
  constructor(toggle, audio, onError) {
    this.toggle = toggle;
    this.audio = audio;
    this.onError = onError;
    this.stream = null;
    toggle.addEventListener("change", () => (toggle.checked ? this.start() : this.stop()));
  }

  async start() {
    try {
      this.stream = await openMicrophone();
      this.audio.srcObject = this.stream;
      await this.audio.play();
    } catch (err) {
      this.stop();
      this.onError(err.message);
    }
  }

  stop() {
    this.toggle.checked = false;
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    this.stream = null;
    this.audio.srcObject = null;
  }
}
