"""lattn.lm_cost (speed and memory of notebook 06's LM): bad sizes are refused with a clear error before any work."""

import pytest

from lattn.lm import CharLM, LMConfig
from lattn.lm_cost import decode_state_bytes, prefill_peak_bytes, speed
from lattn.lm_data import CharCorpus

CONFIG = LMConfig(10, kind="mla", dim=16, heads=2, layers=1, context=8, d_c=4, d_rope=2)


@pytest.mark.parametrize("measure", [decode_state_bytes, prefill_peak_bytes])
@pytest.mark.parametrize(("context", "error"), [(0, ValueError), (-3, ValueError), (4.0, TypeError), (True, TypeError)])
def test_memory_measures_refuse_bad_context(measure, context, error):
    with pytest.raises(error, match="context must be an integer ≥ 1"):
        measure(CONFIG, context)


def test_decode_state_counts_d_c_plus_d_rope_per_token():
    assert decode_state_bytes(CONFIG, 5) == 5 * (4 + 2) * 4  # one layer, float32


@pytest.mark.parametrize("bad", [{"steps": 0}, {"new_tokens": 0}, {"repeats": 0}, {"batch_size": 0}, {"threads": 0}])
def test_speed_refuses_bad_sizes(bad):
    with pytest.raises(ValueError, match=f"{next(iter(bad))} must be an integer ≥ 1"):
        speed(CharLM.build(CONFIG, seed=0), CharCorpus.load(), **bad)
