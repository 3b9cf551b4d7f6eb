"""Repetitive nerve stimulation: the decrement follows from the same physiology."""

import numpy as np
import pytest

from sfemg import SfemgInputError
from sfemg.synthesis import simulate_rns


def test_healthy_muscle_has_no_decrement():
    r = simulate_rns("healthy-edc", n_endplates=4000, seed=0)
    assert np.all(r.cmap_relative == 1.0) and np.all(r.decrement_percent == 0)


def test_decrement_grows_with_severity_and_is_abnormal_when_severe():
    dec = [simulate_rns(p, n_endplates=4000, seed=1, muscle="edc").decrement_4th_percent
           for p in ("achr-mg-mild", "achr-mg-moderate", "achr-mg-severe")]
    # SE of a decrement from 4000 fibres is ~0.6 %; the steps are several times that
    assert dec[0] < dec[1] < dec[2]
    assert dec[0] < 10 < dec[2]


def test_decrement_is_largest_at_the_4th_to_6th_response_then_recovers():
    r = simulate_rns("achr-mg-severe", n_endplates=4000, seed=2)
    assert np.argmax(r.decrement_percent) in (3, 4, 5)
    assert r.decrement_percent[9] < r.decrement_percent.max() - 1.0


@pytest.mark.parametrize("kwargs,match", [({"rate_hz": 0.0}, "rate_hz"), ({"n_stimuli": 2}, "n_stimuli"),
                                          ({"n_endplates": 0}, "n_endplates"), ({"preset": "x"}, "preset")])
def test_impossible_rns_parameters(kwargs, match):
    with pytest.raises(SfemgInputError, match=match):
        simulate_rns(**kwargs)
