"""Reference limits for jitter and the study verdict (docs/analysis.md §5, docs/literature.md).

The table is keyed by ``(muscle, electrode, activation)``; values are upper reference
limits in µs for the study's mean jitter and for a single pair (voluntary) or endplate
(stimulated). Where no limit is known the verdict says so instead of guessing: no
voluntary-to-stimulated conversion (×0.8 or /√2) is applied, and SFE voluntary limits are
used only when the subject's age is given, since they depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SfemgInputError

__all__ = ["REFERENCE_LIMITS", "REFERENCE_LIMITS_VERSION", "ReferenceLimits", "lookup_limits",
           "study_verdict", "mean_jitter_text", "canonical_muscle", "canonical_electrode", "ABNORMAL_PAIR_FRACTION",
           "STUDY_PAIRS", "STUDY_STATISTICS", "KNOWN_MUSCLES"]

#: Version of the table below; stored with every verdict.
REFERENCE_LIMITS_VERSION = "1.0.0 (2026-11)"

#: A study is abnormal when more than this fraction of pairs/endplates exceed the
#: individual limit or block (strictly greater: 2 of 20 is normal; docs/literature.md §4).
ABNORMAL_PAIR_FRACTION = 0.10

#: Accepted pairs (voluntary) or endplates (stimulated) a study is judged on: 20, the
#: guideline's number of pairs and the acceptable minimum of endplates (docs/literature.md
#: §5). With fewer, a verdict is given only where no further ones could change it.
STUDY_PAIRS = 20

#: The statistics of :func:`study_verdict`'s dict: floats, NaN where not defined (no
#: accepted pair, no limits), null in JSON.
STUDY_STATISTICS = ("mean_jitter_us", "median_jitter_us", "percent_pairs_blocking",
                    "percent_pairs_above_limit", "percent_pairs_abnormal")

STALBERG_2016 = ("Stålberg E, Sanders DB, Ali S, et al. Reference values for jitter recorded by "
                 "concentric needle electrodes in healthy controls: a multicenter study. "
                 "Muscle Nerve 2016;53(3):351-362. doi:10.1002/mus.24750")
BROMBERG_1994 = ("Bromberg MB, Scott DM. Single fiber EMG reference values: reformatted in tabular "
                 "form. Muscle Nerve 1994;17:820-821; data of Gilchrist JM and the Ad Hoc Committee "
                 "of the AAEM SIG on SFEMG, Muscle Nerve 1992;15(2):151-161, doi:10.1002/mus.880150205")
TRONTELJ_1986 = ("Trontelj JV, Mihelin M, Fernandez JM, Stålberg E. Axonal stimulation for end-plate "
                 "jitter studies. J Neurol Neurosurg Psychiatry 1986;49:677-685 (year and pages "
                 "unverified, docs/literature.md §15)")


@dataclass(frozen=True)
class ReferenceLimits:
    """Upper reference limits of jitter, µs, with their source."""

    mean_us: float
    individual_us: float
    citation: str
    note: str = ""


def _cne(mean, indiv):
    return ReferenceLimits(float(mean), float(indiv), STALBERG_2016)


#: (muscle, electrode, activation) -> limits. Concentric-needle values: Stålberg et al. 2016
#: (only these three muscles were studied). SFE stimulated EDC: Trontelj et al. SFE
#: voluntary limits depend on age: see :data:`SFE_VOLUNTARY_BY_AGE`.
REFERENCE_LIMITS = {
    ("orbicularis-oculi", "concentric", "voluntary"): _cne(31, 45),
    ("frontalis", "concentric", "voluntary"): _cne(28, 38),
    ("edc", "concentric", "voluntary"): _cne(30, 43),
    ("orbicularis-oculi", "concentric", "stimulated"): _cne(27, 36),
    ("frontalis", "concentric", "stimulated"): _cne(21, 28),
    ("edc", "concentric", "stimulated"): _cne(24, 35),
    ("edc", "sfe", "stimulated"): ReferenceLimits(25.0, 40.0, TRONTELJ_1986,
                                                  "mean of 30 endplates; axonal microstimulation"),
}

#: SFE voluntary limits by age decade (lowest age, highest age, mean µs, individual µs):
#: 95 % upper confidence limits of Bromberg & Scott 1994 from the Gilchrist 1992 data.
SFE_VOLUNTARY_BY_AGE = {
    "frontalis": ((10, 19, 33.6, 49.7), (20, 29, 33.9, 50.1), (30, 39, 34.4, 51.3),
                  (40, 49, 35.5, 53.5), (50, 59, 37.3, 57.5), (60, 69, 40.0, 63.9),
                  (70, 79, 43.8, 74.1)),
    "orbicularis-oculi": ((10, 19, 39.8, 54.6), (20, 29, 39.8, 54.7), (30, 39, 40.0, 54.7),
                          (40, 49, 40.4, 54.8), (50, 59, 40.9, 55.0), (60, 69, 41.8, 55.3),
                          (70, 79, 43.0, 55.8)),
    "edc": ((10, 19, 34.9, 50.0), (20, 29, 34.9, 50.1), (30, 39, 35.1, 50.5), (40, 49, 35.4, 51.3),
            (50, 59, 35.9, 52.5), (60, 69, 36.6, 54.4), (70, 79, 37.7, 57.2), (80, 89, 39.1, 61.1),
            (90, 99, 40.9, 66.5)),
}

#: Every muscle some table above has limits for.
KNOWN_MUSCLES = tuple(sorted({key[0] for key in REFERENCE_LIMITS} | set(SFE_VOLUNTARY_BY_AGE)))

_ALIASES = {
    "edc": "edc", "ed": "edc", "extensor-digitorum": "edc", "extensor digitorum": "edc",
    "extensor-digitorum-communis": "edc", "extensor digitorum communis": "edc",
    "frontalis": "frontalis", "fr": "frontalis", "front": "frontalis",
    "orbicularis-oculi": "orbicularis-oculi", "orbicularis oculi": "orbicularis-oculi",
    "orbicularis_oculi": "orbicularis-oculi", "oo": "orbicularis-oculi",
}


def canonical_muscle(muscle):
    """The table key for a muscle name or alias ("ED", "extensor digitorum" -> "edc").

    Unknown names are returned lower-cased (no limits will be found for them); None stays None.
    """
    if muscle is None:
        return None
    key = str(muscle).strip().lower()
    return _ALIASES.get(key, _ALIASES.get(key.replace("_", "-"), key))


_ELECTRODES = {
    "sfe": "sfe", "sf": "sfe", "single-fibre": "sfe", "single-fiber": "sfe",
    "concentric": "concentric", "cne": "concentric", "cn": "concentric", "concentric-needle": "concentric",
}


def canonical_electrode(electrode, where="electrode"):
    """``"sfe"`` or ``"concentric"`` for an electrode name or alias, any case ("SFE",
    "single fibre", "Concentric", "CNE"); None (or blank text, as some tools write for
    "not stated") is None.

    Raises
    ------
    SfemgInputError
        For any other name (it would otherwise be read as SFE, and the SFE limits used).
    """
    key = "-".join(str(electrode).strip().lower().replace("_", " ").split()) if electrode is not None else ""
    if not key:
        return None
    if key not in _ELECTRODES:
        raise SfemgInputError(f"{where} {electrode!r} is neither 'sfe' (single-fibre) nor 'concentric' "
                              "(concentric needle); give the electrode (--electrode)")
    return _ELECTRODES[key]


def mean_jitter_text(study):
    """The study's mean jitter and the pairs it is of, for one line: "mean jitter 58 µs
    over 16 accepted pairs", "... over 15 of 16 accepted pairs" (one blocking too often
    for a jitter), "no jitter measured on 3 accepted pairs", "no accepted pair".

    Parameters
    ----------
    study : dict
        From :func:`study_verdict`.
    """
    unit = "endplate" if study.get("activation") == "stimulated" else "pair"
    n_accepted = study.get("n_pairs_accepted", 0)
    n_jitter = study.get("n_pairs_with_jitter", n_accepted)  # (summaries written before the field)
    units = f"accepted {unit}{'' if n_accepted == 1 else 's'}"
    mean = study.get("mean_jitter_us")
    if not n_accepted:
        return f"no accepted {unit}"
    if mean is None or not np.isfinite(mean) or not n_jitter:
        return f"no jitter measured on {n_accepted} {units}"
    of = f"{n_jitter} of " if n_jitter < n_accepted else ""
    return f"mean jitter {mean:.0f} µs over {of}{n_accepted} {units}"


def verdict_with_reason(study):
    """A study's verdict with the reason that decided it, for one line: "abnormal (mean
    jitter 65.6 µs > 35.4 µs; ...)" (an "unknown (...)" verdict carries it already).

    Parameters
    ----------
    study : dict
        From :func:`study_verdict`.
    """
    verdict, reason = study.get("verdict", ""), study.get("verdict_reason")
    return f"{verdict} ({reason})" if reason and reason not in verdict else verdict


def lookup_limits(muscle, electrode, activation, age_years=None):
    """Reference limits for a study, or the reason there are none.

    Parameters
    ----------
    muscle : str or None
        Muscle name or alias.
    electrode : {"sfe", "concentric"}
        Or an alias (:func:`canonical_electrode`).
    activation : {"voluntary", "stimulated"}
    age_years : float, optional
        Needed for SFE voluntary limits.

    Returns
    -------
    limits : ReferenceLimits or None
    reason : str
        Empty when limits were found, else why not (one line).
    """
    electrode = canonical_electrode(electrode)
    if electrode is None:
        raise SfemgInputError("electrode: give 'sfe' or 'concentric'")
    if activation not in ("voluntary", "stimulated"):
        raise SfemgInputError(f"activation must be 'voluntary' or 'stimulated', not {activation!r}")
    key = canonical_muscle(muscle)
    if key is None:
        return None, "no muscle given"
    if (key, electrode, activation) in REFERENCE_LIMITS:
        return REFERENCE_LIMITS[(key, electrode, activation)], ""
    if electrode == "sfe" and activation == "voluntary" and key in SFE_VOLUNTARY_BY_AGE:
        if age_years is None:
            return None, f"SFE voluntary limits for {key} depend on age; give the subject's age"
        for lo, hi, mean, indiv in SFE_VOLUNTARY_BY_AGE[key]:
            if lo <= age_years < hi + 1:
                return ReferenceLimits(mean, indiv, BROMBERG_1994, f"age {lo}-{hi} years"), ""
        return None, f"no SFE voluntary limits for {key} at age {age_years:g}"
    if key not in KNOWN_MUSCLES:  # (a typo, or a muscle no table covers)
        return None, f"no reference limits for {key}: the tables cover {', '.join(KNOWN_MUSCLES)}"
    return None, f"no reference limits for {key} ({electrode}, {activation})"


def study_verdict(pairs, *, muscle=None, electrode="sfe", activation="voluntary", age_years=None):
    """Summary statistics and the normal/abnormal verdict of a study (docs/analysis.md §5).

    Only accepted pairs enter (rejected potentials and MCD below the low-MCD limit are
    excluded). Abnormal if the mean jitter exceeds the mean limit, or more than 10 % of
    pairs exceed the individual limit or block (a blocking pair counts as abnormal, also
    one that blocks too often for a jitter: no two consecutive discharges). The mean and
    median are of the pairs with a jitter. With fewer than :data:`STUDY_PAIRS` accepted
    pairs the missing ones are counted as normal pairs without jitter: a study abnormal
    even so is abnormal whatever they would show; otherwise the verdict is unknown (a
    normal study needs them all).

    Parameters
    ----------
    pairs : iterable of PairResult
    muscle, electrode, activation, age_years
        Select the reference limits (see :func:`lookup_limits`).

    Returns
    -------
    dict
        ``n_pairs``, ``n_pairs_accepted``, ``n_pairs_with_jitter`` (those the mean and
        median are of), ``mean_jitter_us``, ``median_jitter_us``,
        ``percent_pairs_above_limit``, ``percent_pairs_blocking``,
        ``percent_pairs_abnormal``, ``muscle``, ``electrode``, ``activation``, ``limits``
        (mean_us, individual_us, citation, note, table_version) or None, ``verdict``
        ("normal", "abnormal" or "unknown (...)") and ``verdict_reason``.
    """
    pairs = list(pairs)
    ok = [p for p in pairs if p.accepted and (np.isfinite(p.jitter_us) or p.n_blocked > 0)]
    jit = np.array([p.jitter_us for p in ok], dtype=float)  # NaN: blocking too often for a jitter
    measured = jit[np.isfinite(jit)]
    blocking = np.array([p.n_blocked > 0 for p in ok], dtype=bool)
    electrode = canonical_electrode(electrode)  # (None: refused by lookup_limits)
    limits, why = lookup_limits(muscle, electrode, activation, age_years)
    out = {
        "n_pairs": len(pairs), "n_pairs_accepted": len(ok), "n_pairs_with_jitter": int(measured.size),
        "mean_jitter_us": float(measured.mean()) if measured.size else float("nan"),
        "median_jitter_us": float(np.median(measured)) if measured.size else float("nan"),
        "percent_pairs_blocking": 100.0 * blocking.mean() if blocking.size else float("nan"),
        "percent_pairs_above_limit": float("nan"), "percent_pairs_abnormal": float("nan"),
        "muscle": canonical_muscle(muscle), "electrode": electrode, "activation": activation,
        "limits": None, "limits_table_version": REFERENCE_LIMITS_VERSION,
    }
    if limits is None:
        out["verdict"] = f"unknown ({why})"
        out["verdict_reason"] = why
        return out
    out["limits"] = {"mean_us": limits.mean_us, "individual_us": limits.individual_us,
                     "citation": limits.citation, "note": limits.note,
                     "table_version": REFERENCE_LIMITS_VERSION}
    if not jit.size:
        out["verdict"] = "unknown (no accepted pairs)"
        out["verdict_reason"] = "no accepted pairs"
        return out
    above = jit > limits.individual_us
    abnormal = above | blocking
    out["percent_pairs_above_limit"] = 100.0 * above.mean()
    out["percent_pairs_abnormal"] = 100.0 * abnormal.mean()
    def count(n):
        return f"{n} {'endplate' if activation == 'stimulated' else 'pair'}{'' if n == 1 else 's'}"

    judged_on = max(jit.size, STUDY_PAIRS)
    even_so = f" ({count(jit.size)}: {judged_on - jit.size} more could not bring it below)" \
        if judged_on > jit.size else ""
    reasons = []
    if measured.size and measured.sum() / (measured.size + judged_on - jit.size) > limits.mean_us:
        reasons.append(f"mean jitter {out['mean_jitter_us']:.1f} µs > {limits.mean_us:g} µs{even_so}")
    if abnormal.sum() / judged_on > ABNORMAL_PAIR_FRACTION:
        of_study = f"the {STUDY_PAIRS} a study needs" if judged_on > jit.size else str(judged_on)
        reasons.append(f"{abnormal.sum()} of {count(jit.size)} above {limits.individual_us:g} µs or blocking "
                       f"(> {ABNORMAL_PAIR_FRACTION * 100:g} % of {of_study})")
    if reasons:
        out["verdict"], out["verdict_reason"] = "abnormal", "; ".join(reasons)
    elif judged_on > jit.size:
        why = f"{count(jit.size)} accepted: a normal study needs {STUDY_PAIRS}"
        out["verdict"], out["verdict_reason"] = f"unknown ({why})", why
    else:
        out["verdict"], out["verdict_reason"] = "normal", (
            f"mean jitter {out['mean_jitter_us']:.1f} µs ≤ {limits.mean_us:g} µs; {abnormal.sum()} of "
            f"{count(jit.size)} above {limits.individual_us:g} µs or blocking "
            f"(≤ {ABNORMAL_PAIR_FRACTION * 100:g} %)")
    return out
