"""Repetitive nerve stimulation: the decrement follows from the same physiology."""

import numpy as np
import pytest

from sfemg import SfemgInputError
from sfemg.synthesis import simulate_rns


def test_healthy_muscle_has_no_decrement():
    r = simulate_rns("healthy-edc", n_endplates=4000, seed=0)
    assert np.all(r.cmap_relative == 1.0) and np.all(r.decrement_percent == 0)


def test_decrement_grows_with_severity_and_is_abnormal_when_severe():
    """Mean over 10 seeds, 4000 fibres (a seed's SD 0.1, 0.33, 0.58 % for the three; ±3 SE
    of the 10-seed mean is under 0.6 %): mild < 1 %, moderate ~4.7 %, severe ~11.8 % —
    abnormal (> 10 %). Until the twenty-second session one seed was asserted, which read
    10.4 % while the severe preset averaged 9.6 % (a researcher's review); its complement
    lysis went 0.30 -> 0.35 (docs/physiology.md)."""
    dec = [np.mean([simulate_rns(p, n_endplates=4000, seed=s, muscle="edc").decrement_4th_percent
                    for s in range(1, 11)]) for p in ("achr-mg-mild", "achr-mg-moderate", "achr-mg-severe")]
    assert dec[0] < 1.0 < dec[1] < 10.0 < dec[2] - 3 * 0.58 / np.sqrt(10)


def test_decrement_is_largest_at_the_4th_to_6th_response_then_recovers():
    r = simulate_rns("achr-mg-severe", n_endplates=4000, seed=2)
    assert np.argmax(r.decrement_percent) in (3, 4, 5)
    assert r.decrement_percent[9] < r.decrement_percent.max() - 1.0


@pytest.mark.parametrize("kwargs,match", [({"rate_hz": 0.0}, "rate_hz"), ({"n_stimuli": 2}, "n_stimuli"),
                                          ({"n_endplates": 0}, "n_endplates"), ({"preset": "x"}, "preset"),
                                          ({"rate_hz": "3"}, "rate_hz"), ({"muscle": 5}, "muscle")])
def test_impossible_rns_parameters(kwargs, match):
    with pytest.raises(SfemgInputError, match=match):
        simulate_rns(**kwargs)
