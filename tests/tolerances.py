"""Named tolerances used across the tests, each with its reason.

Statistical tolerances are derived from the estimator's sampling variance (k standard
errors), never widened to make a test pass.
"""

import math

#: Kernel vs slow reference on identical inputs: both do the same IEEE operations except
#: the reference's threshold crossing comes from scipy's Lambert W (accurate to ~1e-15
#: relative); latencies are ~1e-4 s, so 1e-15 s absolute is round-off, not model error.
KERNEL_VS_REFERENCE_S = 1e-15

#: Rendering by cubic interpolation on the 1 µs fine grid vs exact evaluation of the
#: same waveform: relative to the peak. Fourth-order error (1 µs / ~100 µs phase)^4.
RENDER_INTERPOLATION_REL = 1e-4

#: A shift of δ in an event time must move the rendered potential by δ to within this
#: (issue 2).
FRACTIONAL_DELAY_S = 0.05e-6

#: Number of standard errors a statistical test allows: two-sided 1e-3 false-alarm rate
#: under the normal approximation.
Z_STAT = 3.29

#: Relative standard error of the MCD of n i.i.d. Gaussian values: the consecutive
#: absolute differences are 1-dependent; Var(|d|) = σ_d²(1 − 2/π) and the lag-1
#: covariance adds ~0.27 of that (computed in tests/analysis), so SE(MCD)/MCD ≈
#: sqrt((π/2 − 1)(1 + 2·0.135) / n) ≈ 0.85 / √n.
def mcd_relative_se(n):
    return 0.85 / math.sqrt(n)
