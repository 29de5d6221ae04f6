"""Experiment and quasi-experiment statistics for conversion-lift studies.

What this module answers, each with a results object (frozen dataclass with ``conf_int``,
``summary`` and, where the CLI reports it, ``to_dict`` giving exactly the JSON keys of
DESIGN.md):

- :func:`estimate_lift`, :func:`estimate_lift_frame`: two arms, absolute difference (unpooled
  Wald), relative lift (delta method on the ratio of means), optional CUPED adjustment;
- :func:`estimate_lift_arms`, :func:`estimate_lift_segments`: several comparisons with Holm or
  Benjamini-Hochberg adjusted p-values;
- :func:`estimate_lift_clustered`: cluster-randomised designs (accounts, reps, regions);
- :func:`check_sample_ratio`: sample-ratio mismatch;
- :func:`plan_sample_size`, :func:`detectable_effect`, :func:`detectable_effect_for`: power;
- :func:`estimate_did`, :func:`event_study`: difference-in-differences roll-outs;
- :func:`describe_lift`: one plain-language sentence for the report.

Conventions: rates and lifts are fractions (0.15 means +15 %); "rows" in error messages are
1-based positions in the frame (row 1 is the first data row, below a CSV's header). Missing
values are never dropped silently: a NaN in a column the analysis uses raises a ``ValueError``
naming the column and the rows, so the analyst decides how to treat them. A bad argument
raises ``ValueError`` naming the argument and the values it allows.

statsmodels is imported inside the functions that need it, so that the light paths (the
two-arm counts API and the power closed form used by ``alignment power``) start fast.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats

log = logging.getLogger(__name__)

__all__ = [
    "DidResult",
    "EventStudyResult",
    "LiftResult",
    "LiftTableResult",
    "PowerResult",
    "SrmResult",
    "check_sample_ratio",
    "describe_lift",
    "detectable_effect",
    "detectable_effect_for",
    "estimate_did",
    "estimate_lift",
    "estimate_lift_arms",
    "estimate_lift_clustered",
    "estimate_lift_frame",
    "estimate_lift_segments",
    "event_study",
    "plan_sample_size",
]

LIFT_KEYS: tuple[str, ...] = (
    "control_n",
    "treatment_n",
    "control_rate",
    "treatment_rate",
    "abs_diff",
    "abs_ci_low",
    "abs_ci_high",
    "rel_lift",
    "rel_ci_low",
    "rel_ci_high",
    "p_value",
)
"""JSON keys of ``alignment lift`` (DESIGN.md), in order; ``cuped_*`` keys follow them."""

CUPED_KEYS: tuple[str, ...] = (
    "cuped_theta",
    "cuped_control_rate",
    "cuped_treatment_rate",
    "cuped_abs_diff",
    "cuped_abs_ci_low",
    "cuped_abs_ci_high",
    "cuped_rel_lift",
    "cuped_rel_ci_low",
    "cuped_rel_ci_high",
    "cuped_p_value",
    "cuped_variance_reduction",
)
"""Extra JSON keys of ``alignment lift --covariate X``."""

DID_KEYS: tuple[str, ...] = ("estimate", "se", "ci_low", "ci_high", "p_value", "n", "cov_type")
"""JSON keys of ``alignment did`` (DESIGN.md)."""

POWER_KEYS: tuple[str, ...] = ("n_per_arm", "total_n", "baseline", "mde_rel", "alpha", "power")
"""JSON keys of ``alignment power`` (DESIGN.md)."""

COV_TYPES: tuple[str, ...] = ("nonrobust", "HC1", "cluster")
P_ADJUST_METHODS: tuple[str, ...] = ("holm", "fdr_bh", "bonferroni", "none")

OutcomeKind = Literal["binary", "numeric"]


# --------------------------------------------------------------------------------------------
# small shared pieces


def _critical_value(alpha: float, df: float | None) -> float:
    """Two-sided critical value: normal quantile, or Student t with ``df`` degrees of freedom."""
    if df is None:
        return float(stats.norm.ppf(1 - alpha / 2))
    return float(stats.t.ppf(1 - alpha / 2, df))


def _two_sided_p(statistic: float, df: float | None) -> float:
    """Two-sided p-value of a z (``df`` None) or t statistic."""
    if df is None:
        return float(2 * stats.norm.sf(abs(statistic)))
    return float(2 * stats.t.sf(abs(statistic), df))


def _check_alpha(alpha: float, name: str = "alpha") -> float:
    alpha = float(alpha)
    if not 0 < alpha < 1:
        raise ValueError(f"{name} must lie strictly between 0 and 1; got {alpha!r}")
    return alpha


def _format_rows(rows: Sequence[int]) -> str:
    """'3, 17' or '3, 17, 20, 21, 40 … (12 rows)': 1-based row numbers for a message."""
    shown = ", ".join(map(str, rows[:5]))
    return shown + (f" … ({len(rows)} rows)" if len(rows) > 5 else "")


def _rows_where(mask: np.ndarray | pd.Series) -> list[int]:
    """1-based positions where ``mask`` is true."""
    return (np.flatnonzero(np.asarray(mask, dtype=bool)) + 1).tolist()


def _require_columns(frame: pd.DataFrame, columns: Sequence[str | None]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a pandas DataFrame; got {type(frame).__name__}")
    for column in columns:
        if column is not None and column not in frame.columns:
            available = ", ".join(map(str, frame.columns))
            raise ValueError(f"column {column!r} not found; columns present: {available}")


def _require_no_missing(
    frame: pd.DataFrame, columns: Sequence[str | None], among: np.ndarray | None = None
) -> None:
    """Raise naming the column and 1-based rows if a used column holds NaN/None."""
    for column in columns:
        if column is None:
            continue
        missing = frame[column].isna().to_numpy()
        if among is not None:
            missing = missing & among
        if missing.any():
            raise ValueError(
                f"column {column!r} has missing values in rows "
                f"{_format_rows(_rows_where(missing))}"
                " (1-based); drop or fill them before the analysis"
            )


def _numeric_values(frame: pd.DataFrame, column: str, what: str) -> np.ndarray:
    """The column as float64, or a ValueError saying it must be numeric (``what`` describes it)."""
    series = frame[column]
    if not (pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series)) or (
        pd.api.types.is_complex_dtype(series)
    ):
        example = series.dropna().iloc[0] if series.notna().any() else None
        raise ValueError(
            f"column {column!r} must hold {what}; found dtype {series.dtype} (e.g. {example!r})"
        )
    values = series.to_numpy(dtype=float, na_value=np.nan)
    infinite = np.isinf(values)
    if infinite.any():
        raise ValueError(
            f"column {column!r} has infinite values in rows {_format_rows(_rows_where(infinite))}"
            " (1-based)"
        )
    return values


def _outcome_kind(values: np.ndarray) -> OutcomeKind:
    """'binary' when every value is 0 or 1, else 'numeric'."""
    return "binary" if np.isin(values, (0.0, 1.0)).all() else "numeric"


def _check_arm_labels(
    frame: pd.DataFrame, arm_col: str, labels: Sequence[Hashable], names: Sequence[str]
) -> None:
    """At least two arms in the column, the labels present and distinct."""
    present = pd.unique(frame[arm_col].dropna())
    shown = ", ".join(repr(v) for v in present[:20])
    if len(present) < 2:
        raise ValueError(
            f"column {arm_col!r} needs at least two arms to compare; "
            f"it holds only: {shown or 'none'}"
        )
    if len(set(labels)) < len(labels):
        raise ValueError(f"the arms compared must differ; got {', '.join(map(repr, labels))}")
    present_set = set(present.tolist())
    for label, name in zip(labels, names, strict=True):
        if label not in present_set:
            raise ValueError(
                f"{name} arm {label!r} not found in column {arm_col!r}; arms present: {shown}"
            )


def _check_arm_size(n: int, label: Hashable, where: str = "") -> None:
    if n < 2:
        raise ValueError(f"arm {label!r}{where} has {n} unit(s); need at least 2 per arm")


# --------------------------------------------------------------------------------------------
# two-arm lift


@dataclass(frozen=True, slots=True)
class LiftResult:
    """Treatment versus control on one outcome: absolute difference and relative lift.

    Intervals and p-value use the normal distribution, or Student t with ``df`` degrees of
    freedom when ``df`` is set (cluster-robust fits). ``abs_ci_*``/``rel_ci_*`` are at
    ``alpha``; :meth:`conf_int` gives them at any level.
    """

    control_label: Hashable  # arm label of the control, as in the data
    treatment_label: Hashable  # arm label of the treatment
    control_n: int  # units in the control arm
    treatment_n: int  # units in the treatment arm
    control_rate: float  # mean outcome in control (conversion rate for a 0/1 outcome)
    treatment_rate: float  # mean outcome in treatment
    control_se: float  # standard error of control_rate
    treatment_se: float  # standard error of treatment_rate
    abs_diff: float  # treatment_rate - control_rate, in outcome units
    abs_se: float  # standard error of abs_diff (unpooled)
    rel_lift: float  # treatment_rate / control_rate - 1, a fraction
    rel_se: float  # delta-method standard error of rel_lift
    p_value: float  # two-sided, H0: abs_diff = 0, Wald statistic abs_diff / abs_se
    alpha: float = 0.05  # level of the stored intervals
    outcome_kind: OutcomeKind = "binary"  # "binary" (0/1) or "numeric"
    method: str = "wald"  # "wald", "cuped" or "ols-cluster"
    df: float | None = None  # t degrees of freedom; None means normal
    n_clusters: int | None = None  # clusters, for cluster-randomised designs
    covariate: str | None = None  # pre-period covariate used by CUPED
    cuped: LiftResult | None = None  # CUPED-adjusted estimate when a covariate was given
    cuped_theta: float | None = None  # CUPED slope cov(y, x) / var(x), pooled over both arms
    cuped_variance_reduction: float | None = None  # 1 - var(adjusted abs_diff) / var(abs_diff)

    def _ci(self, estimate: float, se: float, alpha: float | None) -> tuple[float, float]:
        crit = _critical_value(_check_alpha(self.alpha if alpha is None else alpha), self.df)
        return estimate - crit * se, estimate + crit * se

    @property
    def abs_ci_low(self) -> float:
        """Lower end of the absolute-difference interval at ``alpha``."""
        return self._ci(self.abs_diff, self.abs_se, None)[0]

    @property
    def abs_ci_high(self) -> float:
        """Upper end of the absolute-difference interval at ``alpha``."""
        return self._ci(self.abs_diff, self.abs_se, None)[1]

    @property
    def rel_ci_low(self) -> float:
        """Lower end of the relative-lift interval (delta method) at ``alpha``."""
        return self._ci(self.rel_lift, self.rel_se, None)[0]

    @property
    def rel_ci_high(self) -> float:
        """Upper end of the relative-lift interval (delta method) at ``alpha``."""
        return self._ci(self.rel_lift, self.rel_se, None)[1]

    def conf_int(self, alpha: float | None = None) -> pd.DataFrame:
        """Intervals for ``abs_diff`` and ``rel_lift`` (rows) as columns ``low``, ``high``.

        With CUPED, rows ``cuped_abs_diff`` and ``cuped_rel_lift`` follow.
        """
        rows = {
            "abs_diff": self._ci(self.abs_diff, self.abs_se, alpha),
            "rel_lift": self._ci(self.rel_lift, self.rel_se, alpha),
        }
        if self.cuped is not None:
            rows["cuped_abs_diff"] = self.cuped._ci(self.cuped.abs_diff, self.cuped.abs_se, alpha)
            rows["cuped_rel_lift"] = self.cuped._ci(self.cuped.rel_lift, self.cuped.rel_se, alpha)
        return pd.DataFrame.from_dict(rows, orient="index", columns=["low", "high"])

    def summary(self, alpha: float | None = None) -> pd.DataFrame:
        """The tidy table the report shows.

        One row per quantity (``control_rate``, ``treatment_rate``, ``abs_diff``, ``rel_lift``,
        then ``cuped_abs_diff``, ``cuped_rel_lift`` with CUPED); columns ``estimate``, ``se``,
        ``low``, ``high``, ``p_value`` (comparisons only), ``n``.
        """
        records = [
            ("control_rate", self.control_rate, self.control_se, np.nan, self.control_n),
            ("treatment_rate", self.treatment_rate, self.treatment_se, np.nan, self.treatment_n),
            ("abs_diff", self.abs_diff, self.abs_se, self.p_value, self.n),
            ("rel_lift", self.rel_lift, self.rel_se, self.p_value, self.n),
        ]
        if self.cuped is not None:
            c = self.cuped
            records += [
                ("cuped_abs_diff", c.abs_diff, c.abs_se, c.p_value, self.n),
                ("cuped_rel_lift", c.rel_lift, c.rel_se, c.p_value, self.n),
            ]
        table = pd.DataFrame(records, columns=["quantity", "estimate", "se", "p_value", "n"])
        table = table.set_index("quantity")
        lows, highs = zip(
            *(self._ci(e, s, alpha) for e, s in zip(table.estimate, table.se, strict=True)),
            strict=True,
        )
        table.insert(2, "low", lows)
        table.insert(3, "high", highs)
        return table

    @property
    def n(self) -> int:
        """Units in both arms."""
        return self.control_n + self.treatment_n

    def to_dict(self) -> dict[str, Any]:
        """Exactly the JSON keys of ``alignment lift`` (DESIGN.md), plus ``cuped_*`` with CUPED."""
        out: dict[str, Any] = {
            "control_n": int(self.control_n),
            "treatment_n": int(self.treatment_n),
            "control_rate": float(self.control_rate),
            "treatment_rate": float(self.treatment_rate),
            "abs_diff": float(self.abs_diff),
            "abs_ci_low": float(self.abs_ci_low),
            "abs_ci_high": float(self.abs_ci_high),
            "rel_lift": float(self.rel_lift),
            "rel_ci_low": float(self.rel_ci_low),
            "rel_ci_high": float(self.rel_ci_high),
            "p_value": float(self.p_value),
        }
        if self.cuped is not None:
            c = self.cuped
            out |= {
                "cuped_theta": float(self.cuped_theta),  # type: ignore[arg-type]
                "cuped_control_rate": float(c.control_rate),
                "cuped_treatment_rate": float(c.treatment_rate),
                "cuped_abs_diff": float(c.abs_diff),
                "cuped_abs_ci_low": float(c.abs_ci_low),
                "cuped_abs_ci_high": float(c.abs_ci_high),
                "cuped_rel_lift": float(c.rel_lift),
                "cuped_rel_ci_low": float(c.rel_ci_low),
                "cuped_rel_ci_high": float(c.rel_ci_high),
                "cuped_p_value": float(c.p_value),
                "cuped_variance_reduction": float(self.cuped_variance_reduction),  # type: ignore[arg-type]
            }
        return out


def _lift_from_moments(
    mean_c: float,
    se_c: float,
    n_c: int,
    mean_t: float,
    se_t: float,
    n_t: int,
    *,
    alpha: float,
    outcome_kind: OutcomeKind,
    labels: tuple[Hashable, Hashable] = ("control", "treatment"),
    method: str = "wald",
) -> LiftResult:
    """Unpooled Wald difference and delta-method relative lift from two independent means."""
    if mean_c == 0:
        raise ValueError(
            f"control arm {labels[0]!r} has mean outcome 0 (no conversions): "
            "relative lift is undefined"
        )
    abs_diff = mean_t - mean_c
    abs_se = math.sqrt(se_c**2 + se_t**2)
    if abs_se == 0:
        raise ValueError(
            "both arms have constant outcomes (no variance): the standard error is 0 and no "
            "interval or p-value can be given"
        )
    rel_lift = mean_t / mean_c - 1
    # Delta method on R = mean_t / mean_c with independent arms:
    # Var(R) ~ se_t^2 / mean_c^2 + mean_t^2 * se_c^2 / mean_c^4
    rel_se = math.sqrt(se_t**2 / mean_c**2 + mean_t**2 * se_c**2 / mean_c**4)
    return LiftResult(
        control_label=labels[0],
        treatment_label=labels[1],
        control_n=int(n_c),
        treatment_n=int(n_t),
        control_rate=float(mean_c),
        treatment_rate=float(mean_t),
        control_se=float(se_c),
        treatment_se=float(se_t),
        abs_diff=float(abs_diff),
        abs_se=float(abs_se),
        rel_lift=float(rel_lift),
        rel_se=float(rel_se),
        p_value=_two_sided_p(abs_diff / abs_se, None),
        alpha=alpha,
        outcome_kind=outcome_kind,
        method=method,
    )


def _check_counts(pair: tuple[int, int], name: str) -> tuple[int, int]:
    try:
        conversions, n = pair
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (conversions, n); got {pair!r}") from None
    for value, what in ((conversions, "conversions"), (n, "n")):
        if isinstance(value, bool) or not float(value).is_integer():
            raise ValueError(f"{name} {what} must be a whole number; got {value!r}")
    conversions, n = int(conversions), int(n)
    if n < 2:
        raise ValueError(f"{name} n must be at least 2; got {n}")
    if not 0 <= conversions <= n:
        raise ValueError(f"{name} conversions must lie between 0 and n={n}; got {conversions}")
    return conversions, n


def estimate_lift(
    control: tuple[int, int], treatment: tuple[int, int], alpha: float = 0.05
) -> LiftResult:
    """Conversion lift of treatment over control from counts.

    Parameters
    ----------
    control : tuple of int
        ``(conversions, n)`` of the control arm: converting units and units assigned.
    treatment : tuple of int
        ``(conversions, n)`` of the treatment arm.
    alpha : float, default 0.05
        Level of the stored intervals (0.05 gives 95 % intervals).

    Returns
    -------
    LiftResult
        Rates (fractions), ``abs_diff`` (percentage points as a fraction) with its unpooled
        Wald interval, ``rel_lift`` with its delta-method interval, and the two-sided p-value.

    Raises
    ------
    ValueError
        If a count is not a whole number, ``n < 2``, conversions lie outside ``[0, n]``, the
        control has no conversions (relative lift undefined), or both arms are constant.

    See Also
    --------
    estimate_lift_frame : the same from one row per unit, with optional CUPED.
    statsmodels.stats.proportion.confint_proportions_2indep : ``method="wald"`` gives the
        same absolute interval.

    Notes
    -----
    Units are assumed independent and randomised individually; for accounts, reps or regions
    as the unit of randomisation use :func:`estimate_lift_clustered`. With rates
    :math:`p_c, p_t` and sizes :math:`n_c, n_t`:

    - absolute difference :math:`d = p_t - p_c`, unpooled Wald standard error
      :math:`\\sqrt{p_c(1-p_c)/n_c + p_t(1-p_t)/n_t}`, interval :math:`d \\pm z_{1-\\alpha/2} se`;
    - p-value: two-sided unpooled z test :math:`z = d / se` (statsmodels
      ``test_proportions_2indep(method="wald")``), so the interval excludes 0 exactly when
      ``p_value < alpha``;
    - relative lift :math:`r = p_t / p_c - 1`, delta method on the ratio (as GrowthBook and
      Eppo report it, not on its log):
      :math:`se_r^2 = se_t^2 / p_c^2 + p_t^2 se_c^2 / p_c^4` with
      :math:`se_a^2 = p_a(1-p_a)/n_a`, interval :math:`r \\pm z_{1-\\alpha/2} se_r`.

    The pieces are written out rather than called from statsmodels so that 0/1 and numeric
    outcomes share one code path; tests check them against statsmodels to 1e-8.

    References
    ----------
    .. [1] Agresti, A. (2013). *Categorical Data Analysis*, 3rd ed., sec. 3.1.3 (Wald
       interval for a difference of proportions).
    .. [2] Casella, G. and Berger, R. L. (2002). *Statistical Inference*, 2nd ed.,
       sec. 5.5.4 (delta method).
    .. [3] GrowthBook documentation, "Statistical details: frequentist engine" (relative
       effects with the delta method).

    Examples
    --------
    >>> res = estimate_lift(control=(120, 1000), treatment=(150, 1000))
    >>> round(res.abs_diff, 3), round(res.rel_lift, 3), round(res.p_value, 3)
    (0.03, 0.25, 0.049)
    """
    alpha = _check_alpha(alpha)
    c_conv, n_c = _check_counts(control, "control")
    t_conv, n_t = _check_counts(treatment, "treatment")
    p_c, p_t = c_conv / n_c, t_conv / n_t
    return _lift_from_moments(
        p_c,
        math.sqrt(p_c * (1 - p_c) / n_c),
        n_c,
        p_t,
        math.sqrt(p_t * (1 - p_t) / n_t),
        n_t,
        alpha=alpha,
        outcome_kind="binary",
    )


def _lift_from_samples(
    y_c: np.ndarray,
    y_t: np.ndarray,
    *,
    kind: OutcomeKind,
    alpha: float,
    labels: tuple[Hashable, Hashable],
    method: str = "wald",
) -> LiftResult:
    """Lift from per-unit outcomes: p(1-p)/n for 0/1 (as the counts API), s^2/n (ddof=1) else."""
    n_c, n_t = len(y_c), len(y_t)
    mean_c, mean_t = float(np.mean(y_c)), float(np.mean(y_t))
    if kind == "binary":
        var_c, var_t = mean_c * (1 - mean_c), mean_t * (1 - mean_t)
    else:
        var_c, var_t = float(np.var(y_c, ddof=1)), float(np.var(y_t, ddof=1))
    return _lift_from_moments(
        mean_c,
        math.sqrt(var_c / n_c),
        n_c,
        mean_t,
        math.sqrt(var_t / n_t),
        n_t,
        alpha=alpha,
        outcome_kind=kind,
        labels=labels,
        method=method,
    )


def _cuped_adjust(
    y_c: np.ndarray, x_c: np.ndarray, y_t: np.ndarray, x_t: np.ndarray, covariate: str
) -> tuple[np.ndarray, np.ndarray, float]:
    """Outcomes minus theta * (x - pooled mean of x); theta = cov(y, x) / var(x), pooled."""
    y = np.concatenate([y_c, y_t])
    x = np.concatenate([x_c, x_t])
    var_x = float(np.var(x, ddof=1))
    if var_x == 0:
        raise ValueError(f"covariate column {covariate!r} is constant: CUPED needs variation")
    theta = float(np.cov(y, x, ddof=1)[0, 1] / var_x)
    x_mean = float(np.mean(x))
    return y_c - theta * (x_c - x_mean), y_t - theta * (x_t - x_mean), theta


def _prepare_two_arms(
    frame: pd.DataFrame,
    arm_col: str,
    outcome_col: str,
    control: Hashable,
    treatment: Hashable,
    extra: Sequence[str | None] = (),
) -> tuple[np.ndarray, np.ndarray, OutcomeKind]:
    """Validate the frame; boolean masks of control and treatment rows, and the outcome kind."""
    _require_columns(frame, [arm_col, outcome_col, *extra])
    _require_no_missing(frame, [arm_col])
    _check_arm_labels(frame, arm_col, [control, treatment], ["control", "treatment"])
    arms = frame[arm_col].to_numpy()
    is_c, is_t = arms == control, arms == treatment
    _require_no_missing(frame, [outcome_col, *extra], among=is_c | is_t)
    values = _numeric_values(frame, outcome_col, "0/1 or numeric outcomes")
    kind = _outcome_kind(values[is_c | is_t])
    return is_c, is_t, kind


def estimate_lift_frame(
    frame: pd.DataFrame,
    arm_col: str,
    outcome_col: str,
    control: Hashable,
    treatment: Hashable,
    covariate: str | None = None,
    alpha: float = 0.05,
) -> LiftResult:
    """Lift of ``treatment`` over ``control`` from one row per unit, optionally with CUPED.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per randomised unit.
    arm_col : str
        Column holding each unit's arm label.
    outcome_col : str
        Outcome per unit: 0/1 (or boolean) for a conversion, or any number (revenue, meetings).
    control, treatment : hashable
        Arm labels as they appear in ``arm_col``.
    covariate : str, optional
        Pre-period covariate for CUPED (the same metric before assignment, say). When given,
        ``result.cuped`` holds the adjusted estimate.
    alpha : float, default 0.05
        Level of the stored intervals.

    Returns
    -------
    LiftResult
        As :func:`estimate_lift`; with a covariate, also ``cuped``, ``cuped_theta`` and
        ``cuped_variance_reduction``.

    Raises
    ------
    ValueError
        Column missing; fewer than two arms in ``arm_col``; a label not found; the outcome
        neither 0/1 nor numeric; fewer than 2 units in an arm; control mean 0; missing values
        (the message names the column and the 1-based rows).

    See Also
    --------
    estimate_lift : the counts API; estimate_lift_arms : several treatments.

    Notes
    -----
    Units are independent and individually randomised. An outcome whose values are all 0 or
    1 is a proportion and uses :math:`p(1-p)/n` (identical to :func:`estimate_lift`); any other
    numeric outcome uses the Welch-type unpooled variance :math:`s^2_c/n_c + s^2_t/n_t`
    (``ddof=1``) with the normal distribution for the interval and p-value, appropriate for the
    hundreds of units per arm of a lift study (for a handful of units use a t-test).

    Missing data: rows whose arm is missing, and rows of the two compared arms whose outcome
    or covariate is missing, raise ``ValueError`` naming the column and 1-based rows; nothing
    is dropped silently (pingouin drops; we make the analyst choose).

    CUPED [1]_: :math:`\\theta = \\mathrm{cov}(y, x) / \\mathrm{var}(x)` over both arms pooled,
    :math:`y^* = y - \\theta (x - \\bar x)`; the lift, interval and p-value are then computed
    on :math:`y^*` as for a numeric outcome (the estimation error of :math:`\\theta` is
    ignored, as usual). ``cuped_variance_reduction`` is
    :math:`1 - \\mathrm{Var}(\\hat d^*) / \\mathrm{Var}(\\hat d)`, both with ``ddof=1``; in
    expectation it equals :math:`\\rho^2`, the squared correlation of outcome and covariate.
    The covariate must not be affected by the treatment (measure it before assignment).

    References
    ----------
    .. [1] Deng, A., Xu, Y., Kohavi, R. and Walker, T. (2013). Improving the sensitivity of
       online controlled experiments by utilizing pre-experiment data. *WSDM '13*, 123-132.

    Examples
    --------
    >>> frame = pd.DataFrame({"arm": ["A"] * 4 + ["B"] * 4, "converted": [0, 1, 0, 1, 1, 1, 0, 1]})
    >>> res = estimate_lift_frame(frame, "arm", "converted", control="A", treatment="B")
    >>> res.control_rate, res.treatment_rate, res.rel_lift
    (0.5, 0.75, 0.5)
    """
    alpha = _check_alpha(alpha)
    is_c, is_t, kind = _prepare_two_arms(
        frame, arm_col, outcome_col, control, treatment, extra=[covariate]
    )
    _check_arm_size(int(is_c.sum()), control)
    _check_arm_size(int(is_t.sum()), treatment)
    y = _numeric_values(frame, outcome_col, "0/1 or numeric outcomes")
    labels = (control, treatment)
    result = _lift_from_samples(y[is_c], y[is_t], kind=kind, alpha=alpha, labels=labels)
    if covariate is None:
        return result
    x = _numeric_values(frame, covariate, "a numeric pre-period covariate")
    ya_c, ya_t, theta = _cuped_adjust(y[is_c], x[is_c], y[is_t], x[is_t], covariate)
    adjusted = _lift_from_samples(
        ya_c, ya_t, kind="numeric", alpha=alpha, labels=labels, method="cuped"
    )
    raw_var = np.var(y[is_c], ddof=1) / len(ya_c) + np.var(y[is_t], ddof=1) / len(ya_t)
    reduction = 1 - adjusted.abs_se**2 / raw_var if raw_var > 0 else float("nan")
    log.info(
        "CUPED on %r: theta=%.4g, variance reduction %.1f %%", covariate, theta, 100 * reduction
    )
    return replace(
        result,
        covariate=covariate,
        cuped=adjusted,
        cuped_theta=theta,
        cuped_variance_reduction=float(reduction),
    )


# --------------------------------------------------------------------------------------------
# several comparisons


def _adjust_p(p_values: Sequence[float], method: str, alpha: float) -> np.ndarray:
    """Multiplicity-adjusted p-values (statsmodels ``multipletests``)."""
    if method not in P_ADJUST_METHODS:
        raise ValueError(f"p_adjust must be one of {', '.join(P_ADJUST_METHODS)}; got {method!r}")
    p = np.asarray(p_values, dtype=float)
    if method == "none" or len(p) == 0:
        return p
    from statsmodels.stats.multitest import multipletests

    return multipletests(p, alpha=alpha, method=method)[1]


@dataclass(frozen=True, slots=True)
class LiftTableResult:
    """Several lift comparisons (treatment arms or segments) with adjusted p-values.

    Intervals are per comparison (not simultaneous); the adjustment applies to p-values.
    """

    results: Mapping[Hashable, LiftResult]  # one LiftResult per arm or segment, in order
    p_adjusted: pd.Series  # adjusted p-value per comparison (CUPED p when a covariate was given)
    p_adjust: str  # "holm", "fdr_bh", "bonferroni" or "none"
    by: str  # "arm" or "segment"
    alpha: float = 0.05  # level of the intervals and of `reject`

    @property
    def reject(self) -> pd.Series:
        """True where the adjusted p-value is below ``alpha``."""
        return self.p_adjusted < self.alpha

    def conf_int(self, alpha: float | None = None) -> pd.DataFrame:
        """Per comparison and quantity (MultiIndex rows), columns ``low``, ``high``."""
        return pd.concat(
            {label: res.conf_int(alpha) for label, res in self.results.items()},
            names=[self.by, "quantity"],
        )

    def summary(self) -> pd.DataFrame:
        """One row per comparison: the lift JSON keys, then ``p_adjusted`` and ``reject``."""
        table = pd.DataFrame.from_dict(
            {label: res.to_dict() for label, res in self.results.items()}, orient="index"
        )
        table.index.name = self.by
        table["p_adjusted"] = self.p_adjusted.to_numpy()
        table["reject"] = self.reject.to_numpy()
        return table


def _primary_p(result: LiftResult) -> float:
    return result.cuped.p_value if result.cuped is not None else result.p_value


def estimate_lift_arms(
    frame: pd.DataFrame,
    arm_col: str,
    outcome_col: str,
    control: Hashable,
    treatments: Sequence[Hashable] | None = None,
    covariate: str | None = None,
    alpha: float = 0.05,
    p_adjust: str = "holm",
) -> LiftTableResult:
    """Each treatment arm against one control, with multiplicity-adjusted p-values.

    Parameters
    ----------
    frame, arm_col, outcome_col, covariate, alpha
        As :func:`estimate_lift_frame`.
    control : hashable
        Control arm label.
    treatments : sequence of hashable, optional
        Arms to compare with the control; default every other arm, in order of appearance.
    p_adjust : {"holm", "fdr_bh", "bonferroni", "none"}, default "holm"
        Family-wise (Holm, Bonferroni) or false-discovery-rate (Benjamini-Hochberg) control.

    Returns
    -------
    LiftTableResult
        ``results`` keyed by treatment label; ``p_adjusted`` indexed the same way.

    Notes
    -----
    Each comparison is :func:`estimate_lift_frame` on the two arms involved, so the control
    enters every comparison (the comparisons are positively correlated; Holm and BH remain
    valid under that dependence). With a covariate the CUPED p-values are adjusted. Missing
    data as in :func:`estimate_lift_frame`.

    References
    ----------
    .. [1] Holm, S. (1979). A simple sequentially rejective multiple test procedure.
       *Scandinavian Journal of Statistics* 6, 65-70.
    .. [2] Benjamini, Y. and Hochberg, Y. (1995). Controlling the false discovery rate.
       *JRSS B* 57, 289-300.
    """
    alpha = _check_alpha(alpha)
    _require_columns(frame, [arm_col, outcome_col, covariate])
    _require_no_missing(frame, [arm_col])
    if treatments is None:
        treatments = [a for a in pd.unique(frame[arm_col]) if a != control]
    treatments = list(treatments)
    if not treatments:
        raise ValueError("treatments is empty: need at least two arms (a control and a treatment)")
    results = {
        t: estimate_lift_frame(frame, arm_col, outcome_col, control, t, covariate, alpha)
        for t in treatments
    }
    adjusted = _adjust_p([_primary_p(r) for r in results.values()], p_adjust, alpha)
    p_series = pd.Series(adjusted, index=pd.Index(list(results), name="arm"), name="p_adjusted")
    return LiftTableResult(results, p_series, p_adjust, "arm", alpha)


def estimate_lift_segments(
    frame: pd.DataFrame,
    arm_col: str,
    outcome_col: str,
    control: Hashable,
    treatment: Hashable,
    segment_col: str,
    covariate: str | None = None,
    alpha: float = 0.05,
    p_adjust: str = "holm",
) -> LiftTableResult:
    """Treatment versus control within each segment (SMB/MM/ENT, region), adjusted p-values.

    Parameters
    ----------
    frame, arm_col, outcome_col, control, treatment, covariate, alpha
        As :func:`estimate_lift_frame`.
    segment_col : str
        Column that splits the units; segments appear in sorted order.
    p_adjust : {"holm", "fdr_bh", "bonferroni", "none"}, default "holm"
        Multiplicity adjustment across segments.

    Returns
    -------
    LiftTableResult
        ``results`` keyed by segment value.

    Raises
    ------
    ValueError
        As :func:`estimate_lift_frame`, the message prefixed by the segment; missing segment
        values (rows named, 1-based, over the whole frame).

    Notes
    -----
    Segment results are exploratory: report the overall lift first. CUPED's theta is
    estimated within each segment. Segment breakdowns have less power than the whole study;
    see :func:`detectable_effect_for` per segment.
    """
    alpha = _check_alpha(alpha)
    _require_columns(frame, [arm_col, outcome_col, segment_col, covariate])
    _require_no_missing(frame, [arm_col, segment_col])
    is_compared = frame[arm_col].isin([control, treatment]).to_numpy()
    _require_no_missing(frame, [outcome_col, covariate], among=is_compared)
    _check_arm_labels(frame, arm_col, [control, treatment], ["control", "treatment"])
    results: dict[Hashable, LiftResult] = {}
    for segment, part in frame.groupby(segment_col, sort=True):
        try:
            results[segment] = estimate_lift_frame(
                part, arm_col, outcome_col, control, treatment, covariate, alpha
            )
        except ValueError as exc:
            raise ValueError(f"segment {segment!r} of column {segment_col!r}: {exc}") from exc
    adjusted = _adjust_p([_primary_p(r) for r in results.values()], p_adjust, alpha)
    index = pd.Index(list(results), name="segment")
    return LiftTableResult(
        results, pd.Series(adjusted, index=index, name="p_adjusted"), p_adjust, "segment", alpha
    )


# --------------------------------------------------------------------------------------------
# cluster-randomised designs


def estimate_lift_clustered(
    frame: pd.DataFrame,
    arm_col: str,
    outcome_col: str,
    control: Hashable,
    treatment: Hashable,
    cluster_col: str,
    alpha: float = 0.05,
) -> LiftResult:
    """Lift when whole clusters (accounts, reps, regions) were randomised.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per unit of observation (a person, a lead), with its cluster.
    arm_col, outcome_col, control, treatment, alpha
        As :func:`estimate_lift_frame`.
    cluster_col : str
        Column naming the unit of randomisation.

    Returns
    -------
    LiftResult
        ``method="ols-cluster"``, ``df`` = clusters - 1, ``n_clusters``; ``control_n`` and
        ``treatment_n`` count rows, not clusters.

    Notes
    -----
    Fits OLS of the outcome on a constant and a treatment dummy (statsmodels,
    ``cov_type="cluster"``, CR1 small-sample factor, ``use_t=True``): the constant is the
    control mean, the slope the absolute difference. Inference uses Student t with G - 1
    degrees of freedom (G clusters), as Stata does. The relative lift :math:`b_1 / b_0` gets a
    delta-method standard error from the cluster-robust covariance :math:`V`:
    :math:`g^\\top V g` with :math:`g = (-b_1 / b_0^2, 1 / b_0)`. Observations are weighted
    equally (a cluster's weight is its size). With fewer than about 30 clusters cluster-robust
    intervals tend to be too narrow; a warning is logged. Missing data as in
    :func:`estimate_lift_frame` (the cluster column included).

    References
    ----------
    .. [1] Cameron, A. C. and Miller, D. L. (2015). A practitioner's guide to cluster-robust
       inference. *Journal of Human Resources* 50(2), 317-372.
    """
    import statsmodels.api as sm

    alpha = _check_alpha(alpha)
    is_c, is_t, kind = _prepare_two_arms(
        frame, arm_col, outcome_col, control, treatment, extra=[cluster_col]
    )
    _check_arm_size(int(is_c.sum()), control)
    _check_arm_size(int(is_t.sum()), treatment)
    keep = is_c | is_t
    y = _numeric_values(frame, outcome_col, "0/1 or numeric outcomes")[keep]
    d = is_t[keep].astype(float)
    groups = pd.factorize(frame[cluster_col].to_numpy()[keep])[0]
    n_clusters = int(groups.max()) + 1
    if n_clusters < 2:
        raise ValueError(f"column {cluster_col!r} holds one cluster; need at least 2")
    if n_clusters < 30:
        log.warning(
            "only %d clusters in %r: cluster-robust intervals may be too narrow",
            n_clusters,
            cluster_col,
        )
    fit = sm.OLS(y, np.column_stack([np.ones_like(d), d])).fit(
        cov_type="cluster", cov_kwds={"groups": groups}, use_t=True
    )
    (b0, b1), cov = fit.params, fit.cov_params()
    if b0 == 0:
        raise ValueError(
            f"control arm {control!r} has mean outcome 0 (no conversions): "
            "relative lift is undefined"
        )
    grad = np.array([-b1 / b0**2, 1 / b0])
    return LiftResult(
        control_label=control,
        treatment_label=treatment,
        control_n=int(is_c.sum()),
        treatment_n=int(is_t.sum()),
        control_rate=float(b0),
        treatment_rate=float(b0 + b1),
        control_se=float(math.sqrt(cov[0, 0])),
        treatment_se=float(math.sqrt(cov[0, 0] + 2 * cov[0, 1] + cov[1, 1])),
        abs_diff=float(b1),
        abs_se=float(fit.bse[1]),
        rel_lift=float(b1 / b0),
        rel_se=float(math.sqrt(grad @ cov @ grad)),
        p_value=float(fit.pvalues[1]),
        alpha=alpha,
        outcome_kind=kind,
        method="ols-cluster",
        df=float(n_clusters - 1),
        n_clusters=n_clusters,
    )


# --------------------------------------------------------------------------------------------
# sample-ratio mismatch


@dataclass(frozen=True, slots=True)
class SrmResult:
    """Chi-square goodness-of-fit test of the arms' sizes against the planned split."""

    counts: pd.Series  # units per arm, observed
    expected: pd.Series  # units per arm expected from the planned shares
    statistic: float  # Pearson chi-square
    df: int  # arms - 1
    p_value: float  # upper tail of chi-square(df)
    alpha: float = 0.001  # threshold below which the split is called a mismatch

    @property
    def is_mismatch(self) -> bool:
        """True when ``p_value < alpha``: the assignment or logging is suspect."""
        return bool(self.p_value < self.alpha)

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Wilson interval of each arm's observed share: columns ``low``, ``high``."""
        from statsmodels.stats.proportion import proportion_confint

        low, high = proportion_confint(
            self.counts.to_numpy(), self.counts.sum(), alpha=_check_alpha(alpha), method="wilson"
        )
        return pd.DataFrame({"low": low, "high": high}, index=self.counts.index)

    def summary(self, alpha: float = 0.05) -> pd.DataFrame:
        """One row per arm: ``n``, ``expected_n``, ``observed_share``, ``planned_share``,
        and the observed share's Wilson interval ``low``, ``high``."""
        total = self.counts.sum()
        table = pd.DataFrame(
            {
                "n": self.counts,
                "expected_n": self.expected,
                "observed_share": self.counts / total,
                "planned_share": self.expected / total,
            }
        )
        return table.join(self.conf_int(alpha))

    def to_dict(self) -> dict[str, Any]:
        """statistic, df, p_value, alpha, is_mismatch, counts and expected (per arm)."""
        return {
            "statistic": self.statistic,
            "df": self.df,
            "p_value": self.p_value,
            "alpha": self.alpha,
            "is_mismatch": self.is_mismatch,
            "counts": {str(k): int(v) for k, v in self.counts.items()},
            "expected": {str(k): float(v) for k, v in self.expected.items()},
        }


def check_sample_ratio(
    counts: Mapping[Hashable, int] | pd.Series,
    planned_shares: Mapping[Hashable, float] | pd.Series | Sequence[float],
    alpha: float = 0.001,
) -> SrmResult:
    """Sample-ratio-mismatch check: do the arms' sizes match the planned split?

    Parameters
    ----------
    counts : mapping or Series
        Units assigned (or observed) per arm, e.g. ``{"control": 5_030, "treatment": 4_970}``.
    planned_shares : mapping, Series or sequence
        Planned share (or weight) per arm, keyed like ``counts`` or in the same order; they
        are normalised to sum to 1, so ``[1, 1]`` means a 50/50 split.
    alpha : float, default 0.001
        Threshold for ``is_mismatch``; 0.001 is the usual SRM alarm level, since the check is
        run on every experiment.

    Returns
    -------
    SrmResult

    Notes
    -----
    Pearson chi-square goodness of fit with ``arms - 1`` degrees of freedom (scipy
    ``chisquare``); valid when every expected count is at least about 5. A mismatch means
    the comparison itself is suspect (broken assignment, bot filtering, logging loss), not
    that the treatment worked.

    References
    ----------
    .. [1] Fabijan, A. et al. (2019). Diagnosing sample ratio mismatch in online controlled
       experiments. *KDD '19*, 2156-2164.

    Examples
    --------
    >>> res = check_sample_ratio({"control": 5_000, "treatment": 5_200}, [0.5, 0.5])
    >>> round(res.statistic, 3), res.is_mismatch
    (3.922, False)
    """
    alpha = _check_alpha(alpha)
    observed = pd.Series(counts, dtype=float) if not isinstance(counts, pd.Series) else counts
    observed = observed.astype(float)
    if len(observed) < 2:
        raise ValueError(f"counts needs at least two arms; got {len(observed)}")
    if (observed < 0).any() or not np.all(np.mod(observed.to_numpy(), 1) == 0):
        raise ValueError("counts must be whole numbers of units, 0 or more")
    if observed.sum() == 0:
        raise ValueError("counts are all 0")
    if isinstance(planned_shares, Mapping | pd.Series):
        shares = pd.Series(planned_shares, dtype=float)
        missing = [k for k in observed.index if k not in shares.index]
        extra = [k for k in shares.index if k not in observed.index]
        if missing or extra:
            raise ValueError(
                "planned_shares must name the same arms as counts; "
                f"missing {missing}, extra {extra}"
            )
        shares = shares.reindex(observed.index)
    else:
        shares = pd.Series(list(planned_shares), dtype=float)
        if len(shares) != len(observed):
            raise ValueError(
                f"planned_shares has {len(shares)} values for {len(observed)} arms in counts"
            )
        shares.index = observed.index
    if (shares <= 0).any() or not np.isfinite(shares).all():
        raise ValueError("planned_shares must be positive numbers")
    expected = shares / shares.sum() * observed.sum()
    statistic, p_value = stats.chisquare(observed.to_numpy(), expected.to_numpy())
    return SrmResult(
        counts=observed.astype(np.int64),
        expected=expected,
        statistic=float(statistic),
        df=len(observed) - 1,
        p_value=float(p_value),
        alpha=alpha,
    )


# --------------------------------------------------------------------------------------------
# power and minimum detectable effect


def _n_control_closed_form(
    p_c: float, p_t: float, alpha: float, power: float, ratio: float
) -> float:
    """Control-arm size for a two-sided two-proportion z test (Fleiss, no continuity correction).

    Treatment gets ``ratio`` times as many units. Pooled variance under H0, unpooled under H1.
    """
    z_a = stats.norm.ppf(1 - alpha / 2)
    z_b = stats.norm.ppf(power)
    p_bar = (p_c + ratio * p_t) / (1 + ratio)
    sd_null = math.sqrt(p_bar * (1 - p_bar) * (1 + 1 / ratio))
    sd_alt = math.sqrt(p_c * (1 - p_c) + p_t * (1 - p_t) / ratio)
    return float((z_a * sd_null + z_b * sd_alt) ** 2 / (p_t - p_c) ** 2)


@dataclass(frozen=True, slots=True)
class PowerResult:
    """Sample size, or minimum detectable effect, of a two-arm conversion test.

    No ``conf_int``: a power calculation is a plan, not an estimate.
    """

    baseline: float  # control conversion rate (or control mean for method "bloom-se")
    mde_rel: float  # relative effect to detect: treatment_rate / baseline - 1
    alpha: float  # two-sided significance level
    power: float  # probability of detecting mde_rel, 1 - beta
    ratio: float  # treatment units per control unit
    n_control: float  # control-arm units, unrounded
    method: str = "closed-form"  # "closed-form" (two proportions) or "bloom-se" (from an SE)

    @property
    def treatment_rate(self) -> float:
        """Rate in treatment under the alternative: baseline * (1 + mde_rel)."""
        return self.baseline * (1 + self.mde_rel)

    @property
    def mde_abs(self) -> float:
        """Absolute effect, treatment_rate - baseline (a fraction for rates)."""
        return self.baseline * self.mde_rel

    @property
    def n_treatment(self) -> float:
        """Treatment-arm units, unrounded: ratio * n_control."""
        return self.ratio * self.n_control

    @property
    def n_per_arm(self) -> int:
        """Control-arm units, rounded up (each arm's size when ratio is 1)."""
        return math.ceil(self.n_control - 1e-9)

    @property
    def total_n(self) -> int:
        """Units in both arms, each rounded up."""
        return self.n_per_arm + math.ceil(self.n_treatment - 1e-9)

    @property
    def n_control_arcsine(self) -> float:
        """Cross-check: control size from statsmodels NormalIndPower with Cohen's h.

        The arcsine transform stabilises the variance, so it differs from the closed form
        by well under 1 % for rates between 5 % and 95 % and effects of a few points.
        """
        from statsmodels.stats.power import NormalIndPower
        from statsmodels.stats.proportion import proportion_effectsize

        h = abs(proportion_effectsize(self.treatment_rate, self.baseline))
        return float(
            NormalIndPower().solve_power(
                effect_size=h, alpha=self.alpha, power=self.power, ratio=self.ratio
            )
        )

    def summary(self) -> pd.DataFrame:
        """One row per quantity (baseline, treatment_rate, mde_abs, mde_rel, alpha, power,
        ratio, n_control, n_treatment, n_per_arm, total_n), column ``value``."""
        names = [
            "baseline",
            "treatment_rate",
            "mde_abs",
            "mde_rel",
            "alpha",
            "power",
            "ratio",
            "n_control",
            "n_treatment",
            "n_per_arm",
            "total_n",
        ]
        values = [float(getattr(self, name)) for name in names]
        return pd.DataFrame({"value": values}, index=pd.Index(names, name="quantity"))

    def to_dict(self) -> dict[str, Any]:
        """Exactly the JSON keys of ``alignment power`` (DESIGN.md)."""
        return {
            "n_per_arm": self.n_per_arm,
            "total_n": self.total_n,
            "baseline": float(self.baseline),
            "mde_rel": float(self.mde_rel),
            "alpha": float(self.alpha),
            "power": float(self.power),
        }


def _check_power_args(baseline: float, alpha: float, power: float, ratio: float) -> None:
    if not 0 < baseline < 1:
        raise ValueError(f"baseline must be a rate strictly between 0 and 1; got {baseline!r}")
    _check_alpha(alpha)
    _check_alpha(power, "power")
    if not (ratio > 0 and math.isfinite(ratio)):
        raise ValueError(
            f"ratio (treatment units per control unit) must be positive; got {ratio!r}"
        )


def plan_sample_size(
    baseline: float,
    mde_rel: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> PowerResult:
    """Units needed to detect a relative lift in a conversion rate.

    Parameters
    ----------
    baseline : float
        Control conversion rate, a fraction in (0, 1).
    mde_rel : float
        Smallest relative lift worth detecting (0.2 means +20 %); negative for a drop.
    alpha : float, default 0.05
        Two-sided significance level.
    power : float, default 0.8
        Probability of a significant result when the lift is ``mde_rel``.
    ratio : float, default 1
        Treatment units per control unit.

    Returns
    -------
    PowerResult
        ``n_per_arm`` (control arm, rounded up) and ``total_n`` are what ``alignment power``
        reports; ``n_control_arcsine`` is the statsmodels cross-check.

    Notes
    -----
    The reported size is the textbook closed form for the two-sided two-proportion z test
    without continuity correction (Fleiss; R's ``power.prop.test``; statsmodels
    ``samplesize_proportions_2indep_onetail``), with :math:`k` = ``ratio``,
    :math:`p_t = p_c (1 + \\text{mde\\_rel})` and
    :math:`\\bar p = (p_c + k p_t) / (1 + k)`:

    .. math:: n_c = \\frac{\\left(z_{1-\\alpha/2}\\sqrt{\\bar p (1-\\bar p)(1 + 1/k)}
              + z_{1-\\beta}\\sqrt{p_c(1-p_c) + p_t(1-p_t)/k}\\right)^2}{(p_t - p_c)^2}

    and :math:`n_t = k n_c`. The far rejection tail is ignored (negligible). Units are
    individually randomised; for cluster randomisation multiply by the design effect
    :math:`1 + (m - 1)\\,\\mathrm{ICC}`.

    References
    ----------
    .. [1] Fleiss, J. L., Levin, B. and Paik, M. C. (2003). *Statistical Methods for Rates
       and Proportions*, 3rd ed., eq. 4.14 (without continuity correction).
    .. [2] Cohen, J. (1988). *Statistical Power Analysis for the Behavioral Sciences*, 2nd
       ed., ch. 6 (arcsine effect size h; the cross-check).

    Examples
    --------
    >>> plan_sample_size(baseline=0.10, mde_rel=0.20).n_per_arm
    3841
    """
    _check_power_args(baseline, alpha, power, ratio)
    p_t = baseline * (1 + mde_rel)
    if mde_rel == 0 or not 0 < p_t < 1:
        raise ValueError(
            "mde_rel must be non-zero and keep baseline * (1 + mde_rel) in (0, 1); "
            f"got {mde_rel!r}"
        )
    n_c = _n_control_closed_form(baseline, p_t, alpha, power, ratio)
    return PowerResult(
        float(baseline), float(mde_rel), float(alpha), float(power), float(ratio), n_c
    )


def detectable_effect(
    n_per_arm: float,
    baseline: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    direction: Literal["increase", "decrease"] = "increase",
) -> PowerResult:
    """Minimum detectable effect (relative and absolute) of a study of a given size.

    Parameters
    ----------
    n_per_arm : float
        Control-arm units (treatment has ``ratio`` times as many).
    baseline, alpha, power, ratio
        As :func:`plan_sample_size`.
    direction : {"increase", "decrease"}, default "increase"
        Which side of the baseline to solve on.

    Returns
    -------
    PowerResult
        ``mde_rel`` and ``mde_abs`` solved; ``n_control`` equals ``n_per_arm``.

    Notes
    -----
    Inverts the closed form of :func:`plan_sample_size` for the treatment rate with Brent's
    method, so ``plan_sample_size(baseline, detectable_effect(n, baseline).mde_rel)`` needs
    ``n`` units again.

    Examples
    --------
    >>> round(detectable_effect(3841, baseline=0.10).mde_rel, 3)
    0.2
    """
    _check_power_args(baseline, alpha, power, ratio)
    if direction not in ("increase", "decrease"):
        raise ValueError(f"direction must be 'increase' or 'decrease'; got {direction!r}")
    if not n_per_arm >= 2:
        raise ValueError(f"n_per_arm must be at least 2; got {n_per_arm!r}")
    eps = 1e-12
    far = 1 - eps if direction == "increase" else eps

    def excess(p_t: float) -> float:
        return _n_control_closed_form(baseline, p_t, alpha, power, ratio) - n_per_arm

    if excess(far) > 0:
        raise ValueError(
            f"n_per_arm={n_per_arm!r} is too small to detect any {direction} from {baseline!r}"
        )
    near = baseline + (1e-9 if direction == "increase" else -1e-9)
    p_t = optimize.brentq(excess, near, far, xtol=1e-14, rtol=1e-12)
    return PowerResult(
        float(baseline),
        float(p_t / baseline - 1),
        float(alpha),
        float(power),
        float(ratio),
        float(n_per_arm),
    )


def detectable_effect_for(
    result: LiftResult, power: float = 0.8, alpha: float | None = None
) -> PowerResult:
    """What could this study have detected? The MDE implied by its standard error.

    Parameters
    ----------
    result : LiftResult
        A finished two-arm analysis (any method: Wald, clustered; CUPED uses its adjusted SE).
    power : float, default 0.8
        Power at which the effect counts as detectable.
    alpha : float, optional
        Significance level; default ``result.alpha``.

    Returns
    -------
    PowerResult
        ``method="bloom-se"``, ``baseline`` = control rate, ``n_control`` = control units,
        ``ratio`` = treatment / control units, and ``mde_rel``.

    Notes
    -----
    Bloom's formula :math:`\\text{MDE} = (q_{1-\\alpha/2} + q_{\\text{power}})\\, se(\\hat d)`
    with normal quantiles (t with ``result.df`` degrees of freedom for clustered results). It
    uses the achieved standard error, so it includes clustering and CUPED; it is not the
    discredited "observed power" and does not depend on the estimate.

    References
    ----------
    .. [1] Bloom, H. S. (1995). Minimum detectable effects. *Evaluation Review* 19(5),
       547-556.
    """
    alpha = _check_alpha(result.alpha if alpha is None else alpha)
    _check_alpha(power, "power")
    se = result.cuped.abs_se if result.cuped is not None else result.abs_se
    if result.df is None:
        multiplier = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    else:
        multiplier = stats.t.ppf(1 - alpha / 2, result.df) + stats.t.ppf(power, result.df)
    mde_abs = float(multiplier * se)
    return PowerResult(
        baseline=result.control_rate,
        mde_rel=mde_abs / result.control_rate,
        alpha=alpha,
        power=float(power),
        ratio=result.treatment_n / result.control_n,
        n_control=float(result.control_n),
        method="bloom-se",
    )


# --------------------------------------------------------------------------------------------
# difference-in-differences


@dataclass(frozen=True, slots=True)
class DidResult:
    """Difference-in-differences estimate of a roll-out's effect on the outcome."""

    estimate: float  # effect on the outcome, in outcome units (treated x post coefficient)
    se: float  # standard error under cov_type
    p_value: float  # two-sided, Student t with df degrees of freedom
    n: int  # rows used
    cov_type: str  # "nonrobust", "HC1" or "cluster"
    alpha: float = 0.05  # level of ci_low / ci_high
    df: float = math.inf  # t degrees of freedom: residual df, or clusters - 1
    method: str = "2x2"  # "2x2" (interaction OLS) or "twfe" (unit and period fixed effects)
    n_clusters: int | None = None  # clusters when cov_type is "cluster"

    def conf_int(self, alpha: float | None = None) -> pd.DataFrame:
        """Interval for the effect: one row ``did``, columns ``low``, ``high``."""
        crit = _critical_value(_check_alpha(self.alpha if alpha is None else alpha), self.df)
        return pd.DataFrame(
            {"low": [self.estimate - crit * self.se], "high": [self.estimate + crit * self.se]},
            index=["did"],
        )

    @property
    def ci_low(self) -> float:
        """Lower end of the interval at ``alpha``."""
        return float(self.conf_int().iloc[0, 0])

    @property
    def ci_high(self) -> float:
        """Upper end of the interval at ``alpha``."""
        return float(self.conf_int().iloc[0, 1])

    def summary(self, alpha: float | None = None) -> pd.DataFrame:
        """One row ``did``: estimate, se, low, high, p_value, n, cov_type, method, df."""
        table = self.conf_int(alpha)
        table.insert(0, "se", self.se)
        table.insert(0, "estimate", self.estimate)
        return table.assign(
            p_value=self.p_value, n=self.n, cov_type=self.cov_type, method=self.method, df=self.df
        )

    def to_dict(self) -> dict[str, Any]:
        """Exactly the JSON keys of ``alignment did`` (DESIGN.md)."""
        return {
            "estimate": float(self.estimate),
            "se": float(self.se),
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": float(self.p_value),
            "n": int(self.n),
            "cov_type": self.cov_type,
        }


def _indicator(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A 0/1 (or boolean) column as float, or a ValueError naming the offending rows."""
    values = _numeric_values(frame, column, "0/1 indicators")
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        raise ValueError(
            f"column {column!r} must hold 0/1 indicators; other values in rows "
            f"{_format_rows(_rows_where(bad))} (1-based)"
        )
    return values


def _resolve_cov_type(cov_type: str | None, cluster: str | None) -> str:
    if cov_type is None:
        return "cluster" if cluster is not None else "nonrobust"
    if cov_type not in COV_TYPES:
        raise ValueError(f"cov_type must be one of {', '.join(COV_TYPES)}; got {cov_type!r}")
    if cov_type == "cluster" and cluster is None:
        raise ValueError("cov_type 'cluster' needs a cluster column (cluster=...)")
    if cov_type != "cluster" and cluster is not None:
        raise ValueError(
            f"cluster={cluster!r} was given with cov_type={cov_type!r}; use cov_type='cluster' "
            "or leave cluster out"
        )
    return cov_type


NOT_IDENTIFIED = (
    "the design is not identified (collinear columns): check that treated and comparison "
    "units are both observed before and after, and that the fixed effects leave variation"
)


def _fit_ols(
    y: np.ndarray,
    exog: np.ndarray,
    cov_type: str,
    groups: np.ndarray | None,
    not_identified: str = NOT_IDENTIFIED,
) -> Any:
    """statsmodels OLS with the requested covariance; t inference (``use_t=True``).

    Raises ``ValueError(not_identified)`` when the design matrix is rank-deficient.
    """
    import warnings

    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import SingularMatrixWarning

    model = sm.OLS(y, exog)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularMatrixWarning)  # we raise our own error below
        if cov_type == "cluster":
            fit = model.fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
        else:
            fit = model.fit(cov_type=cov_type, use_t=True)
    if model.rank < exog.shape[1]:  # rank from the SVD statsmodels' pinv already did
        raise ValueError(not_identified)
    return fit


def _dummies(values: np.ndarray) -> np.ndarray:
    """Indicator columns for every level but the first (sorted)."""
    codes, levels = pd.factorize(values, sort=True)
    return np.eye(len(levels))[codes][:, 1:]


def estimate_did(
    frame: pd.DataFrame,
    outcome: str,
    treated: str,
    post: str,
    cluster: str | None = None,
    cov_type: str | None = None,
    unit: str | None = None,
    period: str | None = None,
    alpha: float = 0.05,
) -> DidResult:
    """Difference-in-differences: the effect of a roll-out (an SLA policy, a playbook).

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per observation (a unit in a period, or a lead).
    outcome : str
        Numeric or 0/1 outcome column.
    treated : str
        0/1 column: the unit belongs to the group that gets the roll-out.
    post : str
        0/1 column: the observation falls after the roll-out started (for that unit).
    cluster : str, optional
        Column to cluster standard errors on (region, account); implies ``cov_type="cluster"``.
    cov_type : {"nonrobust", "HC1", "cluster"}, optional
        Default ``"cluster"`` when ``cluster`` is given, else ``"nonrobust"``.
    unit, period : str, optional
        Give both for two-way fixed effects (unit and period dummies) instead of the 2x2 model.
    alpha : float, default 0.05
        Level of ``ci_low``/``ci_high``.

    Returns
    -------
    DidResult

    Raises
    ------
    ValueError
        Missing columns; NaN in a used column (rows named, 1-based); ``treated``/``post`` not
        0/1; a cell of the 2x2 table empty; ``cov_type="cluster"`` without ``cluster``, or
        ``cluster`` with another ``cov_type``; only one of ``unit``/``period``; a design that
        is not identified.

    Notes
    -----
    The 2x2 model is OLS of ``outcome ~ 1 + treated + post + treated:post``; the estimate is
    the interaction coefficient. With ``unit`` and ``period`` it is
    ``outcome ~ D + C(unit) + C(period)`` with :math:`D = \\text{treated} \\times \\text{post}`
    (two-way fixed effects, dummies). Identification rests on parallel trends: without the
    roll-out, treated and comparison groups would have moved alike; check it with
    :func:`event_study`. With staggered roll-outs and effects that change over time the TWFE
    estimate can be biased (Goodman-Bacon 2021); use the event study's lags then.

    Standard errors come from statsmodels (``nonrobust``; ``HC1``; ``cluster`` with the CR1
    small-sample factor), and inference uses Student t: residual degrees of freedom, or
    G - 1 with G clusters (statsmodels ``use_t=True``, as Stata). Clustered errors need a fair
    number of clusters (30 or more); with fewer, intervals are too narrow.

    Missing data raise an error naming column and rows; nothing is dropped.

    Checked against statsmodels OLS with cluster-robust errors:
    ``tests/results/did_reference.json``, written by ``tests/results/make_did_reference.py``.

    References
    ----------
    .. [1] Angrist, J. D. and Pischke, J.-S. (2009). *Mostly Harmless Econometrics*,
       ch. 5.2.
    .. [2] Goodman-Bacon, A. (2021). Difference-in-differences with variation in treatment
       timing. *Journal of Econometrics* 225(2), 254-277.

    Examples
    --------
    >>> frame = pd.DataFrame({"treated": [0, 0, 1, 1] * 2, "post": [0, 1, 0, 1] * 2,
    ...                       "y": [1.0, 2.0, 1.0, 4.0, 1.2, 2.2, 1.2, 4.2]})
    >>> round(estimate_did(frame, "y", "treated", "post").estimate, 6)
    2.0
    """
    alpha = _check_alpha(alpha)
    cov_type = _resolve_cov_type(cov_type, cluster)
    if (unit is None) != (period is None):
        raise ValueError("give both unit and period for two-way fixed effects, or neither")
    used = [outcome, treated, post, cluster, unit, period]
    _require_columns(frame, used)
    _require_no_missing(frame, used)
    y = _numeric_values(frame, outcome, "a numeric or 0/1 outcome")
    d_treated, d_post = _indicator(frame, treated), _indicator(frame, post)
    if len(y) < 5:
        raise ValueError(f"difference-in-differences needs at least 5 rows; got {len(y)}")
    interaction = d_treated * d_post
    if unit is None:
        for t_value in (0, 1):
            for p_value in (0, 1):
                if not np.any((d_treated == t_value) & (d_post == p_value)):
                    raise ValueError(
                        f"no rows with {treated}={t_value} and {post}={p_value}: the 2x2 "
                        "comparison needs all four cells"
                    )
        exog = np.column_stack([np.ones_like(y), d_treated, d_post, interaction])
        method, index = "2x2", 3
    else:
        exog = np.column_stack(
            [
                np.ones_like(y),
                interaction,
                _dummies(frame[unit].to_numpy()),
                _dummies(frame[period].to_numpy()),
            ]
        )
        method, index = "twfe", 1
    groups = pd.factorize(frame[cluster].to_numpy())[0] if cluster is not None else None
    n_clusters = int(groups.max()) + 1 if groups is not None else None
    if n_clusters is not None and n_clusters < 30:
        log.warning(
            "only %d clusters in %r: cluster-robust intervals may be too narrow",
            n_clusters,
            cluster,
        )
    fit = _fit_ols(y, exog, cov_type, groups)
    df = float(getattr(fit, "df_resid_inference", None) or fit.df_resid)
    return DidResult(
        estimate=float(fit.params[index]),
        se=float(fit.bse[index]),
        p_value=float(fit.pvalues[index]),
        n=len(y),
        cov_type=cov_type,
        alpha=alpha,
        df=df,
        method=method,
        n_clusters=n_clusters,
    )


@dataclass(frozen=True, slots=True)
class EventStudyResult:
    """Leads and lags of a roll-out relative to the period before it (relative period -1)."""

    coefficients: pd.Series  # effect per relative period (index: int, -1 excluded)
    cov: pd.DataFrame  # cluster-robust covariance of `coefficients`
    df: float  # t degrees of freedom: clusters - 1
    n: int  # rows used
    n_clusters: int  # clusters
    pretrend_stat: float  # F statistic, H0: every lead (relative period <= -2) is 0
    pretrend_df: int  # number of leads tested
    pretrend_p: float  # p-value of the pre-trend test (F(pretrend_df, df)); NaN without leads
    alpha: float = 0.05  # level of the intervals
    reference_period: int = -1  # the omitted relative period

    @property
    def bse(self) -> pd.Series:
        """Standard errors of ``coefficients``."""
        return pd.Series(np.sqrt(np.diag(self.cov.to_numpy())), index=self.coefficients.index)

    def conf_int(self, alpha: float | None = None) -> pd.DataFrame:
        """Interval per relative period: columns ``low``, ``high``."""
        crit = _critical_value(_check_alpha(self.alpha if alpha is None else alpha), self.df)
        return pd.DataFrame(
            {
                "low": self.coefficients - crit * self.bse,
                "high": self.coefficients + crit * self.bse,
            }
        )

    def summary(self, alpha: float | None = None) -> pd.DataFrame:
        """One row per relative period, the reference included at 0 (NaN se) for plotting:
        ``estimate``, ``se``, ``low``, ``high``, ``p_value``."""
        table = self.conf_int(alpha)
        table.insert(0, "se", self.bse)
        table.insert(0, "estimate", self.coefficients)
        table["p_value"] = 2 * stats.t.sf(np.abs(table.estimate / table.se), self.df)
        table.loc[self.reference_period] = [0.0, np.nan, np.nan, np.nan, np.nan]
        table.index.name = "rel_period"
        return table.sort_index()

    def to_dict(self) -> dict[str, Any]:
        """Coefficients, standard errors, the pre-trend test and the sizes."""
        return {
            "coefficients": {int(k): float(v) for k, v in self.coefficients.items()},
            "se": {int(k): float(v) for k, v in self.bse.items()},
            "pretrend_stat": self.pretrend_stat,
            "pretrend_df": self.pretrend_df,
            "pretrend_p": self.pretrend_p,
            "n": self.n,
            "n_clusters": self.n_clusters,
        }


def _relative_periods(
    frame: pd.DataFrame, unit: str, period: str, first_treated_period: str
) -> np.ndarray:
    """period - first treated period per row (NaN for never-treated units)."""
    periods = _numeric_values(frame, period, "whole-number periods (1, 2, 3 or 202601 ...)")
    first = _numeric_values(frame, first_treated_period, "the first treated period, or empty")
    for column, values in ((period, periods), (first_treated_period, first)):
        fractional = ~np.isnan(values) & (np.mod(values, 1) != 0)
        if fractional.any():
            raise ValueError(
                f"column {column!r} must hold whole-number periods; rows "
                f"{_format_rows(_rows_where(fractional))} (1-based)"
            )
    per_unit = pd.Series(first).groupby(frame[unit].to_numpy()).nunique(dropna=False)
    varying = per_unit.index[per_unit > 1].tolist()
    if varying:
        raise ValueError(
            f"column {first_treated_period!r} must be constant within each {unit}; it varies "
            f"for {', '.join(map(repr, varying[:5]))}"
        )
    return periods - first


def event_study(
    frame: pd.DataFrame,
    outcome: str,
    unit: str,
    period: str,
    first_treated_period: str,
    cluster: str | None = None,
    alpha: float = 0.05,
    window: tuple[int, int] | None = None,
) -> EventStudyResult:
    """Event-study (dynamic difference-in-differences) coefficients and a pre-trend test.

    Parameters
    ----------
    frame : pandas.DataFrame
        A panel: one row per unit and period.
    outcome : str
        Numeric or 0/1 outcome.
    unit : str
        Unit column (region, rep, account).
    period : str
        Whole-number period column (week number, 202601 ...; consecutive integers).
    first_treated_period : str
        The unit's first treated period, the same on all its rows; empty (NaN) for units
        never treated, which serve as the comparison group.
    cluster : str, optional
        Column for cluster-robust errors; default ``unit``.
    alpha : float, default 0.05
        Level of the intervals.
    window : tuple of int, optional
        ``(first, last)`` relative periods to estimate separately; periods beyond are binned
        into the end points. Default: every relative period in the data.

    Returns
    -------
    EventStudyResult
        One coefficient per relative period (lead < 0, lag >= 0) except the reference -1,
        and the joint F test that all leads are 0.

    Notes
    -----
    OLS of the outcome on relative-period dummies plus unit and period fixed effects,
    cluster-robust (CR1) covariance with t(G - 1) inference (statsmodels). Leads measure
    differences before the roll-out: under parallel trends they are 0, which the pre-trend
    F test checks (a non-significant test is not proof of parallel trends; look at the
    leads' size). With staggered timing and effects that vary by cohort the TWFE
    coefficients mix cohorts (Sun and Abraham 2021); keep never-treated units in the data.
    Missing outcomes, units or periods raise an error naming column and rows; a missing
    ``first_treated_period`` means never treated.

    References
    ----------
    .. [1] Sun, L. and Abraham, S. (2021). Estimating dynamic treatment effects in event
       studies with heterogeneous treatment effects. *Journal of Econometrics* 225(2),
       175-199.
    .. [2] Freyaldenhoven, S., Hansen, C. and Shapiro, J. M. (2019). Pre-event trends in the
       panel event-study design. *American Economic Review* 109(9), 3307-3338.
    """
    alpha = _check_alpha(alpha)
    cluster = unit if cluster is None else cluster
    used = [outcome, unit, period, cluster]
    _require_columns(frame, [*used, first_treated_period])
    _require_no_missing(frame, used)
    y = _numeric_values(frame, outcome, "a numeric or 0/1 outcome")
    rel = _relative_periods(frame, unit, period, first_treated_period)
    if window is not None:
        low, high = (int(v) for v in window)
        if not low <= -1 <= high:
            raise ValueError(f"window must contain the reference period -1; got {window!r}")
        rel = np.where(np.isnan(rel), rel, np.clip(rel, low, high))
    treated_levels = np.unique(rel[~np.isnan(rel)])
    if -1 not in treated_levels:
        raise ValueError("no treated unit is observed in relative period -1 (the reference)")
    levels = [int(k) for k in treated_levels if k != -1]
    if not levels:
        raise ValueError("no relative periods besides the reference -1 to estimate")
    events = np.column_stack([(rel == k).astype(float) for k in levels])
    exog = np.column_stack(
        [
            np.ones_like(y),
            events,
            _dummies(frame[unit].to_numpy()),
            _dummies(frame[period].to_numpy()),
        ]
    )
    groups = pd.factorize(frame[cluster].to_numpy())[0]
    n_clusters = int(groups.max()) + 1
    fit = _fit_ols(
        y, exog, "cluster", groups,
        not_identified="the event study is not identified: with unit and period fixed effects "
        "it needs never-treated units or roll-outs starting in different periods",
    )  # fmt: skip
    k = len(levels)
    beta = fit.params[1 : k + 1]
    cov = fit.cov_params()[1 : k + 1, 1 : k + 1]
    df = float(fit.df_resid_inference)
    leads = [i for i, level in enumerate(levels) if level <= -2]
    if leads:
        b_leads, v_leads = beta[leads], cov[np.ix_(leads, leads)]
        stat = float(b_leads @ np.linalg.solve(v_leads, b_leads) / len(leads))
        p = float(stats.f.sf(stat, len(leads), df))
    else:
        stat, p = float("nan"), float("nan")
    index = pd.Index(levels, name="rel_period")
    return EventStudyResult(
        coefficients=pd.Series(beta, index=index, name="estimate"),
        cov=pd.DataFrame(cov, index=index, columns=index),
        df=df,
        n=len(y),
        n_clusters=n_clusters,
        pretrend_stat=stat,
        pretrend_df=len(leads),
        pretrend_p=p,
        alpha=alpha,
    )


# --------------------------------------------------------------------------------------------
# plain language


def _pct(value: float, signed: bool = False) -> str:
    text = f"{100 * value:+.1f} %" if signed else f"{100 * value:.1f} %"
    return text.replace("-", "\N{MINUS SIGN}")


def describe_lift(result: LiftResult, alpha: float | None = None) -> str:
    """One sentence for the report: rates, relative lift with its interval, and a verdict.

    Parameters
    ----------
    result : LiftResult
        From any of the ``estimate_lift*`` functions; the CUPED estimate is described when
        present.
    alpha : float, optional
        Level of the interval and of the verdict; default ``result.alpha``.

    Returns
    -------
    str
        Ends with "inconclusive, the interval spans zero" when the relative interval shown
        or the absolute-difference interval contains 0; otherwise says whether treatment did
        better or worse at level ``alpha``.

    Notes
    -----
    The absolute interval agrees exactly with the p-value (both use the same Wald standard
    error). The delta-method relative interval also carries the uncertainty of the control
    rate in its denominator, so near the significance boundary it can contain 0 while
    ``p_value < alpha`` (120/1000 against 150/1000: p = 0.049, relative CI -2.9 % to
    +52.9 %). The sentence then says "inconclusive", so that the verdict never contradicts
    the interval printed beside it.

    Examples
    --------
    >>> print(describe_lift(estimate_lift(control=(120, 1000), treatment=(130, 1000))))
    Treatment converted at 13.0 % against 12.0 % for control, a relative lift of +8.3 %
    (95 % CI −16.8 % to +33.5 %, p = 0.50): inconclusive, the interval spans zero.
    """
    alpha = _check_alpha(result.alpha if alpha is None else alpha)
    shown = result.cuped if result.cuped is not None else result
    abs_low, abs_high = shown._ci(shown.abs_diff, shown.abs_se, alpha)
    rel_low, rel_high = shown._ci(shown.rel_lift, shown.rel_se, alpha)
    level = f"{100 * (1 - alpha):g} %"
    p = shown.p_value
    p_text = "p < 0.001" if p < 0.001 else f"p = {p:.2g}" if p < 0.1 else f"p = {p:.2f}"
    if result.outcome_kind == "binary" and shown.method != "cuped":
        rates = (
            f"converted at {_pct(shown.treatment_rate)} against "
            f"{_pct(shown.control_rate)} for control"
        )
    else:
        rates = (
            f"averaged {shown.treatment_rate:.4g} against {shown.control_rate:.4g} for "
            "control" + (" (CUPED-adjusted)" if shown.method == "cuped" else "")
        )
    if abs_low <= 0 <= abs_high or rel_low <= 0 <= rel_high:
        verdict = "inconclusive, the interval spans zero"
    elif abs_low > 0:
        verdict = f"treatment did better than control at the {100 * alpha:g} % level"
    else:
        verdict = f"treatment did worse than control at the {100 * alpha:g} % level"
    return (
        f"Treatment {rates}, a relative lift of {_pct(shown.rel_lift, True)} ({level} CI "
        f"{_pct(rel_low, True)} to {_pct(rel_high, True)}, {p_text}): {verdict}."
    )
