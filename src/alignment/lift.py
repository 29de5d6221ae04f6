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
- :func:`estimate_did`, :func:`event_study`: difference-in-differences roll-outs, with a
  wild cluster bootstrap (:func:`wild_cluster_bootstrap`) when clusters are few;
- :func:`describe_lift`: one plain-language sentence for the report;
- :func:`build_experiment_units`, :func:`build_rollout_panel`, :func:`list_experiments`: the
  per-unit and region x period frames, from the contract tables (Ibis expressions that
  execute nothing); for accounts, reps and regions the unit frame holds the people of each
  randomised cluster (:func:`analysis_level`);
- :func:`analyse_experiment`, :func:`analyse_rollout`, :func:`compute_lift_kpis`: a whole
  experiment (design, SRM, lift per arm, segments, power) and a roll-out (DiD, event study)
  as the report shows them.

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
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats

if TYPE_CHECKING:  # pragma: no cover
    import ibis.expr.types as ir

log = logging.getLogger(__name__)

__all__ = [
    "DidResult",
    "EventStudyResult",
    "ExperimentResult",
    "ExperimentSpec",
    "LiftResult",
    "LiftTableResult",
    "PowerResult",
    "RolloutResult",
    "SrmResult",
    "WildBootstrapResult",
    "analyse_experiment",
    "analyse_experiments",
    "analyse_rollout",
    "analysis_level",
    "build_data_end",
    "build_experiment_units",
    "build_outcome_events",
    "build_rollout_panel",
    "check_outcome",
    "check_sample_ratio",
    "compute_lift_kpis",
    "describe_lift",
    "describe_outcome",
    "detectable_effect",
    "detectable_effect_for",
    "estimate_did",
    "estimate_lift",
    "estimate_lift_arms",
    "estimate_lift_clustered",
    "estimate_lift_frame",
    "estimate_lift_segments",
    "event_study",
    "first_full_period",
    "list_experiments",
    "outcome_from_text",
    "period_of",
    "plan_sample_size",
    "read_demo_truth",
    "resolve_experiment_specs",
    "summarise_experiments",
    "wild_cluster_bootstrap",
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


def _all_zero_arm_message(label: Hashable) -> str:
    """Why an arm whose outcome is 0 for every unit is refused."""
    return (
        f"treatment arm {label!r} has outcome 0 for every unit (no conversions): the relative "
        "lift would be -100 % with a zero-width interval [-1, -1], which is not an estimate; "
        "check the arm's outcome data, or wait for more units"
    )


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
    if mean_t == 0 and se_t == 0:
        raise ValueError(_all_zero_arm_message(labels[1]))
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
        control has no conversions (relative lift undefined), the treatment has none (an
        all-zero arm: the delta-method interval would be the single point -100 %), or both
        arms are constant.

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
        neither 0/1 nor numeric; fewer than 2 units in an arm; control mean 0; a treatment arm
        whose outcome is 0 for every unit (all-zero arm); missing values
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
    if not np.any(y[d == 1]):
        raise ValueError(_all_zero_arm_message(treatment))
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
    """Difference-in-differences estimate of a roll-out's effect on the outcome.

    With ``cov_type="cluster-wild-bootstrap"`` the p-value and interval come from
    ``bootstrap`` (a restricted wild cluster bootstrap, inverted for the interval); ``se`` is
    still the CR1 standard error the bootstrap studentises with.
    """

    estimate: float  # effect on the outcome, in outcome units (treated x post coefficient)
    se: float  # standard error under cov_type (CR1 for both clustered types)
    p_value: float  # two-sided: Student t with df degrees of freedom, or the wild bootstrap's
    n: int  # rows used
    cov_type: str  # "nonrobust", "HC1", "cluster" (CR1, t(G-1)) or "cluster-wild-bootstrap"
    alpha: float = 0.05  # level of ci_low / ci_high
    df: float = math.inf  # t degrees of freedom: residual df, or clusters - 1 (unused by WCR)
    method: str = "2x2"  # "2x2" (interaction OLS) or "twfe" (unit and period fixed effects)
    n_clusters: int | None = None  # clusters when cov_type is clustered
    bootstrap: WildBootstrapResult | None = field(default=None, repr=False, compare=False)

    @property
    def inference(self) -> str:
        """How p-value and interval were obtained: 't(3)', or the wild bootstrap's description."""
        if self.bootstrap is not None:
            return self.bootstrap.describe()
        return "normal" if math.isinf(self.df) else f"t({self.df:g})"

    def conf_int(self, alpha: float | None = None) -> pd.DataFrame:
        """Interval for the effect: one row ``did``, columns ``low``, ``high``.

        Student t with ``df``, or with the wild bootstrap the inverted bootstrap test (which
        may be infinite when the draws cannot give a p-value as small as ``alpha``).
        """
        alpha = _check_alpha(self.alpha if alpha is None else alpha)
        if self.bootstrap is not None:
            low, high = self.bootstrap.conf_int(alpha)
            return pd.DataFrame({"low": [low], "high": [high]}, index=["did"])
        crit = _critical_value(alpha, self.df)
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
        """One row ``did``: estimate, se, low, high, p_value, n, cov_type, method, df,
        inference."""
        table = self.conf_int(alpha)
        table.insert(0, "se", self.se)
        table.insert(0, "estimate", self.estimate)
        return table.assign(
            p_value=self.p_value, n=self.n, cov_type=self.cov_type, method=self.method,
            df=self.df, inference=self.inference,
        )  # fmt: skip

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


WILD_CLUSTER_THRESHOLD = 30
"""Fewer clusters than this: :func:`estimate_did` takes its p-value and interval from a wild
cluster bootstrap (WCR) instead of Student t with G - 1 degrees of freedom."""

WEBB_CLUSTER_THRESHOLD = 12
"""Fewer clusters than this: the wild bootstrap uses Webb's six-point weights (Rademacher's two
points give too few distinct draws: 2^G)."""

WILD_MAX_DRAWS = 9_999
"""Draws of a wild bootstrap whose distinct draws are too many to enumerate (fixed seed)."""

WILD_SEED = 20_190_301
"""Seed of the random draws (only used when the draws are not enumerated)."""

WEBB_WEIGHTS = np.array(
    [-math.sqrt(1.5), -1.0, -math.sqrt(0.5), math.sqrt(0.5), 1.0, math.sqrt(1.5)]
)
"""Webb's (2023) six-point weights: mean 0, variance 1, each with probability 1/6."""

RADEMACHER_WEIGHTS = np.array([-1.0, 1.0])
"""Rademacher weights: -1 or +1 with probability 1/2."""

BootstrapWeights = Literal["webb", "rademacher"]


@dataclass(frozen=True, slots=True)
class WildBootstrapResult:
    """Restricted wild cluster bootstrap (WCR) of one OLS coefficient, ready for inversion.

    The bootstrap t statistic of every draw is a ratio of a linear and the square root of a
    quadratic function of the hypothesised value ``beta0`` (Roodman et al. 2019), so the
    arrays below give the p-value of any ``beta0`` in O(draws x G) without refitting.
    """

    estimate: float  # the coefficient, from the data
    se: float  # its cluster-robust (CR1) standard error, from the data
    weights: str  # "webb" or "rademacher"
    n_draws: int  # bootstrap draws used
    is_enumerated: bool  # True: every distinct draw (2^G or 6^G), so no simulation error
    n_clusters: int  # clusters G
    # per draw: beta* - b0 = num_a - b0 num_b, and se*^2 = sum over clusters of
    # (score_a - b0 score_b)^2 (cluster scores, scaled so that the sum is the CR1 variance)
    num_a: np.ndarray = field(repr=False, compare=False)  # draws
    num_b: np.ndarray = field(repr=False, compare=False)  # draws
    score_a: np.ndarray = field(repr=False, compare=False)  # draws x clusters
    score_b: np.ndarray = field(repr=False, compare=False)  # draws x clusters

    @property
    def min_p_value(self) -> float:
        """The smallest p-value the draws can give: 2 / draws when enumerated (a draw and its
        mirror always tie with the data), else 0."""
        return 2 / self.n_draws if self.is_enumerated else 0.0

    def p_value(self, beta0: float = 0.0) -> float:
        """Two-sided (symmetric) bootstrap p-value of H0: coefficient = ``beta0``.

        The share of draws whose ``|t*|`` is at least the data's ``|t|`` (ties count, so the
        enumerated draws that reproduce the data are included).
        """
        t_data = abs(self.estimate - beta0) / self.se
        numerator = np.abs(self.num_a - beta0 * self.num_b)
        denominator = np.linalg.norm(self.score_a - beta0 * self.score_b, axis=-1)
        return float(np.mean(numerator >= t_data * denominator * (1 - 1e-9)))

    def _bound(self, alpha: float, direction: int) -> float:
        """Where the p-value first drops to ``alpha`` or below, moving away from the estimate."""
        inside, step = self.estimate, self.se
        for _ in range(64):  # bracket: widen by doubling
            outside = self.estimate + direction * step
            if self.p_value(outside) <= alpha:
                break
            inside, step = outside, 2 * step
        else:
            return direction * math.inf
        for _ in range(200):  # bisect to float precision
            middle = (inside + outside) / 2
            if middle in (inside, outside):
                break
            if self.p_value(middle) > alpha:
                inside = middle
            else:
                outside = middle
        return (inside + outside) / 2

    def conf_int(self, alpha: float = 0.05) -> tuple[float, float]:
        """Interval by test inversion: the values ``beta0`` around the estimate with
        ``p_value(beta0) > alpha``; infinite when no p-value can fall to ``alpha``."""
        alpha = _check_alpha(alpha)
        if self.min_p_value > alpha:
            return -math.inf, math.inf
        return self._bound(alpha, -1), self._bound(alpha, +1)

    def describe(self) -> str:
        """'wild cluster bootstrap (WCR, Webb weights, all 1,296 draws)' or similar."""
        draws = f"all {self.n_draws:,} draws" if self.is_enumerated else f"{self.n_draws:,} draws"
        return f"wild cluster bootstrap (WCR, {self.weights.capitalize()} weights, {draws})"


def _wild_draws(
    n_clusters: int, weights: str, max_draws: int, seed: int
) -> tuple[np.ndarray, bool]:
    """Draws x clusters weights: every combination when they are few, else random (seeded)."""
    points = WEBB_WEIGHTS if weights == "webb" else RADEMACHER_WEIGHTS
    if len(points) ** n_clusters <= max_draws:
        grid = np.meshgrid(*([points] * n_clusters), indexing="ij")
        return np.column_stack([g.ravel() for g in grid]), True
    rng = np.random.default_rng(seed)
    return rng.choice(points, size=(max_draws, n_clusters)), False


def _annihilate(matrix: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Residuals of ``columns`` (n or n x k) after projection on the span of ``matrix``."""
    basis, _ = np.linalg.qr(matrix)
    return columns - basis @ (basis.T @ columns)


def wild_cluster_bootstrap(
    y: np.ndarray,
    exog: np.ndarray,
    index: int,
    groups: np.ndarray,
    weights: str | None = None,
    max_draws: int = WILD_MAX_DRAWS,
    seed: int = WILD_SEED,
) -> WildBootstrapResult:
    """Restricted wild cluster bootstrap (WCR) of the coefficient ``exog[:, index]``.

    Parameters
    ----------
    y : numpy.ndarray
        Outcome, length n.
    exog : numpy.ndarray
        Design matrix, n x k, of full column rank (the caller checks identification).
    index : int
        Column of the coefficient tested (the DiD interaction).
    groups : numpy.ndarray
        Cluster codes 0 .. G - 1, length n.
    weights : {"webb", "rademacher"}, optional
        Default Webb's six-point weights below :data:`WEBB_CLUSTER_THRESHOLD` clusters,
        Rademacher from there.
    max_draws : int, default 9,999
        Draws when the distinct draws (2^G or 6^G) outnumber it; otherwise every distinct
        draw is used once (enumeration: the p-value has no simulation error).
    seed : int
        Seed of random draws (not used when enumerating).

    Returns
    -------
    WildBootstrapResult
        ``p_value(beta0)`` and ``conf_int(alpha)`` (test inversion).

    Notes
    -----
    WCR (Cameron, Gelbach and Miller 2008): under H0 :math:`\\beta = \\beta_0`, fit the
    model with the coefficient fixed, :math:`\\tilde u = M_Z (y - \\beta_0 d)` (``Z`` the
    other columns); draw :math:`y^* = y - \\tilde u + v_g \\tilde u` with one weight
    :math:`v_g` per cluster; refit and form :math:`t^* = (\\hat\\beta^* - \\beta_0) / se^*`
    with the same CR1 standard error as the data's :math:`t`. The p-value is the share of
    :math:`|t^*| \\ge |t|`. By Frisch-Waugh-Lovell every :math:`t^*` is
    :math:`v^\\top s / \\sqrt{c\\, \\lVert C v \\rVert^2}` with a G-vector :math:`s` and a
    G x G matrix :math:`C` that are affine in :math:`\\beta_0` (the "fast and wild"
    algebra of Roodman et al. 2019): all draws cost O(draws x G^2) after one projection,
    and each :math:`\\beta_0` of the inversion O(draws x G).

    Enumeration: with G clusters Rademacher weights have only :math:`2^G` distinct draws
    (16 for G = 4) and Webb weights :math:`6^G` (1,296 for G = 4). Enumerated, a draw and
    its mirror :math:`-v` give the same :math:`|t^*|`, and the all-ones draw reproduces the
    data, so the p-value is never below :math:`2 / 2^G`: 1/8 with four clusters and
    Rademacher weights, which can never reject at 5 % (the interval is the whole line).
    That is why fewer than 12 clusters use Webb's weights (smallest p-value 2/1,296 for
    G = 4).

    The interval inverts the test: the :math:`\\beta_0` around the estimate whose p-value
    exceeds alpha, each end found by doubling then bisection to float precision (the first
    crossing on each side; the acceptance region is taken to be an interval).

    Checked against brute force (every draw refitted with statsmodels OLS, cluster-robust
    errors) in ``tests/test_lift.py::test_wild_bootstrap_matches_refitting_every_draw``.

    References
    ----------
    .. [1] Cameron, A. C., Gelbach, J. B. and Miller, D. L. (2008). Bootstrap-based
       improvements for inference with clustered errors. *Review of Economics and
       Statistics* 90(3), 414-427.
    .. [2] Roodman, D., MacKinnon, J. G., Nielsen, M. Ø. and Webb, M. D. (2019). Fast and
       wild: bootstrap inference in Stata using boottest. *Stata Journal* 19(1), 4-60.
    .. [3] Webb, M. D. (2023). Reworking wild bootstrap-based inference for clustered
       errors. *Canadian Journal of Economics* 56(3), 839-858.
    """
    n_clusters = int(groups.max()) + 1
    if weights is None:
        weights = "webb" if n_clusters < WEBB_CLUSTER_THRESHOLD else "rademacher"
    if weights not in ("webb", "rademacher"):
        raise ValueError(f"weights must be 'webb' or 'rademacher'; got {weights!r}")
    draws, enumerated = _wild_draws(n_clusters, weights, max_draws, seed)
    arrays = _wild_arrays(np.asarray(y, dtype=float)[None, :], exog, index, groups, draws)
    return WildBootstrapResult(
        weights=weights,
        n_draws=len(draws),
        is_enumerated=enumerated,
        n_clusters=n_clusters,
        estimate=float(arrays.pop("estimate")[0]),
        se=float(arrays.pop("se")[0]),
        **{name: value[0] for name, value in arrays.items()},
    )


def _wild_arrays(
    ys: np.ndarray, exog: np.ndarray, index: int, groups: np.ndarray, draws: np.ndarray
) -> dict[str, Any]:
    """The fields of :class:`WildBootstrapResult` for each row of ``ys`` (outcomes sharing
    one design), each with a leading axis over those rows: the projections are done once."""
    n, k = exog.shape
    n_clusters = draws.shape[1]
    d = exog[:, index]
    others = np.delete(exog, index, axis=1)
    d_tilde = _annihilate(others, d)  # M_Z d
    dd = float(d_tilde @ d_tilde)
    a = _annihilate(others, ys.T).T  # restricted residuals are a - beta0 * d_tilde
    onehot = np.zeros((n, n_clusters))
    onehot[np.arange(n), groups] = 1.0
    # w[:, h] = M_X (d_tilde * 1_h); cluster h's score of M_X (v * u) is sum_g v_g C[h, g]
    # with C[h, g] = sum over rows i of cluster g of w[i, h] u[i], and u = a - beta0 d_tilde
    w = _annihilate(exog, d_tilde[:, None] * onehot)
    c_a = np.einsum("ih,si,ig->shg", w, a, onehot)
    c_b = (w * d_tilde[:, None]).T @ onehot
    s_a, s_b = (a * d_tilde) @ onehot, onehot.T @ (d_tilde * d_tilde)
    correction = n_clusters / (n_clusters - 1) * (n - 1) / (n - k)  # CR1, as statsmodels
    scores = (_annihilate(exog, ys.T).T * d_tilde) @ onehot
    # beta* - beta0 = v's / dd and se*^2 = correction * |C v|^2 / dd^2, C and s affine in
    # beta0. The scores C v are kept per cluster (not as quadratic forms in beta0): far from
    # the estimate, where the inversion looks, that keeps the ties of the all-ones draw exact.
    scale = math.sqrt(correction) / dd
    n_sims, n_draws = len(ys), len(draws)
    return {
        "estimate": ys @ d_tilde / dd,
        "se": scale * np.linalg.norm(scores, axis=-1),
        "num_a": (s_a @ draws.T) / dd,
        "num_b": np.broadcast_to(draws @ s_b / dd, (n_sims, n_draws)),
        "score_a": scale * np.einsum("bg,shg->sbh", draws, c_a, optimize=True),
        "score_b": np.broadcast_to(scale * draws @ c_b.T, (n_sims, n_draws, n_clusters)),
    }


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
    inference: Literal["auto", "t", "wild"] = "auto",
    bootstrap_weights: BootstrapWeights | None = None,
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
    inference : {"auto", "t", "wild"}, default "auto"
        For clustered errors: ``"t"``, Student t with G - 1 degrees of freedom; ``"wild"``,
        the restricted wild cluster bootstrap (:func:`wild_cluster_bootstrap`); ``"auto"``,
        the wild bootstrap with fewer than :data:`WILD_CLUSTER_THRESHOLD` (30) clusters, t
        otherwise. Ignored without clustering.
    bootstrap_weights : {"webb", "rademacher"}, optional
        Wild bootstrap weights; default Webb below 12 clusters, Rademacher from 12.

    Returns
    -------
    DidResult
        ``cov_type`` is ``"cluster-wild-bootstrap"`` when the wild bootstrap gave the p-value
        and interval; ``inference`` says which draws.

    Raises
    ------
    ValueError
        Missing columns; NaN in a used column (rows named, 1-based); ``treated``/``post`` not
        0/1; a cell of the 2x2 table empty; ``cov_type="cluster"`` without ``cluster``, or
        ``cluster`` with another ``cov_type``; only one of ``unit``/``period``; a design that
        is not identified; ``inference`` not one of auto, t, wild, or ``"wild"`` without
        clustering; fewer than 2 clusters for the wild bootstrap.

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
    number of clusters (30 or more); with fewer, t(G - 1) intervals are too narrow: with 4
    regions (2 treated), region and month fixed effects and 13-18 months, simulated null
    roll-outs give 90-92 % coverage for a nominal 95 %. So below 30 clusters the p-value
    and interval come, by default, from the restricted wild cluster bootstrap (WCR; Cameron,
    Gelbach and Miller 2008) with the same CR1 t statistic, Webb's six-point weights below 12
    clusters (all 6^G draws when G <= 5: 1,296 for 4 regions) and Rademacher weights from 12
    (all 2^G draws when G <= 13), the interval by test inversion. In the same simulations its
    coverage is 96.7-97.0 % (20,000 per design): valid, a little conservative, as WCR is
    with few clusters, and much wider than the t(G - 1) interval (see
    ``tests/test_lift.py::test_wild_bootstrap_covers_93_to_97_percent_with_four_regions``).
    Inference is still only as good as the few clusters allow: with one treated cluster no
    method is reliable (MacKinnon and Webb 2017).

    Missing data raise an error naming column and rows; nothing is dropped.

    Checked against statsmodels OLS with cluster-robust errors:
    ``tests/results/did_reference.json``, written by ``tests/results/make_did_reference.py``.

    References
    ----------
    .. [1] Angrist, J. D. and Pischke, J.-S. (2009). *Mostly Harmless Econometrics*,
       ch. 5.2.
    .. [2] Goodman-Bacon, A. (2021). Difference-in-differences with variation in treatment
       timing. *Journal of Econometrics* 225(2), 254-277.
    .. [3] Cameron, A. C., Gelbach, J. B. and Miller, D. L. (2008). Bootstrap-based
       improvements for inference with clustered errors. *Review of Economics and
       Statistics* 90(3), 414-427.
    .. [4] Roodman, D., MacKinnon, J. G., Nielsen, M. Ø. and Webb, M. D. (2019). Fast and
       wild: bootstrap inference in Stata using boottest. *Stata Journal* 19(1), 4-60.
    .. [5] MacKinnon, J. G. and Webb, M. D. (2017). Wild bootstrap inference for wildly
       different cluster sizes. *Journal of Applied Econometrics* 32(2), 233-254.

    Examples
    --------
    >>> frame = pd.DataFrame({"treated": [0, 0, 1, 1] * 2, "post": [0, 1, 0, 1] * 2,
    ...                       "y": [1.0, 2.0, 1.0, 4.0, 1.2, 2.2, 1.2, 4.2]})
    >>> round(estimate_did(frame, "y", "treated", "post").estimate, 6)
    2.0
    """
    alpha = _check_alpha(alpha)
    cov_type = _resolve_cov_type(cov_type, cluster)
    if inference not in ("auto", "t", "wild"):
        raise ValueError(f"inference must be one of auto, t, wild; got {inference!r}")
    if inference == "wild" and cov_type != "cluster":
        raise ValueError("inference='wild' (wild cluster bootstrap) needs a cluster column")
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
    use_wild = n_clusters is not None and (
        inference == "wild" or (inference == "auto" and n_clusters < WILD_CLUSTER_THRESHOLD)
    )
    if n_clusters is not None and n_clusters < WILD_CLUSTER_THRESHOLD and not use_wild:
        log.warning(
            "only %d clusters in %r: t(G - 1) cluster-robust intervals may be too narrow",
            n_clusters,
            cluster,
        )
    if use_wild and n_clusters < 2:  # type: ignore[operator]
        raise ValueError(f"column {cluster!r} holds one cluster; the wild bootstrap needs 2")
    fit = _fit_ols(y, exog, cov_type, groups)
    df = float(getattr(fit, "df_resid_inference", None) or fit.df_resid)
    result = DidResult(
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
    if not use_wild:
        return result
    boot = wild_cluster_bootstrap(y, exog, index, groups, weights=bootstrap_weights)
    log.info("%d clusters in %r: p-value and interval from a %s", n_clusters, cluster,
             boot.describe())  # fmt: skip
    return replace(
        result, cov_type="cluster-wild-bootstrap", p_value=boot.p_value(0.0), bootstrap=boot
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


# --------------------------------------------------------------------------------------------
# experiment and roll-out data from the contract tables (Ibis expressions; execute nothing)
#
# These build the small per-unit and per-region-period frames the statistics above take. They
# return ``ibis.Table`` expressions and execute nothing, so they run on DuckDB (the default)
# and on Spark or BigQuery unchanged; a notebook executes each once through
# ``alignment.store``. Ibis is imported inside them so ``alignment lift``/``power`` start fast.

FUNNEL_STAGES: tuple[str, ...] = ("Lead", "MQL", "SAL", "SQL", "Opportunity", "Customer")
"""Funnel stages in order; reaching a stage means entering it or any later one."""
STAGE_OUTCOMES: tuple[str, ...] = FUNNEL_STAGES[1:]
"""Outcomes that are a funnel stage reached (the stage or a later one)."""
EVENT_OUTCOMES: tuple[str, ...] = ("opportunity_created", "won", "meeting")
"""Outcomes read from ``opportunities`` (created, won) or ``touchpoints`` (a meeting)."""
EXPERIMENT_UNIT_TYPES: tuple[str, ...] = ("person", "account", "user", "region")
"""Randomised unit types :func:`build_experiment_units` can build (every contract unit type)."""
ACCOUNT_OUTCOMES: tuple[str, ...] = ("opportunity_created", "won")
"""Outcomes that happen to an account (its opportunities), not to a person."""
ANALYSIS_LEVELS: dict[str, tuple[str, ...]] = {
    "person": ("person",),
    "account": ("person", "account"),
    "user": ("person",),
    "region": ("person",),
}
"""Per randomised unit type, the row levels an experiment can be analysed at (see
:func:`analysis_level`)."""
_EVENT_UNIT_TYPES: tuple[str, ...] = ("person", "account")
ROLLOUT_PERIODS: tuple[str, ...] = ("month", "week")
NONE_LABEL = "(none)"
UNKNOWN_LABEL = "(unknown)"
_WEEK_S = 7 * 86_400
_MONDAY_OFFSET_S = 3 * 86_400  # 1970-01-01 was a Thursday: shift so weeks start on Monday


def check_outcome(outcome: str) -> str:
    """Return ``outcome`` if :func:`build_experiment_units` knows it, else raise ``ValueError``.

    Known outcomes: a funnel stage reached (``MQL``, ``SAL``, ``SQL``, ``Opportunity``,
    ``Customer``), ``opportunity_created``, ``won``, ``meeting`` (a touch of type
    ``meeting``) or ``touch:<touch_type>`` (any touch type).

    Examples
    --------
    >>> check_outcome("SQL"), check_outcome("touch:webinar_attend")
    ('SQL', 'touch:webinar_attend')
    """
    text = str(outcome).strip()
    if text in STAGE_OUTCOMES or text in EVENT_OUTCOMES:
        return text
    if text.startswith("touch:") and len(text) > len("touch:"):
        return text
    allowed = ", ".join([*STAGE_OUTCOMES, *EVENT_OUTCOMES, "touch:<touch_type>"])
    raise ValueError(f"outcome must be one of {allowed}; got {outcome!r}")


def describe_outcome(outcome: str, window_days: int) -> str:
    """The outcome in words, e.g. ``"reached SQL within 60 days of assignment"``.

    Examples
    --------
    >>> describe_outcome("opportunity_created", 90)
    'opportunity created within 90 days of assignment'
    """
    outcome = check_outcome(outcome)
    if outcome in STAGE_OUTCOMES:
        what = f"reached {outcome}"
    elif outcome == "opportunity_created":
        what = "opportunity created"
    elif outcome == "won":
        what = "opportunity won"
    else:
        what = f"{outcome.removeprefix('touch:')} touch"
    return f"{what} within {int(window_days)} days of assignment"


def analysis_level(unit_type: str, outcome: str, level: str | None = None) -> str:
    """The row level an experiment is analysed at: ``"person"`` or ``"account"``.

    Parameters
    ----------
    unit_type : {"person", "account", "user", "region"}
        The randomised unit (``assignments.unit_type``).
    outcome : str
        See :func:`check_outcome`.
    level : {"person", "account"}, optional
        Asked-for level; checked against ``unit_type`` (:data:`ANALYSIS_LEVELS`).

    Returns
    -------
    str
        ``level`` when given, else the default: ``"account"`` for an account-randomised
        experiment whose outcome happens to accounts (``opportunity_created``, ``won``),
        ``"person"`` otherwise.

    Notes
    -----
    When whole clusters (accounts, reps, regions) are randomised and the outcome happens to
    people, the textbook analysis keeps one row per person and clusters the standard errors
    by the randomised unit [1]_ [2]_: the estimate weights people equally, and the
    cluster-robust covariance accounts for the correlation of people in one cluster. The
    people of a cluster are: for an account, its people; for a region, the people of its
    accounts; for a rep (``user``), the people the rep owned (``stage_events.owner_user_id``)
    or touched (``touchpoints.user_id``) after the rep's assignment, each person going to
    the first assigned rep to work them. An outcome that happens to accounts is analysed with
    one row per account (people of one account would share the same outcome). Analysing
    cluster means (one row per cluster, equal weights) is the alternative Athey and Imbens
    discuss [2]_; it is not offered here for reps and regions, whose clusters differ in size
    by an order of magnitude.

    References
    ----------
    .. [1] Donner, A. and Klar, N. (2000). *Design and Analysis of Cluster Randomization Trials
       in Health Research*. London: Arnold.
    .. [2] Athey, S. and Imbens, G. W. (2017). The econometrics of randomized experiments. In
       *Handbook of Economic Field Experiments* 1, 73-140 (section 8, cluster randomisation).

    Examples
    --------
    >>> analysis_level("account", "opportunity_created"), analysis_level("user", "SQL")
    ('account', 'person')
    """
    if unit_type not in EXPERIMENT_UNIT_TYPES:
        raise ValueError(
            f"unit_type must be one of {', '.join(EXPERIMENT_UNIT_TYPES)}; got {unit_type!r}"
        )
    allowed = ANALYSIS_LEVELS[unit_type]
    if level is None:
        outcome = check_outcome(outcome)
        return "account" if unit_type == "account" and outcome in ACCOUNT_OUTCOMES else "person"
    if level not in allowed:
        raise ValueError(
            f"level of a {unit_type}-randomised experiment must be one of {', '.join(allowed)}; "
            f"got {level!r}"
        )
    return level


def _left_join_on(left: ir.Table, right: ir.Table, key: str) -> ir.Table:
    """Left join on one equally named key, keeping a single key column."""
    joined = left.left_join(right, key)
    extra = f"{key}_right"
    return joined.drop(extra) if extra in joined.columns else joined


def _person_accounts(people: ir.Table) -> ir.Table:
    from ibis import _

    return people.select(
        person_id=_.person_id.cast("string"), account_id=_.account_id.cast("string")
    )


def _touch_events(touchpoints: ir.Table, people: ir.Table, touch_type: str) -> ir.Table:
    """``person_id, account_id, event_at`` of the touches of one type (account from the touch,
    else from the person)."""
    import ibis
    from ibis import _

    if "touch_type" not in touchpoints.columns:
        raise ValueError(
            f"outcome touch:{touch_type} needs the optional touchpoints column touch_type"
        )
    own = (
        touchpoints.account_id.cast("string")
        if "account_id" in touchpoints.columns
        else ibis.null("string")
    )
    from alignment.store import strip_text

    touches = touchpoints.filter(
        strip_text(_.touch_type.cast("string")) == touch_type, _.ts.notnull()
    ).select(person_id=_.person_id.cast("string"), own_account_id=own, event_at=_.ts)
    joined = _left_join_on(touches, _person_accounts(people), "person_id")
    return joined.select(
        "person_id",
        account_id=ibis.coalesce(_.own_account_id, _.account_id),
        event_at=_.event_at,
    )


def build_outcome_events(
    outcome: str,
    *,
    unit_type: str,
    stage_events: ir.Table,
    opportunities: ir.Table,
    people: ir.Table,
    touchpoints: ir.Table | None = None,
) -> ir.Table:
    """Every event that counts as ``outcome`` for a unit: ``unit_id, event_at``.

    Parameters
    ----------
    outcome : str
        See :func:`check_outcome`. A stage counts when the person entered it or any later
        funnel stage (``SQL`` is reached by an ``Opportunity`` event too).
    unit_type : {"person", "account"}
        Whose events: a person's own, or those of any person of the account.
    stage_events, opportunities, people : ibis.Table
        Contract tables.
    touchpoints : ibis.Table, optional
        Needed for ``meeting`` and ``touch:<type>`` outcomes.

    Returns
    -------
    ibis.Table
        ``unit_id`` (str), ``event_at`` (timestamp, UTC). Opportunity outcomes of a person
        are the opportunities of the person's account (``opportunity_created``: its
        ``created_at``; ``won``: ``closed_at`` of those with ``is_won``).
    """
    from ibis import _

    outcome = check_outcome(outcome)
    if unit_type not in _EVENT_UNIT_TYPES:
        raise ValueError(
            f"unit_type must be one of {', '.join(_EVENT_UNIT_TYPES)}; got {unit_type!r}"
        )
    if outcome in ACCOUNT_OUTCOMES:
        column = "created_at" if outcome == "opportunity_created" else "closed_at"
        opps = opportunities
        if outcome == "won":
            opps = opps.filter(opps.is_won.cast("boolean").fill_null(False))
        events = opps.filter(opps[column].notnull()).select(
            account_id=opps.account_id.cast("string"), event_at=opps[column]
        )
        if unit_type == "account":
            return events.select(unit_id=_.account_id, event_at=_.event_at)
        return events.join(_person_accounts(people), "account_id").select(
            unit_id=_.person_id, event_at=_.event_at
        )
    if outcome in STAGE_OUTCOMES:
        later = FUNNEL_STAGES[FUNNEL_STAGES.index(outcome) :]
        from alignment.store import strip_text

        events = stage_events.filter(
            strip_text(stage_events.stage.cast("string")).isin(later), _.entered_at.notnull()
        ).select(person_id=_.person_id.cast("string"), event_at=_.entered_at)
        if unit_type == "person":
            return events.select(unit_id=_.person_id, event_at=_.event_at)
        return events.join(_person_accounts(people), "person_id").select(
            unit_id=_.account_id, event_at=_.event_at
        )
    if touchpoints is None:
        raise ValueError(f"outcome {outcome!r} needs the touchpoints table")
    touch_type = "meeting" if outcome == "meeting" else outcome.removeprefix("touch:")
    events = _touch_events(touchpoints, people, touch_type)
    key = _.person_id if unit_type == "person" else _.account_id
    return events.select(unit_id=key, event_at=_.event_at).filter(_.unit_id.notnull())


def build_data_end(
    stage_events: ir.Table,
    opportunities: ir.Table | None = None,
    touchpoints: ir.Table | None = None,
) -> ir.Table:
    """One row, ``as_of``: the data's last event (UTC).

    The latest ``entered_at`` of ``stage_events``, ``created_at``/``closed_at`` of
    ``opportunities`` and ``ts`` of ``touchpoints`` (those given). Events after it are
    unknown, so an outcome window ending after it is still open (censored).
    """
    import ibis
    from ibis import _

    parts = [stage_events.aggregate(as_of=_.entered_at.max())]
    if opportunities is not None:
        parts.append(opportunities.aggregate(as_of=_.created_at.max()))
        if "closed_at" in opportunities.columns:
            parts.append(opportunities.aggregate(as_of=_.closed_at.max()))
    if touchpoints is not None:
        parts.append(touchpoints.aggregate(as_of=_.ts.max()))
    return ibis.union(*parts).aggregate(as_of=_.as_of.max())


def list_experiments(assignments: ir.Table) -> ir.Table:
    """One row per experiment and unit type in ``assignments``.

    Returns
    -------
    ibis.Table
        ``experiment_id, unit_type, n_units, n_arms, first_assigned_at, last_assigned_at``,
        ordered by ``experiment_id``.
    """
    from ibis import _

    rows = assignments.select(
        experiment_id=_.experiment_id.cast("string"),
        unit_type=_.unit_type.cast("string"),
        unit_id=_.unit_id.cast("string"),
        arm=_.arm.cast("string"),
        assigned_at=_.assigned_at,
    )
    return (
        rows.group_by(["experiment_id", "unit_type"])
        .aggregate(
            n_units=_.unit_id.nunique(),
            n_arms=_.arm.nunique(),
            first_assigned_at=_.assigned_at.min(),
            last_assigned_at=_.assigned_at.max(),
        )
        .order_by(["experiment_id", "unit_type"])
    )


def _unit_attributes(unit_type: str, people: ir.Table, accounts: ir.Table) -> ir.Table:
    """``unit_id, account_id, segment, region, persona`` of each person or account."""
    import ibis
    from ibis import _

    accts = accounts.select(
        account_id=_.account_id.cast("string"),
        segment=_.segment.cast("string"),
        region=_.region.cast("string"),
    )
    if unit_type == "account":
        attrs = accts.mutate(unit_id=_.account_id, persona=ibis.literal(NONE_LABEL))
    else:
        persona = (
            people.persona.cast("string") if "persona" in people.columns else ibis.null("string")
        )
        persons = people.select(
            unit_id=_.person_id.cast("string"),
            account_id=_.account_id.cast("string"),
            persona=persona,
        )
        attrs = _left_join_on(persons, accts, "account_id")
    return attrs.select(
        "unit_id",
        "account_id",
        segment=_.segment.fill_null(UNKNOWN_LABEL),
        region=_.region.fill_null(UNKNOWN_LABEL),
        persona=_.persona.fill_null(UNKNOWN_LABEL),
    )


def _pre_period_touches(
    units: ir.Table, touchpoints: ir.Table, people: ir.Table, unit_type: str, days: int
) -> ir.Table:
    """``unit_id, n_touches_pre``: touches in ``[assigned_at - days, assigned_at)``."""
    import ibis
    from ibis import _

    own = (
        touchpoints.account_id.cast("string")
        if "account_id" in touchpoints.columns
        else ibis.null("string")
    )
    touches = touchpoints.filter(_.ts.notnull()).select(
        person_id=_.person_id.cast("string"), own_account_id=own, ts=_.ts
    )
    if unit_type == "person":
        keyed = touches.select(unit_id=_.person_id, ts=_.ts)
    else:
        with_account = _left_join_on(touches, _person_accounts(people), "person_id")
        keyed = with_account.select(unit_id=ibis.coalesce(_.own_account_id, _.account_id), ts=_.ts)
    start = units.select("unit_id", "assigned_at")
    return (
        keyed.join(start, "unit_id")
        .filter(_.ts < _.assigned_at, _.ts >= _.assigned_at - ibis.interval(days=days))
        .group_by("unit_id")
        .aggregate(n_touches_pre=_.count())
    )


def _entry_after(created: ir.TimestampValue | None, assigned: ir.TimestampValue):
    """The later of a person's creation and the cluster's assignment (assignment if unknown)."""
    import ibis

    if created is None:
        return assigned
    return ibis.ifelse(created.notnull() & (created > assigned), created, assigned)


def _rep_work(stage_events: ir.Table, touchpoints: ir.Table | None) -> ir.Table:
    """``unit_id, user_id, at``: a person owned (stage event) or touched by a user."""
    import ibis
    from ibis import _

    parts = []
    if "owner_user_id" in stage_events.columns:
        parts.append(
            stage_events.filter(_.owner_user_id.notnull(), _.entered_at.notnull()).select(
                unit_id=_.person_id.cast("string"),
                user_id=_.owner_user_id.cast("string"),
                at=_.entered_at,
            )
        )
    if touchpoints is not None and "user_id" in touchpoints.columns:
        at_type = stage_events.entered_at.type()
        parts.append(
            touchpoints.filter(_.user_id.notnull(), _.ts.notnull()).select(
                unit_id=_.person_id.cast("string"),
                user_id=_.user_id.cast("string"),
                at=_.ts.cast(at_type),
            )
        )
    if not parts:
        raise ValueError(
            "user (rep) experiments need stage_events.owner_user_id or touchpoints.user_id to "
            "know whose leads a rep worked"
        )
    return parts[0] if len(parts) == 1 else ibis.union(*parts)


def _cluster_members(
    clusters: ir.Table,
    unit_type: str,
    *,
    people: ir.Table,
    accounts: ir.Table,
    stage_events: ir.Table,
    touchpoints: ir.Table | None,
) -> ir.Table:
    """People of each randomised cluster, one row per person.

    ``clusters``: ``experiment_id, unit_type, cluster_id, arm, cluster_assigned_at``.
    Returns those columns plus ``unit_id`` (the person) and ``assigned_at``, the start of the
    person's outcome window: for accounts and regions the later of the cluster's assignment
    and the person's ``created_at`` (the assignment when ``people`` has no ``created_at``);
    for reps the first time an assigned rep worked the person at or after that rep's
    assignment (ties: the smallest user id).
    """
    from ibis import _

    keep = ["experiment_id", "unit_type", "cluster_id", "arm", "cluster_assigned_at"]
    if unit_type == "user":
        work = _rep_work(stage_events, touchpoints)
        joined = work.join(clusters, work.user_id == clusters.cluster_id).filter(
            _.at >= _.cluster_assigned_at
        )
        first = joined.group_by("unit_id").aggregate(entry=_.at.min())
        tied = joined.join(
            first, [joined.unit_id == first.unit_id, joined.at == first.entry]
        ).select(unit_id=joined.unit_id, cluster_id=joined.cluster_id, entry=first.entry)
        chosen = tied.group_by(["unit_id", "entry"]).aggregate(cluster_id=_.cluster_id.min())
        members = chosen.join(clusters, "cluster_id")
        return members.select(*keep, "unit_id", assigned_at=_.entry)
    has_created = "created_at" in people.columns
    persons = people.select(
        unit_id=_.person_id.cast("string"),
        account_id=_.account_id.cast("string"),
        **({"created_at": people.created_at} if has_created else {}),
    )
    if unit_type == "account":
        keyed = persons.mutate(key=_.account_id)
    else:  # region: the region of the person's account
        regions = accounts.select(
            account_id=_.account_id.cast("string"), key=_.region.cast("string")
        )
        keyed = persons.join(regions, "account_id")
    members = keyed.join(clusters, keyed.key == clusters.cluster_id)
    entry = _entry_after(members.created_at if has_created else None, members.cluster_assigned_at)
    return members.select(*keep, "unit_id", assigned_at=entry)


def build_experiment_units(
    assignments: ir.Table,
    stage_events: ir.Table,
    opportunities: ir.Table,
    people: ir.Table,
    accounts: ir.Table,
    *,
    experiment_id: str,
    outcome: str,
    window_days: int,
    unit_type: str = "person",
    touchpoints: ir.Table | None = None,
    covariate_days: int = 90,
    as_of: datetime | None = None,
    level: str | None = None,
) -> ir.Table:
    """One row per unit of an experiment: arm, 0/1 outcome, breakdowns, covariate, censoring.

    For a cluster-randomised experiment (accounts, reps, regions) the rows are, by default,
    the people of the randomised clusters, each with its cluster (``cluster_id``), so that
    the lift can be estimated over people with errors clustered by the randomised unit
    (:func:`analysis_level`).

    Parameters
    ----------
    assignments, stage_events, opportunities, people, accounts : ibis.Table
        Contract tables (``assignments``: experiment_id, unit_type, unit_id, arm,
        assigned_at).
    experiment_id : str
        The experiment to build.
    outcome : str
        What counts as a conversion (:func:`check_outcome`): a funnel stage reached, e.g.
        ``"SQL"``; ``"opportunity_created"``; ``"won"``; ``"meeting"``; ``"touch:<type>"``.
    window_days : int
        Days (of 24 h) after ``assigned_at`` in which the outcome counts.
    unit_type : {"person", "account", "user", "region"}, default "person"
        The experiment's randomised unit (rows of ``assignments`` of another unit type are
        left out).
    touchpoints : ibis.Table, optional
        Needed for the pre-period covariate and for touch outcomes; without it
        ``n_touches_pre`` is null.
    covariate_days : int, default 90
        Length of the pre-period of the covariate, in days; 0 leaves ``n_touches_pre`` null.
    as_of : datetime, optional
        The data's cut-off (UTC); default its last event (:func:`build_data_end`).
    level : {"person", "account"}, optional
        Row level; default :func:`analysis_level` (people, except account experiments with
        an account outcome). ``"account"`` is allowed for account experiments only.

    Returns
    -------
    ibis.Table
        ``experiment_id, unit_type`` (the randomised unit), ``level`` (what a row is:
        ``person`` or ``account``), ``unit_id`` (the row's person or account),
        ``cluster_id`` (the randomised unit the row belongs to; ``unit_id`` itself when
        rows are randomised units), ``arm, assigned_at`` (start of the row's outcome window,
        see Notes), ``window_ends_at`` (assigned_at + window), ``converted_at`` (first
        outcome event in the window, null if none),
        ``outcome`` (int 0/1), ``is_censored`` (window still open at ``as_of``),
        ``account_id, segment, region, persona`` (``(unknown)`` where missing; ``(none)`` for
        account units' persona), ``n_touches_pre`` (int: the unit's touches in the
        ``covariate_days`` before assignment; for an account, all its people's), ``as_of``.

    Notes
    -----
    An outcome event counts when ``assigned_at <= event_at <= assigned_at + window_days``
    (both ends included), so conversions before assignment never count. A unit whose window
    ends after ``as_of`` is *censored*: its outcome is not known yet. Censoring depends only
    on ``assigned_at``, never on the arm or outcome, so dropping censored units (as
    :func:`analyse_experiment` does, and counts) leaves the comparison unbiased; keeping
    their "not yet" would bias rates down. The pre-period touches are measured before
    assignment, so the treatment cannot affect them: a valid CUPED covariate.

    Person rows of cluster-randomised experiments (who belongs to which cluster is in
    :func:`analysis_level`): a person's window starts at the later of the cluster's
    assignment and the person's ``people.created_at`` (accounts, regions), or at the first
    time an assigned rep owned or touched the person at or after that rep's assignment
    (reps: so choose an outcome that follows the first contact, such as SQL or a meeting).
    A randomised unit with no people (a rep who worked no lead) has no rows.
    """
    import ibis
    from ibis import _

    outcome = check_outcome(outcome)
    level = analysis_level(unit_type, outcome, level)
    if int(window_days) <= 0:
        raise ValueError(f"window_days must be a positive number of days; got {window_days!r}")
    if int(covariate_days) < 0:
        raise ValueError(f"covariate_days must be 0 or more; got {covariate_days!r}")
    window = ibis.interval(days=int(window_days))
    assigned = assignments.filter(
        _.experiment_id.cast("string") == str(experiment_id),
        _.unit_type.cast("string") == unit_type,
    )
    clusters = assigned.select(
        experiment_id=_.experiment_id.cast("string"),
        unit_type=_.unit_type.cast("string"),
        cluster_id=_.unit_id.cast("string"),
        arm=_.arm.cast("string"),
        cluster_assigned_at=_.assigned_at,
    )
    if level == unit_type:  # rows are the randomised units: each its own cluster
        units = clusters.mutate(
            unit_id=_.cluster_id, assigned_at=_.cluster_assigned_at
        ).drop("cluster_assigned_at")
    else:  # rows are the people of the randomised clusters
        units = _cluster_members(
            clusters, unit_type, people=people, accounts=accounts,
            stage_events=stage_events, touchpoints=touchpoints,
        ).drop("cluster_assigned_at")  # fmt: skip
    events = build_outcome_events(
        outcome,
        unit_type=level,
        stage_events=stage_events,
        opportunities=opportunities,
        people=people,
        touchpoints=touchpoints,
    )
    converted = (
        events.join(units.select("unit_id", "assigned_at"), "unit_id")
        .filter(_.event_at >= _.assigned_at, _.event_at <= _.assigned_at + window)
        .group_by("unit_id")
        .aggregate(converted_at=_.event_at.min())
    )
    table = _left_join_on(units, _unit_attributes(level, people, accounts), "unit_id")
    table = _left_join_on(table, converted, "unit_id")
    if touchpoints is not None and int(covariate_days) > 0:
        pre = _pre_period_touches(units, touchpoints, people, level, int(covariate_days))
        table = _left_join_on(table, pre, "unit_id").mutate(
            n_touches_pre=_.n_touches_pre.fill_null(0).cast("int64")
        )
    else:
        table = table.mutate(n_touches_pre=ibis.null("int64"))
    if as_of is None:
        table = table.cross_join(build_data_end(stage_events, opportunities, touchpoints))
    else:
        table = table.mutate(as_of=ibis.timestamp(as_of))
    return table.select(
        "experiment_id",
        "unit_type",
        "unit_id",
        "cluster_id",
        "arm",
        "assigned_at",
        window_ends_at=_.assigned_at + window,
        converted_at=_.converted_at,
        outcome=_.converted_at.notnull().cast("int64"),
        is_censored=(_.assigned_at + window) > _.as_of,
        account_id=_.account_id,
        segment=_.segment.fill_null(UNKNOWN_LABEL),
        region=_.region.fill_null(UNKNOWN_LABEL),
        persona=_.persona.fill_null(UNKNOWN_LABEL),
        n_touches_pre=_.n_touches_pre,
        as_of=_.as_of,
        level=ibis.literal(level),
    ).order_by(["arm", "cluster_id", "unit_id"])


def _period_index(ts: ir.TimestampValue, period: str) -> ir.IntegerValue:
    """Consecutive whole-number periods: months since year 0, or Monday-weeks since 1970."""
    if period == "month":
        return (ts.year() * 12 + ts.month() - 1).cast("int64")
    return ((ts.epoch_seconds() + _MONDAY_OFFSET_S) // _WEEK_S).cast("int64")


def period_of(moment: datetime | str | pd.Timestamp, period: str = "month") -> int:
    """The whole-number period of a UTC moment, as :func:`build_rollout_panel` numbers them.

    Examples
    --------
    >>> period_of("2026-01-01") - period_of("2025-12-31")
    1
    """
    if period not in ROLLOUT_PERIODS:
        raise ValueError(f"period must be one of {', '.join(ROLLOUT_PERIODS)}; got {period!r}")
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if period == "month":
        return stamp.year * 12 + stamp.month - 1
    return int((stamp.value // 10**9 + _MONDAY_OFFSET_S) // _WEEK_S)


def first_full_period(start: datetime | str | pd.Timestamp, period: str = "month") -> int:
    """The first period that starts on or after ``start``: the first fully treated period.

    Examples
    --------
    >>> first_full_period("2026-01-01") == period_of("2026-01-01")
    True
    >>> first_full_period("2026-01-15") == period_of("2026-02-01")
    True
    """
    index = period_of(start, period)
    stamp = pd.Timestamp(start)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if period == "month":
        at_boundary = stamp == stamp.normalize().replace(day=1)
    else:
        at_boundary = stamp == stamp.normalize() and stamp.day_of_week == 0
    return index if at_boundary else index + 1


def _rollout_starts(regions: Sequence[str], start_date: Any) -> dict[str, pd.Timestamp]:
    """Region -> roll-out start (UTC) from one date for all regions or a mapping per region."""
    if isinstance(start_date, Mapping):
        missing = [r for r in regions if r not in start_date]
        if missing:
            raise ValueError(f"start_date gives no date for the roll-out regions {missing}")
        raw = {str(r): start_date[r] for r in regions}
    else:
        raw = {str(r): start_date for r in regions}
    out = {}
    for region, value in raw.items():
        try:
            stamp = pd.Timestamp(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"start_date {value!r} of region {region!r} is not a date (YYYY-MM-DD)"
            ) from None
        out[region] = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return out


def build_rollout_panel(
    stage_events: ir.Table,
    people: ir.Table,
    accounts: ir.Table,
    *,
    regions: Sequence[str],
    start_date: datetime | str | Mapping[str, datetime | str],
    period: str = "month",
    window_days: int = 60,
    cohort_by: Literal["mql", "sal"] = "mql",
    sal_within_days: int = 30,
    as_of: datetime | None = None,
) -> ir.Table:
    """Region x period panel of SAL -> SQL conversion for a roll-out's difference-in-differences.

    Parameters
    ----------
    stage_events, people, accounts : ibis.Table
        Contract tables; a person's region is its account's.
    regions : sequence of str
        Regions in the roll-out (treated); every other region is a comparison region.
    start_date : date, str or mapping of region to date
        When the roll-out started (UTC): one date, or one per treated region (staggered).
    period : {"month", "week"}, default "month"
        Panel period (weeks start on Monday).
    window_days : int, default 60
        A SAL converted if it reached SQL at most this many days after reaching SAL.
    cohort_by : {"mql", "sal"}, default "mql"
        Which date puts a SAL in a period: its MQL's (the hand-off the policy governs) or
        its own.
    sal_within_days : int, default 30
        With ``cohort_by="mql"``: only SALs reached at most this many days after the MQL
        belong to the MQL's cohort, so that a period's cohort is complete after a fixed time.
    as_of : datetime, optional
        The data's cut-off; default its last stage event.

    Returns
    -------
    ibis.Table
        One row per region and period with at least one SAL: ``region, period`` (whole
        number, consecutive), ``period_start`` (UTC), ``n_sal, n_sql, sql_rate`` (fraction),
        ``is_treated`` (int 0/1: region in the roll-out), ``is_post`` (int 0/1: the period
        is at or after the region's first fully treated period; for comparison regions, the
        earliest one), ``first_treated_period`` (null for comparison regions).

    Notes
    -----
    Stage rules as in ``alignment.funnel``: a person reached SAL at its first entry into
    SAL or any later funnel stage, SQL likewise. Cohorts by MQL use the person's first MQL;
    SALs without an MQL are left out. A period enters the panel only when every member's
    window has closed by ``as_of`` (period end + ``sal_within_days`` (MQL cohorts) +
    ``window_days``), so recent, incomplete periods never look like a drop. A period counts
    as treated only from the first period that starts on or after the start date
    (:func:`first_full_period`); a roll-out starting mid-period leaves that period as the
    last untreated one.
    """
    import ibis
    from ibis import _

    if period not in ROLLOUT_PERIODS:
        raise ValueError(f"period must be one of {', '.join(ROLLOUT_PERIODS)}; got {period!r}")
    if cohort_by not in ("mql", "sal"):
        raise ValueError(f"cohort_by must be 'mql' or 'sal'; got {cohort_by!r}")
    if int(window_days) <= 0 or int(sal_within_days) < 0:
        raise ValueError("window_days must be positive and sal_within_days 0 or more")
    regions = [str(r) for r in regions]
    if not regions:
        raise ValueError("regions is empty: name the regions in the roll-out")
    starts = _rollout_starts(regions, start_date)
    first_periods = {r: first_full_period(s, period) for r, s in starts.items()}
    from alignment.store import strip_text

    events = stage_events.select(
        person_id=_.person_id.cast("string"),
        stage=strip_text(_.stage.cast("string")),
        entered_at=_.entered_at,
    ).filter(_.person_id.notnull(), _.entered_at.notnull())
    timeline = events.group_by("person_id").aggregate(
        mql_at=_.entered_at.min(where=_.stage == "MQL"),
        sal_at=_.entered_at.min(where=_.stage.isin(FUNNEL_STAGES[2:])),
        sql_at=_.entered_at.min(where=_.stage.isin(FUNNEL_STAGES[3:])),
    )
    sals = timeline.filter(_.sal_at.notnull())
    lag = ibis.interval(days=int(sal_within_days))
    if cohort_by == "mql":
        sals = sals.filter(_.mql_at.notnull(), _.sal_at <= _.mql_at + lag)
        sals = sals.mutate(cohort_at=_.mql_at)
    else:
        sals = sals.mutate(cohort_at=_.sal_at)
    window = ibis.interval(days=int(window_days))
    sals = sals.mutate(
        is_sql=(_.sql_at.notnull() & (_.sql_at <= _.sal_at + window)).fill_null(False),
        period=_period_index(_.cohort_at, period),
        period_start=_.cohort_at.truncate("M" if period == "month" else "W").cast(
            "timestamp('UTC')"  # ibis types the truncation as naive; it is UTC in our sessions
        ),
    )
    attrs = _unit_attributes("person", people, accounts).select(
        person_id=_.unit_id, region=_.region
    )
    sals = _left_join_on(sals, attrs, "person_id").mutate(region=_.region.fill_null(UNKNOWN_LABEL))
    panel = sals.group_by(["region", "period"]).aggregate(
        period_start=_.period_start.min(),
        n_sal=_.count(),
        n_sql=_.is_sql.cast("int64").sum(),
    )
    step = ibis.interval(days=7) if period == "week" else ibis.interval(months=1)
    settle = window + (lag if cohort_by == "mql" else ibis.interval(days=0))
    if as_of is None:
        panel = panel.cross_join(build_data_end(stage_events))
    else:
        panel = panel.mutate(as_of=ibis.timestamp(as_of))
    panel = panel.filter(_.period_start + step + settle <= _.as_of)
    treated = _.region.isin(regions)
    first = ibis.cases(
        *((_.region == r, ibis.literal(p, "int64")) for r, p in first_periods.items()),
        else_=ibis.null("int64"),
    )
    earliest = min(first_periods.values())
    return panel.select(
        "region",
        "period",
        "period_start",
        n_sal=_.n_sal.cast("int64"),
        n_sql=_.n_sql.cast("int64"),
        sql_rate=_.n_sql.cast("float64") / _.n_sal.cast("float64"),
        is_treated=treated.cast("int64"),
        is_post=ibis.ifelse(
            treated, _.period >= first, _.period >= ibis.literal(earliest, "int64")
        ).cast("int64"),
        first_treated_period=first,
    ).order_by(["region", "period"])


# --------------------------------------------------------------------------------------------
# a whole experiment from its unit frame: design, SRM, lift per arm, segments, power


@dataclass(frozen=True, slots=True)
class ExperimentSpec:
    """How one experiment is read: its unit, outcome, window, control arm and planned split."""

    experiment_id: str  # as in assignments.experiment_id
    unit_type: str = "person"  # randomised unit: person, account, user or region
    outcome: str = "SQL"  # see check_outcome
    window_days: int = 90  # days after assigned_at in which the outcome counts
    control_arm: str = "control"  # arm label of the control
    planned_split: Mapping[str, float] | None = None  # arm -> planned share; None: equal shares
    source: str = "default"  # where the settings came from: "params", "demo truth", "default"
    level: str | None = None  # rows analysed: "person" or "account"; None: analysis_level's

    @property
    def outcome_text(self) -> str:
        """The outcome in words (:func:`describe_outcome`)."""
        return describe_outcome(self.outcome, self.window_days)

    @property
    def analysis_level(self) -> str:
        """The row level analysed (:func:`analysis_level`): ``level`` or the default."""
        return analysis_level(self.unit_type, self.outcome, self.level)


_UNIT_PLURALS = {"person": "people", "account": "accounts", "user": "users", "region": "regions"}

SPEC_KEYS: tuple[str, ...] = (
    "unit_type",
    "outcome",
    "window_days",
    "control_arm",
    "planned_split",
    "level",
)
"""Settings an experiment may be given in the study params (``experiments: {id: {...}}``)."""


def _spec_from_mapping(experiment_id: str, settings: Mapping[str, Any], source: str) -> dict:
    unknown = [k for k in settings if k not in SPEC_KEYS]
    if unknown:
        raise ValueError(
            f"experiment {experiment_id!r}: unknown settings {unknown}; allowed: "
            f"{', '.join(SPEC_KEYS)}"
        )
    out: dict[str, Any] = {k: settings[k] for k in SPEC_KEYS if settings.get(k) is not None}
    if "outcome" in out:
        out["outcome"] = check_outcome(out["outcome"])
    if "window_days" in out:
        days = out["window_days"]
        if isinstance(days, bool) or not float(days).is_integer() or days <= 0:
            raise ValueError(
                f"experiment {experiment_id!r}: window_days must be a positive whole number "
                f"of days; got {days!r}"
            )
        out["window_days"] = int(days)
    if "planned_split" in out:
        split = out["planned_split"]
        if not isinstance(split, Mapping) or not split:
            raise ValueError(
                f"experiment {experiment_id!r}: planned_split must map arm to share; got {split!r}"
            )
        out["planned_split"] = {str(k): float(v) for k, v in split.items()}
    return out | {"source": source}


def outcome_from_text(text: str) -> tuple[str, int] | None:
    """Read ``(outcome, window_days)`` from the demo's words, e.g. "SQL within 60 days of
    assigned_at"; None when the words are not understood.

    Examples
    --------
    >>> outcome_from_text("sales meeting within 30 days of assigned_at")
    ('meeting', 30)
    """
    import re

    match = re.match(r"^\s*(.+?)\s+within\s+(\d+)\s+days?\b", str(text))
    if match is None:
        return None
    what, days = match[1].strip(), int(match[2])
    lowered = what.lower()
    if what in STAGE_OUTCOMES:
        return what, days
    if "opportunity created" in lowered:
        return "opportunity_created", days
    if "won" in lowered:
        return "won", days
    if "meeting" in lowered:
        return "meeting", days
    return None


def read_demo_truth(data_dir: str | Path) -> dict[str, Any] | None:
    """``ground_truth.json`` beside the demo tables, or None for other data.

    Only demo data carry it; :func:`resolve_experiment_specs` and the roll-out defaults use
    it as a fallback, never over settings given in params.
    """
    import json

    path = Path(data_dir) / "ground_truth.json"
    if not path.is_file():
        return None
    truth = json.loads(path.read_text(encoding="utf-8"))
    return truth if isinstance(truth, dict) else None


def _truth_settings(truth: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Per experiment id: the settings the demo planted (outcome, window, arms, control)."""
    out: dict[str, dict[str, Any]] = {}
    for experiment_id, planted in ((truth or {}).get("experiments") or {}).items():
        settings: dict[str, Any] = {}
        read = outcome_from_text(planted.get("outcome", ""))
        if read is not None:
            settings["outcome"], settings["window_days"] = read
        if planted.get("outcome_window_days"):
            settings["window_days"] = int(planted["outcome_window_days"])
        if planted.get("unit_type"):
            settings["unit_type"] = planted["unit_type"]
        if planted.get("control_arm"):
            settings["control_arm"] = planted["control_arm"]
        arms = planted.get("arms") or {}
        if arms and all(isinstance(a, Mapping) and "share" in a for a in arms.values()):
            settings["planned_split"] = {arm: a["share"] for arm, a in arms.items()}
        out[str(experiment_id)] = settings
    return out


def resolve_experiment_specs(
    catalogue: pd.DataFrame,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    selected: Sequence[str] = (),
    truth: Mapping[str, Any] | None = None,
    person_outcome: str = "SQL",
    account_outcome: str = "opportunity_created",
    window_days: int = 90,
) -> list[ExperimentSpec]:
    """The experiments to report and how to read each.

    Parameters
    ----------
    catalogue : pandas.DataFrame
        Executed :func:`list_experiments` (``experiment_id, unit_type``).
    settings : mapping, optional
        Per experiment id, any of ``unit_type, outcome, window_days, control_arm,
        planned_split, level`` (from the study params; ``level`` as
        :func:`analysis_level`). When not empty, only these experiments are reported.
    selected : sequence of str, default ()
        Experiment ids to report (the report params' ``lift.experiments``); empty: all.
    truth : mapping, optional
        The demo's ``ground_truth.json`` (:func:`read_demo_truth`): settings it planted fill
        what ``settings`` leaves out.
    person_outcome, account_outcome, window_days
        Defaults for anything still unset (``account_outcome`` for account experiments,
        ``person_outcome`` for person, rep and region experiments).

    Returns
    -------
    list of ExperimentSpec
        In ``experiment_id`` order; ``source`` says where the settings came from; ``level``
        is always set (:func:`analysis_level`).

    Raises
    ------
    ValueError
        An experiment asked for is not in ``assignments``; unknown or bad settings; a
        ``unit_type`` that disagrees with the data.
    """
    settings = dict(settings or {})
    found = {str(r.experiment_id): str(r.unit_type) for r in catalogue.itertuples()}
    wanted = list(settings) or list(selected) or sorted(found)
    missing = [e for e in wanted if e not in found]
    if missing:
        shown = ", ".join(sorted(found)) or "none"
        raise ValueError(f"experiments {missing} are not in assignments; found: {shown}")
    planted = _truth_settings(truth)
    specs = []
    for experiment_id in sorted(wanted):
        unit_type = found[experiment_id]
        merged: dict[str, Any] = {
            "unit_type": unit_type,
            "outcome": account_outcome if unit_type == "account" else person_outcome,
            "window_days": int(window_days),
            "source": "default",
        }
        if experiment_id in planted:
            merged |= _spec_from_mapping(experiment_id, planted[experiment_id], "demo truth")
        if experiment_id in settings:
            merged |= _spec_from_mapping(experiment_id, settings[experiment_id] or {}, "params")
        if merged["unit_type"] != unit_type:
            raise ValueError(
                f"experiment {experiment_id!r}: settings say unit_type {merged['unit_type']!r} "
                f"but assignments hold {unit_type!r}"
            )
        merged["outcome"] = check_outcome(merged["outcome"])
        merged["level"] = analysis_level(unit_type, merged["outcome"], merged.get("level"))
        specs.append(ExperimentSpec(experiment_id=experiment_id, **merged))
    return specs


@dataclass(frozen=True, slots=True)
class ExperimentResult:
    """One experiment read end to end: design, SRM, lift of each arm, segments and power.

    ``arms`` holds the primary analysis (CUPED-adjusted p-values when a covariate was used;
    Wald intervals and CUPED intervals are both kept in each ``LiftResult``). p-values are
    adjusted across the treatment arms of this experiment (``arms.p_adjust``); segment
    p-values across every segment comparison of this experiment.
    """

    spec: ExperimentSpec  # unit, outcome, window, control, planned split
    srm: SrmResult  # assigned units per arm against the planned split
    arms: LiftTableResult  # each treatment arm against the control
    segments: pd.DataFrame  # segment lifts, see segment_summary()
    power: Mapping[str, PowerResult]  # per treatment arm: what the study could detect
    n_assigned: int  # rows assigned (by as_of): people, or the randomised units themselves
    n_censored: int  # rows whose window was still open, left out of the analysis
    n_by_arm: pd.DataFrame  # per arm: n_clusters (randomised units), n_assigned, n_censored,
    # n_analysed (rows)
    method: str  # "wald", "cuped" or "ols-cluster"
    covariate: str | None  # covariate used for CUPED, None when not used
    assigned_from: pd.Timestamp | None  # first assignment
    assigned_to: pd.Timestamp | None  # last assignment
    alpha: float = 0.05  # level of intervals and verdicts
    level: str = "person"  # what an analysed row is: "person" or "account"
    cluster_col: str | None = None  # column the errors were clustered by; None: not clustered

    @property
    def experiment_id(self) -> str:
        return self.spec.experiment_id

    @property
    def n_analysed(self) -> int:
        """Units with a closed outcome window, the ones analysed."""
        return self.n_assigned - self.n_censored

    def conf_int(self, alpha: float | None = None) -> pd.DataFrame:
        """Intervals of each arm's quantities (arm, quantity rows), columns ``low``, ``high``."""
        return self.arms.conf_int(alpha)

    @property
    def analysis(self) -> str:
        """How the experiment was analysed, in words: the rows, then the errors.

        ``"people, Wald"`` or ``"people, CUPED"`` (individually randomised);
        ``"people, clustered by user"`` (people of randomised reps, CR1 errors by rep);
        ``"accounts, robust (HC1)"`` (one row per randomised account: CR1 with clusters of
        one row is HC1).
        """
        rows = _UNIT_PLURALS.get(self.level, self.level)
        if self.cluster_col is None:
            how = "CUPED" if self.method == "cuped" else "Wald"
        elif self.level == self.spec.unit_type:
            how = "robust (HC1)"
        else:
            how = f"clustered by {self.spec.unit_type}"
        return f"{rows}, {how}"

    def design(self) -> pd.DataFrame:
        """One row per arm: experiment, randomised unit, analysis (rows and clustering),
        outcome, window, arm, planned and observed share, randomised units (``n_clusters``),
        rows assigned, censored and analysed."""
        shares = self.srm.summary()
        table = self.n_by_arm.copy()
        table.insert(0, "arm", table.index.astype(str))
        table.insert(0, "outcome", self.spec.outcome_text)
        table.insert(0, "analysis", self.analysis)
        table.insert(0, "unit", self.spec.unit_type)
        table.insert(0, "experiment_id", self.experiment_id)
        table["planned_share"] = shares["planned_share"].reindex(table.index).to_numpy()
        table["observed_share"] = shares["observed_share"].reindex(table.index).to_numpy()
        table["is_control"] = table.arm == str(self.spec.control_arm)
        return table.reset_index(drop=True)

    def srm_summary(self) -> pd.DataFrame:
        """One row: experiment, chi-square, df, p-value, SRM threshold and verdict."""
        return pd.DataFrame(
            [
                {
                    "experiment_id": self.experiment_id,
                    "n_assigned": self.n_assigned,
                    "chi_square": self.srm.statistic,
                    "df": self.srm.df,
                    "p_value": self.srm.p_value,
                    "threshold": self.srm.alpha,
                    "verdict": "mismatch" if self.srm.is_mismatch else "ok",
                }
            ]
        )

    def summary(self) -> pd.DataFrame:
        """One row per treatment arm: rates, relative lift with interval, p-values, power.

        Columns ``experiment_id, arm, control_rate, treatment_rate, rel_lift, rel_ci_low,
        rel_ci_high, p_value, p_adjusted, mde_rel, n_control, n_treatment, method,
        variance_reduction, level, n_clusters``; with CUPED the lift, interval and p-value
        are the adjusted ones (the rates stay raw). ``n_control``/``n_treatment`` count
        analysed rows (``level``); ``n_clusters`` the randomised units among them (equal to
        the rows when individuals were randomised).
        """
        rows = []
        for arm, res in self.arms.results.items():
            shown = res.cuped if res.cuped is not None else res
            rows.append(
                {
                    "experiment_id": self.experiment_id,
                    "arm": str(arm),
                    "control_rate": res.control_rate,
                    "treatment_rate": res.treatment_rate,
                    "rel_lift": shown.rel_lift,
                    "rel_ci_low": shown.rel_ci_low,
                    "rel_ci_high": shown.rel_ci_high,
                    "p_value": shown.p_value,
                    "p_adjusted": float(self.arms.p_adjusted[arm]),
                    "mde_rel": self.power[str(arm)].mde_rel,
                    "n_control": res.control_n,
                    "n_treatment": res.treatment_n,
                    "method": shown.method,
                    "variance_reduction": (
                        np.nan
                        if res.cuped_variance_reduction is None
                        else res.cuped_variance_reduction
                    ),
                    "level": self.level,
                    "n_clusters": int(res.n if res.n_clusters is None else res.n_clusters),
                }
            )
        return pd.DataFrame(rows)

    def segment_summary(self) -> pd.DataFrame:
        """The overall lift of each arm, then each segment's: ``experiment_id, arm, by,
        segment, n, rel_lift, rel_ci_low, rel_ci_high, p_value, p_adjusted`` (overall rows
        have ``by == "overall"``; segments that could not be estimated are left out)."""
        overall = self.summary()
        top = pd.DataFrame(
            {
                "experiment_id": self.experiment_id,
                "arm": overall.arm,
                "by": "overall",
                "segment": "all units",
                "n": overall.n_control + overall.n_treatment,
                "rel_lift": overall.rel_lift,
                "rel_ci_low": overall.rel_ci_low,
                "rel_ci_high": overall.rel_ci_high,
                "p_value": overall.p_value,
                "p_adjusted": overall.p_adjusted,
            }
        )
        return pd.concat([top, self.segments], ignore_index=True)

    def describe(self) -> list[str]:
        """Plain-language sentences: the design, SRM, then each arm's verdict (``"inconclusive"``
        when the interval spans zero, or when the adjusted p-value is not below alpha) and
        what the study could have detected."""
        spec = self.spec
        rows = _UNIT_PLURALS.get(self.level, self.level)
        randomised = _UNIT_PLURALS.get(spec.unit_type, spec.unit_type)
        clusters = int(self.n_by_arm["n_clusters"].sum())
        if self.level == spec.unit_type:
            counted = f"{self.n_analysed:,} {rows} analysed"
        else:
            counted = (
                f"{self.n_analysed:,} {rows} of {clusters:,} randomised {randomised} analysed, "
                f"errors clustered by {spec.unit_type}"
            )
        sentences = [
            f"{spec.experiment_id} (randomised {randomised}, outcome: {spec.outcome_text}): "
            + counted
            + (f", {self.n_censored:,} with open windows left out" if self.n_censored else "")
            + "."
        ]
        if self.cluster_col is not None and clusters < WILD_CLUSTER_THRESHOLD:
            sentences.append(
                f"With only {clusters} randomised {randomised}, clustered intervals tend to be "
                "too narrow: read the result as indicative."
            )
        if self.srm.is_mismatch:
            sentences.append(
                f"Sample-ratio mismatch (p = {self.srm.p_value:.2g}): the arms' sizes do not "
                "match the planned split, so the comparison itself is suspect; check the "
                "assignment before reading the lift."
            )
        else:
            sentences.append(f"The arms match the planned split (SRM p = {self.srm.p_value:.2f}).")
        table = self.summary()
        for row in table.itertuples():
            how = {
                "cuped": "CUPED-adjusted, ",
                "ols-cluster": f"errors clustered by {spec.unit_type} "
                f"({row.n_clusters:,} clusters), ",
            }.get(row.method, "")
            p_text = f"p = {row.p_value:.2g}"
            if len(table) > 1:
                p_text += f", {row.p_adjusted:.2g} adjusted for {len(table)} arms"
            verdict = _lift_verdict(row.rel_ci_low, row.rel_ci_high, row.p_adjusted, self.alpha)
            level = f"{100 * (1 - self.alpha):g} %"
            sentences.append(
                f"Arm {row.arm}: {_pct(row.treatment_rate)} converted against "
                f"{_pct(row.control_rate)} in {spec.control_arm}, a relative lift of "
                f"{_pct(row.rel_lift, True)} ({level} CI {_pct(row.rel_ci_low, True)} to "
                f"{_pct(row.rel_ci_high, True)}, {how}{p_text}): {verdict}. With "
                f"{row.n_control + row.n_treatment:,} {rows} it could have detected a relative "
                f"lift of {_pct(row.mde_rel, True)} with "
                f"{100 * self.power[row.arm].power:g} % power."
            )
        return sentences


def _lift_verdict(rel_low: float, rel_high: float, p_adjusted: float, alpha: float) -> str:
    """ "inconclusive, ..." unless the interval excludes 0 and the adjusted p is below alpha."""
    if rel_low <= 0 <= rel_high:
        return "inconclusive, the interval spans zero"
    if p_adjusted >= alpha:
        return "inconclusive after adjusting for the other arms"
    direction = "better" if rel_low > 0 else "worse"
    return f"the arm did {direction} than control at the {100 * alpha:g} % level"


def _usable_covariate(frame: pd.DataFrame, covariate: str | None) -> str | None:
    """The covariate when it is present, complete and varies; else None (logged)."""
    if covariate is None or covariate not in frame.columns:
        return None
    values = frame[covariate]
    if values.isna().any() or values.nunique() < 2:
        log.info("covariate %r is missing or constant: no CUPED", covariate)
        return None
    return covariate


def _lift_arms(
    frame: pd.DataFrame,
    control: str,
    treatments: Sequence[str],
    *,
    cluster_col: str | None,
    covariate: str | None,
    alpha: float,
    p_adjust: str,
) -> LiftTableResult:
    """Each arm against control: Wald/CUPED for individual units, cluster-robust otherwise."""
    if cluster_col is None:
        return estimate_lift_arms(
            frame, "arm", "outcome", control, treatments, covariate, alpha, p_adjust
        )
    results = {
        t: estimate_lift_clustered(frame, "arm", "outcome", control, t, cluster_col, alpha)
        for t in treatments
    }
    adjusted = _adjust_p([r.p_value for r in results.values()], p_adjust, alpha)
    index = pd.Index(list(results), name="arm")
    return LiftTableResult(
        results, pd.Series(adjusted, index=index, name="p_adjusted"), p_adjust, "arm", alpha
    )


def _segment_level_problem(
    part: pd.DataFrame, control: str, arm: str, min_units: int, cluster_col: str | None = None
) -> str:
    """Why a segment level cannot give a usable interval, or "" when it can."""
    for label in (control, arm):
        values = part.loc[part.arm == label, "outcome"]
        if len(values) < min_units:
            return f"arm {label!r} has {len(values)} units (< {min_units})"
        if cluster_col is not None:
            clusters = part.loc[part.arm == label, cluster_col].nunique()
            if clusters < MIN_SEGMENT_CLUSTERS:
                return f"arm {label!r} has {clusters} clusters (< {MIN_SEGMENT_CLUSTERS})"
        rate = float(values.mean())
        if rate in (0.0, 1.0):
            return f"arm {label!r} has a rate of {rate:.0%} (no variance)"
    return ""


MIN_SEGMENT_CLUSTERS = 5
"""Clusters each compared arm needs in a segment level for a clustered segment interval."""


def _segment_lifts(
    frame: pd.DataFrame,
    control: str,
    treatments: Sequence[str],
    segments: Sequence[str],
    *,
    alpha: float,
    p_adjust: str,
    min_units: int = 30,
    cluster_col: str | None = None,
) -> pd.DataFrame:
    """Lift of each arm in each segment level; p adjusted over all of them together.

    Wald (independent units), or cluster-robust by ``cluster_col`` when clusters were
    randomised (:func:`estimate_lift_clustered`). Levels where an arm has fewer than
    ``min_units`` analysed units, fewer than :data:`MIN_SEGMENT_CLUSTERS` clusters (when
    clustered), or a rate of exactly 0 or 1 (an interval of width 0), are skipped and logged:
    segments are exploratory and such intervals mislead.
    """
    rows = []
    for column in segments:
        if column not in frame.columns or frame[column].nunique() < 2:
            continue
        for level, part in frame.groupby(column, sort=True):
            for arm in treatments:
                problem = _segment_level_problem(part, control, arm, min_units, cluster_col)
                if problem:
                    log.info("segment %s=%s, arm %s skipped: %s", column, level, arm, problem)
                    continue
                if cluster_col is None:
                    res = estimate_lift_frame(part, "arm", "outcome", control, arm, alpha=alpha)
                else:
                    res = estimate_lift_clustered(
                        part, "arm", "outcome", control, arm, cluster_col, alpha
                    )
                rows.append(
                    {
                        "arm": str(arm),
                        "by": column,
                        "segment": str(level),
                        "n": res.n,
                        "rel_lift": res.rel_lift,
                        "rel_ci_low": res.rel_ci_low,
                        "rel_ci_high": res.rel_ci_high,
                        "p_value": res.p_value,
                    }
                )
    columns = ["arm", "by", "segment", "n", "rel_lift", "rel_ci_low", "rel_ci_high", "p_value"]
    table = pd.DataFrame(rows, columns=columns)
    table["p_adjusted"] = _adjust_p(table.p_value.to_numpy(), p_adjust, alpha)
    return table


def analyse_experiment(
    units: pd.DataFrame,
    spec: ExperimentSpec,
    *,
    covariate: str | None = "n_touches_pre",
    segments: Sequence[str] = ("segment", "region", "persona"),
    alpha: float = 0.05,
    p_adjust: str = "holm",
    power: float = 0.8,
    srm_alpha: float = 0.001,
    min_segment_units: int = 30,
    as_of: datetime | pd.Timestamp | None = None,
) -> ExperimentResult:
    """Read one experiment from its unit frame: SRM, lift per arm, segments, detectable effect.

    Parameters
    ----------
    units : pandas.DataFrame
        Executed :func:`build_experiment_units` (``arm, assigned_at, window_ends_at,
        outcome, is_censored, unit_id``, ``cluster_id`` for cluster-randomised experiments,
        and the segment and covariate columns). Without ``cluster_id`` each row is its own
        cluster.
    spec : ExperimentSpec
        Control arm, planned split, randomised unit type and analysis level (rows of a
        cluster-randomised experiment get errors clustered by ``cluster_id``).
    covariate : str or None, default "n_touches_pre"
        Pre-period covariate for CUPED (person units); None, absent, incomplete or constant:
        no adjustment.
    segments : sequence of str, default ("segment", "region", "persona")
        Breakdown columns; those with one level are skipped.
    alpha, p_adjust, power
        Interval level, multiplicity adjustment (``"holm"``, ``"fdr_bh"``, ...) and the power
        of the detectable effect.
    srm_alpha : float, default 0.001
        SRM alarm level.
    min_segment_units : int, default 30
        A segment level is shown only when each compared arm has this many analysed units
        there (and a rate strictly between 0 and 1).
    as_of : datetime, optional
        Read the experiment as it stood at this instant: only units assigned before it, and
        of those only units whose window closed by it (and by the data's cut-off), are used.
        Default: the data's cut-off (every unit, censored ones left out).

    Returns
    -------
    ExperimentResult

    Raises
    ------
    ValueError
        The control arm is not in the data, fewer than two arms, an arm with fewer than 2
        analysed units, no conversion in control (as the ``estimate_lift*`` functions); a
        frame whose ``level`` column disagrees with ``spec.analysis_level``; a cluster in
        two arms.

    Notes
    -----
    The SRM check counts every randomised unit assigned (censored ones too; for person rows
    of a cluster-randomised experiment, the distinct clusters): the split is a property of
    the assignment, not of the outcome. The lift uses the rows whose outcome window has
    closed; censoring depends only on the assignment time, so it removes the same share of
    each arm in expectation. Individually randomised people: Wald intervals and, with a
    usable covariate, CUPED (the primary p-value is then CUPED's). Cluster-randomised
    experiments (accounts, reps, regions): OLS of the row outcome on the arm with errors
    clustered by the randomised unit (CR1, as statsmodels' ``cov_type="cluster"``), t(G - 1)
    inference and the relative lift's delta-method error from the cluster-robust covariance
    (:func:`estimate_lift_clustered`); no CUPED. Rows are people by default
    (:func:`analysis_level` gives the rule and the references); when rows are the randomised
    units themselves (accounts with an account outcome), each cluster holds one row and the
    errors reduce to heteroskedasticity-robust ones. Segment intervals are clustered the
    same way. The detectable effect is Bloom's, from the achieved standard error
    (:func:`detectable_effect_for`).
    """
    alpha = _check_alpha(alpha)
    _require_columns(units, ["arm", "outcome", "is_censored", "assigned_at", "unit_id"])
    frame = units
    closed = ~frame.is_censored.astype(bool)  # window closed by the data's cut-off
    if as_of is not None:
        cut = _utc_stamp(as_of)
        frame, closed = frame[frame.assigned_at < cut], closed[frame.assigned_at < cut]
        closed = closed & (frame.window_ends_at <= cut)
    control = str(spec.control_arm)
    arms = sorted(frame.arm.astype(str).unique().tolist())
    if control not in arms:
        shown = ", ".join(arms) or "none"
        raise ValueError(
            f"experiment {spec.experiment_id!r}: control arm {control!r} not found; arms: {shown}"
        )
    if len(arms) < 2:
        raise ValueError(f"experiment {spec.experiment_id!r} has one arm ({control!r}) only")
    treatments = [a for a in arms if a != control]
    level = spec.analysis_level
    if "level" in frame.columns and len(frame):
        found = sorted(frame.level.astype(str).unique().tolist())
        if found != [level]:
            raise ValueError(
                f"experiment {spec.experiment_id!r}: the unit frame holds {found} rows but the "
                f"spec asks for {level!r} rows; build it with level={level!r}"
            )
    cluster_key = "cluster_id" if "cluster_id" in frame.columns else "unit_id"
    clusters_by_arm = frame.groupby(frame.arm.astype(str))[cluster_key].nunique()
    if int(clusters_by_arm.sum()) != frame[cluster_key].nunique():
        raise ValueError(
            f"experiment {spec.experiment_id!r}: some {cluster_key} values appear in two arms; "
            "a randomised unit has one arm"
        )
    counts = clusters_by_arm.reindex(arms).astype("int64").rename("count")
    counts.index.name = "arm"
    planned = spec.planned_split or {a: 1.0 for a in arms}
    srm = check_sample_ratio(counts, {a: planned.get(a, 0.0) for a in arms}, alpha=srm_alpha)
    analysed = frame[closed.to_numpy()].assign(arm=lambda d: d.arm.astype(str))
    cluster_col = None if spec.unit_type == "person" else cluster_key
    used = None if cluster_col else _usable_covariate(analysed, covariate)
    table = _lift_arms(
        analysed, control, treatments, cluster_col=cluster_col, covariate=used, alpha=alpha,
        p_adjust=p_adjust,
    )  # fmt: skip
    segment_table = _segment_lifts(
        analysed,
        control,
        treatments,
        segments,
        alpha=alpha,
        p_adjust=p_adjust,
        min_units=min_segment_units,
        cluster_col=cluster_col,
    ).assign(experiment_id=spec.experiment_id)
    rows = frame.arm.astype(str).value_counts().reindex(arms).fillna(0)
    n_analysed = analysed.arm.value_counts().reindex(arms).fillna(0)
    n_by_arm = pd.DataFrame(
        {
            "n_clusters": counts,
            "n_assigned": rows,
            "n_censored": rows - n_analysed,
            "n_analysed": n_analysed,
        }
    ).astype("int64")
    method = "ols-cluster" if cluster_col else ("cuped" if used else "wald")
    return ExperimentResult(
        spec=spec,
        srm=srm,
        arms=table,
        segments=segment_table[["experiment_id", *segment_table.columns[:-1]]],
        power={str(a): detectable_effect_for(r, power=power) for a, r in table.results.items()},
        n_assigned=int(rows.sum()),
        n_censored=int(rows.sum() - len(analysed)),
        n_by_arm=n_by_arm,
        method=method,
        covariate=used,
        assigned_from=frame.assigned_at.min() if len(frame) else None,
        assigned_to=frame.assigned_at.max() if len(frame) else None,
        alpha=alpha,
        level=level,
        cluster_col=cluster_col,
    )


def analyse_experiments(
    units: Mapping[str, pd.DataFrame], specs: Sequence[ExperimentSpec], **options: Any
) -> tuple[list[ExperimentResult], dict[str, str]]:
    """:func:`analyse_experiment` for each spec; one that cannot be read does not stop the rest.

    Parameters
    ----------
    units : mapping
        Experiment id -> executed :func:`build_experiment_units` (built with
        ``level=spec.level``); an experiment missing here is reported, not analysed.
    specs : sequence of ExperimentSpec
    **options
        Passed to :func:`analyse_experiment` (covariate, segments, alpha, p_adjust, ...).

    Returns
    -------
    (list of ExperimentResult, dict)
        The results, and per experiment that could not be analysed the reason (no unit
        frame, no control arm, no conversion in control, ...), for the report to state
        instead of failing.
    """
    results: list[ExperimentResult] = []
    problems: dict[str, str] = {}
    for spec in specs:
        if spec.experiment_id not in units:
            problems[spec.experiment_id] = (
                f"no unit frame was built for this {spec.unit_type}-randomised experiment"
            )
            continue
        try:
            results.append(analyse_experiment(units[spec.experiment_id], spec, **options))
        except ValueError as exc:
            log.warning("experiment %s not analysed: %s", spec.experiment_id, exc)
            problems[spec.experiment_id] = str(exc)
    return results, problems


def _utc_stamp(moment: datetime | str | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def summarise_experiments(results: Sequence[ExperimentResult]) -> pd.DataFrame:
    """:meth:`ExperimentResult.summary` of every experiment, stacked, with the verdict.

    ``verdict``: ``"lift"`` or ``"drop"`` when the adjusted p-value is below alpha and the
    relative interval excludes 0, else ``"inconclusive"``.
    """
    frames = [r.summary().assign(alpha=r.alpha) for r in results]
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    excludes_zero = (table.rel_ci_low > 0) | (table.rel_ci_high < 0)
    significant = excludes_zero & (table.p_adjusted < table.alpha)  # as _lift_verdict
    table["verdict"] = np.where(
        significant, np.where(table.rel_lift > 0, "lift", "drop"), "inconclusive"
    )
    return table.drop(columns="alpha")


# --------------------------------------------------------------------------------------------
# a roll-out from its region x period panel


@dataclass(frozen=True, slots=True)
class RolloutResult:
    """A roll-out's difference-in-differences: TWFE estimate, a robustness fit, event study."""

    did: DidResult  # TWFE, errors clustered by region (the primary estimate)
    did_hc1: DidResult  # TWFE, heteroskedasticity-robust errors (cells independent)
    event: EventStudyResult | None  # leads and lags; None when not identified
    panel: pd.DataFrame  # the region x period panel analysed
    regions: tuple[str, ...]  # treated regions
    comparison_regions: tuple[str, ...]  # never-treated regions
    outcome: str = "sql_rate"  # outcome column (a fraction)
    is_staggered: bool = False  # treated regions started in different periods

    def conf_int(self, alpha: float | None = None) -> pd.DataFrame:
        """Interval of the primary estimate: one row ``did``, columns ``low``, ``high``."""
        return self.did.conf_int(alpha)

    def summary(self) -> pd.DataFrame:
        """One row per fit: ``model, estimate, se, low, high, p_value, n, clusters, df,
        inference`` (``df`` empty when the wild bootstrap gave the p-value and interval)."""
        rows = []
        for label, fit in (
            ("TWFE, errors clustered by region (primary)", self.did),
            ("TWFE, robust errors (HC1; cells independent)", self.did_hc1),
        ):
            ci = fit.conf_int().iloc[0]
            rows.append(
                {
                    "model": label,
                    "estimate": fit.estimate,
                    "se": fit.se,
                    "low": ci["low"],
                    "high": ci["high"],
                    "p_value": fit.p_value,
                    "n": fit.n,
                    "clusters": fit.n_clusters,
                    "df": math.nan if fit.bootstrap is not None else fit.df,
                    "inference": fit.inference,
                }
            )
        table = pd.DataFrame(rows)
        table["clusters"] = table["clusters"].astype("Int64")
        return table

    @property
    def is_pretrend_testable(self) -> bool:
        """True when the event study's joint pre-trend F test is defined.

        It needs at least one lead and a covariance of the leads of full rank. A
        cluster-robust covariance has rank at most G - 1 (fewer once fixed effects are
        absorbed), so with a handful of regions several leads cannot be tested jointly.
        """
        event = self.event
        if event is None or event.pretrend_df == 0:
            return False
        leads = [k for k in event.coefficients.index if k <= -2]
        eigen = np.linalg.eigvalsh(event.cov.loc[leads, leads].to_numpy())
        return bool(eigen.min() > 1e-8 * max(eigen.max(), 1e-300))

    def describe(self) -> str:
        """Plain-language verdict with the pre-trend check and the clustering caveat."""
        fit = self.did
        n_regions = len(self.regions) + len(self.comparison_regions)
        level = f"{100 * (1 - fit.alpha):g} %"
        how = "errors clustered by region"
        if fit.bootstrap is not None:
            how += f"; p-value and interval from a {fit.inference}"
        text = (
            f"The SLA roll-out in {', '.join(self.regions)} changed SAL→SQL conversion by "
            f"{_points(fit.estimate)} ({level} CI {_points(fit.ci_low)} to "
            f"{_points(fit.ci_high)}, p = {fit.p_value:.2g}; {n_regions} regions, {how})"
        )
        if fit.ci_low <= 0 <= fit.ci_high:
            text += ": inconclusive, the interval spans zero."
        else:
            direction = "rise" if fit.estimate > 0 else "fall"
            text += f": a {direction} at the {100 * fit.alpha:g} % level."
        if self.is_pretrend_testable:
            p = self.event.pretrend_p  # type: ignore[union-attr]
            text += (
                f" Pre-trend check: the {self.event.pretrend_df} pre-period coefficients are "  # type: ignore[union-attr]
                + (
                    f"jointly compatible with zero (F test p = {p:.2g}), which supports "
                    "parallel trends but does not prove them."
                    if p >= 0.05
                    else f"jointly different from zero (F test p = {p:.2g}): parallel trends "
                    "are doubtful, read the estimate with care."
                )
            )
        elif self.event is not None:
            text += (
                f" With {self.event.n_clusters} regions the {self.event.pretrend_df} "
                "pre-period coefficients cannot be tested jointly; judge parallel trends "
                "from the event-study plot."
            )
        if fit.bootstrap is not None:
            text += (
                f" With only {n_regions} regions as clusters the usual t interval would be too "
                "narrow, so the wild cluster bootstrap gives the interval: valid with few "
                "clusters but wide and a little conservative, so only a large effect can be "
                "told from zero. The robust (HC1) fit beside it treats cells as independent, "
                "ignoring correlation within a region over time: a check, not a replacement."
            )
        elif n_regions < 30:
            text += (
                f" With only {n_regions} regions as clusters the clustered interval is "
                "approximate; the robust (HC1) fit is shown beside it as a check."
            )
        return text


def _points(value: float) -> str:
    """A difference of two rates in percentage points, signed, with a real minus sign."""
    return f"{100 * value:+.1f} pts".replace("-", "\N{MINUS SIGN}")


def analyse_rollout(
    panel: pd.DataFrame,
    *,
    alpha: float = 0.05,
    window: tuple[int, int] | None = (-6, 6),
) -> RolloutResult:
    """Difference-in-differences of a roll-out panel (:func:`build_rollout_panel`, executed).

    Parameters
    ----------
    panel : pandas.DataFrame
        ``region, period, sql_rate, is_treated, is_post, first_treated_period``.
    alpha : float, default 0.05
        Level of the intervals.
    window : (int, int) or None, default (-6, 6)
        Event-study relative periods estimated separately; further ones are binned into the
        ends.

    Returns
    -------
    RolloutResult

    Raises
    ------
    ValueError
        No treated or no comparison region in the panel, or the design is not identified.

    Notes
    -----
    The primary estimate is two-way fixed effects OLS (region and period dummies) of the
    period's SAL→SQL rate on ``is_treated * is_post``, errors clustered by region
    (:func:`estimate_did`); with fewer than 30 regions its p-value and interval come from the
    restricted wild cluster bootstrap (Webb weights below 12 regions, every draw enumerated
    up to 5 regions). Cells are weighted equally, whatever their number of SALs. A
    second fit with HC1 errors treats cells as independent: a check, not a replacement, as
    it ignores correlation within a region over time. The event study (:func:`event_study`)
    gives leads (pre-trend check) and lags. With staggered starts the TWFE estimate mixes
    cohorts (Goodman-Bacon 2021); the event study with never-treated comparison regions is
    the better guide then.
    """
    _require_columns(panel, ["region", "period", "sql_rate", "is_treated", "is_post"])
    treated = sorted(panel.loc[panel.is_treated == 1, "region"].astype(str).unique())
    comparison = sorted(panel.loc[panel.is_treated == 0, "region"].astype(str).unique())
    if not treated or not comparison:
        raise ValueError(
            "the roll-out panel needs treated and comparison regions; treated: "
            f"{treated or 'none'}, comparison: {comparison or 'none'}"
        )
    frame = panel.assign(region=panel.region.astype(str))
    did = estimate_did(
        frame, "sql_rate", "is_treated", "is_post", cluster="region", unit="region",
        period="period", alpha=alpha,
    )  # fmt: skip
    did_hc1 = estimate_did(
        frame, "sql_rate", "is_treated", "is_post", cov_type="HC1", unit="region",
        period="period", alpha=alpha,
    )  # fmt: skip
    try:
        event = event_study(
            frame, "sql_rate", "region", "period", "first_treated_period", alpha=alpha,
            window=window,
        )  # fmt: skip
    except ValueError as exc:
        log.warning("event study not estimated: %s", exc)
        event = None
    firsts = frame.loc[frame.is_treated == 1, "first_treated_period"].dropna().unique()
    return RolloutResult(
        did=did,
        did_hc1=did_hc1,
        event=event,
        panel=frame,
        regions=tuple(treated),
        comparison_regions=tuple(comparison),
        is_staggered=len(firsts) > 1,
    )


# --------------------------------------------------------------------------------------------
# headline KPIs


def compute_lift_kpis(
    units: Mapping[str, pd.DataFrame],
    specs: Sequence[ExperimentSpec],
    quarter_ends: Mapping[str, datetime | pd.Timestamp],
    *,
    rollout: RolloutResult | None = None,
    report_quarter: str,
    covariate: str | None = "n_touches_pre",
    alpha: float = 0.05,
    p_adjust: str = "holm",
    notebook: str = "conversion_lift",
) -> pd.DataFrame:
    """The lift section's KPIs in the ``kpis-<study>`` layout (docs/notebooks.md).

    Parameters
    ----------
    units : mapping
        Experiment id -> executed :func:`build_experiment_units`.
    specs : sequence of ExperimentSpec
    quarter_ends : mapping
        Quarter label -> its end (exclusive, UTC), for the report and compared quarters.
    rollout : RolloutResult, optional
        The SLA roll-out; its effect is a KPI of the report quarter.
    report_quarter : str
        The quarter the roll-out KPI belongs to.
    covariate, alpha, p_adjust
        As :func:`analyse_experiment`.
    notebook : str
        Notebook name for the ``source`` column.

    Returns
    -------
    pandas.DataFrame
        ``kpi, quarter, value, unit, source, headline, higher_is_better``. Per quarter,
        with the data known at its end: *Lift experiments concluded* (count: every unit
        assigned and its window closed, by the quarter's end and the data's cut-off),
        *Lift experiments with a significant lift* (count: some arm with adjusted p < alpha
        and a relative interval above 0). For the report quarter: *SLA roll-out effect on
        SAL→SQL conversion* (fraction: the DiD estimate in points). ``headline`` is true
        for the count of significant lifts only: an estimate without its interval should
        not lead the summary.
    """
    rows = []
    for quarter, end in quarter_ends.items():
        cut = _utc_stamp(end)
        concluded = significant = 0
        for spec in specs:
            frame = units.get(spec.experiment_id)
            if frame is None:
                continue
            assigned = frame[frame.assigned_at < cut]
            if assigned.empty:
                continue
            known = (assigned.window_ends_at <= cut) & ~assigned.is_censored.astype(bool)
            concluded += int(len(assigned) == len(frame) and bool(known.all()))
            try:
                res = analyse_experiment(
                    frame, spec, covariate=covariate, segments=(), alpha=alpha,
                    p_adjust=p_adjust, as_of=cut,
                )  # fmt: skip
            except ValueError:
                continue
            table = summarise_experiments([res])
            significant += int((table.verdict == "lift").any())
        source = f"{notebook}#tbl-lift-kpis"
        rows += [
            (
                "Lift experiments concluded", quarter, float(concluded), "count",
                source, False, True,
            ),
            (
                "Lift experiments with a significant lift", quarter, float(significant),
                "count", source, True, True,
            ),
        ]  # fmt: skip
    if rollout is not None:
        rows.append(
            (
                "SLA roll-out effect on SAL→SQL conversion", report_quarter,
                float(rollout.did.estimate), "fraction", f"{notebook}#tbl-sla-rollout-did",
                False, True,
            )
        )  # fmt: skip
    columns = ["kpi", "quarter", "value", "unit", "source", "headline", "higher_is_better"]
    return pd.DataFrame(rows, columns=columns)
