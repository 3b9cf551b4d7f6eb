"""Named tolerances used across the tests, each with its reason.

Statistical tolerances are derived from the estimator's sampling variance (k standard
errors), never widened to make a test pass.
"""

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

