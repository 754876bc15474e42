"""The DeepFilterNet3 ctypes binding."""

from __future__ import annotations

import numpy as np
import pytest

from denoise.engine import DeepFilterNet3
from denoise.exceptions import InvalidSettingError, StreamClosedError


@pytest.fixture(scope="module")
def engine() -> DeepFilterNet3:
    return DeepFilterNet3()


def test_output_lags_by_the_declared_delay(engine: DeepFilterNet3):
    rng = np.random.default_rng(0)
    signal = (0.01 * rng.standard_normal(20 * engine.hop_size)).astype(np.float32)
    signal[3000] = 0.9  # a click well above the noise floor
    state = engine.open(atten_lim_db=0)  # no attenuation: the output is the delayed input
    try:
        hops = signal.reshape(-1, engine.hop_size)
        out = np.concatenate([state.process_hop(hop)[0] for hop in hops])
    finally:
        state.close()
    assert int(np.argmax(np.abs(out))) == 3000 + engine.delay_samples


def test_state_checks_its_input_and_lifetime(engine: DeepFilterNet3):
    state = engine.open()
    with pytest.raises(ValueError, match="480"):
        state.process_hop(np.zeros(100, np.float32))
    with pytest.raises(InvalidSettingError):
        state.set_atten_lim(-3)
    out, snr = state.process_hop(np.zeros(engine.hop_size, np.float32))
    assert out.shape == (engine.hop_size,)
    assert isinstance(snr, float)
    state.close()
    state.close()
    with pytest.raises(StreamClosedError):
        state.process_hop(np.zeros(engine.hop_size, np.float32))
    with pytest.raises(StreamClosedError):
        state.set_atten_lim(10)
