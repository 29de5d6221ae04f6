"""Multi-touch attribution on aggregated path data: rule-based, Markov (exact, order k), Shapley.

Input is the ChannelAttribution / DP6 layout: one row per distinct path, ``path`` holding the
channels joined by a separator, ``conversions`` and ``nulls`` counting the journeys that took
that path and did or did not convert, and optionally ``value``, the revenue of the converting
journeys. :func:`parse_paths` validates and encodes it once; :func:`attribute` runs one model on
it and returns an :class:`AttributionResult`; :func:`bootstrap` adds percentile intervals by
resampling journeys.

Every model credits exactly the observed conversions (and value): the credit of the channels sums
to the total to floating point.

:func:`attribute_journeys` starts one step earlier, from the contract tables: it builds a
window's journeys with :mod:`alignment.journeys` (person or account units), runs every model on
their paths (time decay with the touches' real ages in days) and returns a
:class:`JourneyAttribution` with the report's views: credit by model, Markov removal effects,
revenue credit, the share of credit earned by sales touches, the channels' positions, and the
distance to a known truth. :func:`build_account_view`, :func:`describe_disagreement` and
:func:`compute_kpis` build on it.

Models and their weights (``L`` is the number of touches of a path, positions count from 1):

============  ==========================================================================
first_touch   100 % to touch 1
last_touch    100 % to touch L
linear        1/L to every touch (a channel touched twice gets two shares)
time_decay    touch i gets weight 2 ** (-(L - i) / h), normalised within the path; h is the
              half-life in steps (default 1: each earlier touch counts half as much). With
              per-touch ages in days use :func:`attribute_time_decay_by_age` (h = 7 days)
u_shaped      40 % first, 40 % last, 20 % shared by the touches in between
j_shaped      20 % first, 60 % last, 20 % shared by the touches in between
inverse_j     60 % first, 20 % last, 20 % shared by the touches in between
w_shaped      30 % first, 30 % "opportunity" touch, 30 % last, 10 % shared by the rest; on a
              path without stages the opportunity touch is the middle one, position
              ``L // 2 + 1`` (the later one of two middles: opportunities come late)
full_path     22.5 % each to first, "lead", "opportunity" and last touch, 10 % shared by the
              rest; without stages lead and opportunity are the touches at the positions
              ``round((L - 1) / 3) + 1`` and ``round(2 (L - 1) / 3) + 1`` (halves round up)
markov        removal effects of an absorbing Markov chain of order k (Anderl et al. 2016)
shapley       each converting channel set splits its conversions among its channels by their
              Shapley values in the game whose worths are the conversion rates of the
              journeys (converting or not) that used each subset; ``shapley_game=
              "conversions"``: Zhao et al.'s simplified Shapley on conversion counts
============  ==========================================================================

Short paths of the position models (HubSpot and Marketo Measure conventions): a path of one
touch gives it 100 %. When a path has no touch outside the anchor touches, the anchors' weights
are renormalised to sum to one (U-shaped with two touches: 50/50; J-shaped: 25/75; W-shaped with
three touches: a third each; full path with four: 25 % each). When a path has fewer touches than
the model has anchors (W-shaped with two touches, full path with two or three), its touches share
the credit equally.

References
----------
.. [1] Anderl, E., Becker, I., von Wangenheim, F., Schumann, J. H. (2016). Mapping the customer
   journey: Lessons learned from graph-based online attribution modeling. International Journal
   of Research in Marketing 33(3), 457-474.
.. [2] Zhao, K., Mahboobi, S. H., Bagheri, S. R. (2018). Shapley value methods for attribution
   modeling in online advertising. arXiv:1804.05327.
.. [3] Altomare, D., Loris, D. ChannelAttribution (R and Python package), markov_model.
.. [4] Efron, B., Tibshirani, R. J. (1993). An Introduction to the Bootstrap. Chapman & Hall.
.. [5] Castro, J., Gomez, D., Tejada, J. (2009). Polynomial calculation of the Shapley value
   based on sampling. Computers & Operations Research 36(5), 1726-1730.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import splu

if TYPE_CHECKING:  # pragma: no cover
    import ibis
    import ibis.expr.types as ir

    from alignment.params import AttributionParams, Quarter

log = logging.getLogger(__name__)

RULE_MODELS: tuple[str, ...] = (
    "first_touch",
    "last_touch",
    "linear",
    "time_decay",
    "u_shaped",
    "w_shaped",
    "full_path",
    "j_shaped",
    "inverse_j",
)
MODELS: tuple[str, ...] = (*RULE_MODELS, "markov", "shapley")

#: anchor weights (first, *middles, last) and the weight shared by the other touches
_ANCHORS: dict[str, tuple[tuple[float, ...], float]] = {
    "u_shaped": ((0.4, 0.4), 0.2),
    "j_shaped": ((0.2, 0.6), 0.2),
    "inverse_j": ((0.6, 0.2), 0.2),
    "w_shaped": ((0.3, 0.3, 0.3), 0.1),
    "full_path": ((0.225, 0.225, 0.225, 0.225), 0.1),
}
EXACT_SHAPLEY_MAX_CHANNELS = 15
#: Shapley games: worth of a channel set = its journeys' conversion rate (default), or count
SHAPLEY_GAMES: tuple[str, ...] = ("conversion_rate", "conversions")
#: Markov chains with more transient states than this are solved by a checked iteration, not LU
DIRECT_MAX_STATES = 2500
#: largest accepted error bound of an iterated solution, relative to its largest entry
ITERATIVE_REL_TOL = 1e-13
MAX_ITERATIONS = 20_000
TIME_DECAY_HALF_LIFE_DAYS = 7.0

# A fitted model, evaluated on one set of counts: (credit, value credit or None, extras).
_Evaluator = Callable[
    [np.ndarray, np.ndarray, np.ndarray | None],
    tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]],
]


# --------------------------------------------------------------------------------------------
# Errors and input
# --------------------------------------------------------------------------------------------


class PathDataError(ValueError):
    """Bad aggregated path data: which column, which rows (1-based) and which rule is broken."""

    def __init__(self, column: str, rows: Sequence[int], rule: str) -> None:
        super().__init__(column, tuple(rows), rule)
        self.column, self.rows, self.rule = column, tuple(rows), rule

    def __str__(self) -> str:  # column conversions, rows 3, 7: negative count
        shown = ", ".join(map(str, self.rows[:5]))
        more = f" … ({len(self.rows)} rows)" if len(self.rows) > 5 else ""
        where = f", rows {shown}{more}" if self.rows else ""
        return f"column {self.column}{where}: {self.rule}"


@dataclass(frozen=True, slots=True, eq=False)
class Paths:
    """Distinct paths, encoded once: channel codes of every touch plus the journey counts.

    Attributes
    ----------
    path : pd.Index
        Normalised path text (channels stripped, joined by ``sep``), one per distinct path.
    channels : pd.Index
        Channel names; a touch's code is its position here.
    tokens : np.ndarray
        Channel code of every touch, paths concatenated in order (int64).
    offsets : np.ndarray
        Path ``i`` owns ``tokens[offsets[i]:offsets[i + 1]]`` (int64, ``len(path) + 1``).
    conversions, nulls : np.ndarray
        Journeys on each path that converted / did not (float64, non-negative).
    value : np.ndarray or None
        Revenue of the converting journeys of each path, in the data's currency.
    sep : str
        Separator used in ``path``.
    """

    path: pd.Index
    channels: pd.Index
    tokens: np.ndarray
    offsets: np.ndarray
    conversions: np.ndarray
    nulls: np.ndarray
    value: np.ndarray | None
    sep: str = ">"

    @property
    def n_paths(self) -> int:
        """Number of distinct paths."""
        return len(self.path)

    @property
    def lengths(self) -> np.ndarray:
        """Touches per path."""
        return np.diff(self.offsets)

    @property
    def path_of_token(self) -> np.ndarray:
        """Index of the path each touch belongs to."""
        return np.repeat(np.arange(self.n_paths), self.lengths)

    @property
    def position(self) -> np.ndarray:
        """0-based position of each touch within its path."""
        return np.arange(len(self.tokens)) - np.repeat(self.offsets[:-1], self.lengths)

    @property
    def n_journeys(self) -> float:
        """Converting plus non-converting journeys."""
        return float(self.conversions.sum() + self.nulls.sum())

    def to_frame(self) -> pd.DataFrame:
        """The paths back in the input layout: path, conversions, nulls[, value]."""
        out = {"path": self.path, "conversions": self.conversions, "nulls": self.nulls}
        if self.value is not None:
            out["value"] = self.value
        return pd.DataFrame(out)


def parse_paths(
    frame: pd.DataFrame,
    path_col: str = "path",
    sep: str = ">",
    conv_col: str = "conversions",
    null_col: str = "nulls",
    value_col: str | None = None,
    channels: Iterable[str] | None = None,
) -> Paths:
    """Validate aggregated path data and encode it as :class:`Paths`.

    Parameters
    ----------
    frame : pd.DataFrame
        One row per path (repeated paths allowed: their counts are summed).
    path_col : str, default "path"
        Channels of the path joined by ``sep``; whitespace around each channel is stripped.
    sep : str, default ">"
        Separator between channels.
    conv_col, null_col : str, default "conversions", "nulls"
        Converting and non-converting journeys on the path (non-negative numbers).
    value_col : str or None, default None
        Revenue of the path's converting journeys (non-negative; zero where no conversion).
    channels : iterable of str or None, default None
        Declare the channels (and their order). A declared channel that never appears gets zero
        credit; a path with an undeclared channel is an error. By default the channels found,
        sorted by name.

    Returns
    -------
    Paths

    Raises
    ------
    PathDataError
        (a ``ValueError``) naming the column, the rows (1-based, in ``frame`` order) and the rule:
        missing column, missing value (NaN), empty path or empty channel, negative count, value
        without conversions, undeclared channel.

    Notes
    -----
    Counts may be fractional (weights); :func:`bootstrap` needs whole journeys.

    Examples
    --------
    >>> p = parse_paths(pd.DataFrame({"path": ["A > B", "B", "A>B"],
    ...                               "conversions": [1, 0, 2], "nulls": [3, 1, 0]}))
    >>> list(p.path), p.conversions.tolist(), list(p.channels)
    (['A>B', 'B'], [3.0, 0.0], ['A', 'B'])
    """
    if not sep:
        raise ValueError("sep must be a non-empty string")
    cols = [path_col, conv_col, null_col] + ([value_col] if value_col else [])
    for col in cols:
        if col not in frame.columns:
            known = ", ".join(map(str, frame.columns))
            raise PathDataError(col, (), f"missing column (columns: {known})")
    for col in cols:
        _check_no_missing(frame, col)
    counts = {col: _numeric_column(frame, col) for col in cols[1:]}
    for col in (conv_col, null_col) + ((value_col,) if value_col else ()):
        _check_non_negative(counts[col], col)
    if value_col:
        bad = np.flatnonzero((counts[value_col] > 0) & (counts[conv_col] == 0)) + 1
        if len(bad):
            raise PathDataError(value_col, bad, "value on a path without conversions")
    texts = _normalise_paths(frame[path_col], sep, path_col)
    grouped = _sum_repeated(texts, counts, conv_col, null_col, value_col)
    return _encode(grouped, sep, channels)


def _check_no_missing(frame: pd.DataFrame, col: str) -> None:
    bad = np.flatnonzero(frame[col].isna().to_numpy()) + 1
    if len(bad):
        raise PathDataError(col, bad, "missing value")


def _numeric_column(frame: pd.DataFrame, col: str) -> np.ndarray:
    values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(values)) + 1
    if len(bad):
        raise PathDataError(col, bad, "not a finite number")
    return values


def _check_non_negative(values: np.ndarray, col: str) -> None:
    bad = np.flatnonzero(values < 0) + 1
    if len(bad):
        raise PathDataError(col, bad, "negative count")


def _normalise_paths(column: pd.Series, sep: str, path_col: str) -> list[str]:
    """Strip whitespace around every channel; reject empty paths and empty channels."""
    texts = column.astype(str).tolist()
    out: list[str] = []
    bad: list[int] = []
    for row, text in enumerate(texts, start=1):
        parts = [part.strip() for part in text.split(sep)]
        if not all(parts):
            bad.append(row)
        out.append(sep.join(parts))
    if bad:
        raise PathDataError(path_col, bad, "empty path or empty channel between separators")
    return out


def _sum_repeated(
    texts: list[str],
    counts: dict[str, np.ndarray],
    conv_col: str,
    null_col: str,
    value_col: str | None,
) -> pd.DataFrame:
    data = {"path": texts, "conversions": counts[conv_col], "nulls": counts[null_col]}
    if value_col:
        data["value"] = counts[value_col]
    frame = pd.DataFrame(data)
    if frame["path"].duplicated().any():
        frame = frame.groupby("path", sort=False, as_index=False).sum()
    return frame


def _encode(frame: pd.DataFrame, sep: str, channels: Iterable[str] | None) -> Paths:
    texts = frame["path"].tolist()
    lengths = np.fromiter((t.count(sep) + 1 for t in texts), dtype=np.int64, count=len(texts))
    names = sep.join(texts).split(sep) if texts else []
    codes, found = pd.factorize(pd.Index(names, dtype=object), sort=True)
    if channels is None:
        declared = pd.Index(found, dtype=object, name="channel")
    else:
        declared = pd.Index(list(channels), dtype=object, name="channel")
        if declared.has_duplicates:
            raise ValueError("channels: each channel may be declared once")
        remap = declared.get_indexer(found)
        if (remap < 0).any():
            undeclared = [str(c) for c in found[remap < 0]]
            rows = _rows_with(texts, sep, set(undeclared))
            raise PathDataError("path", rows, f"undeclared channel {', '.join(undeclared[:5])}")
        codes = remap[codes] if len(codes) else codes
    return Paths(
        path=pd.Index(texts, dtype=object, name="path"),
        channels=declared,
        tokens=np.asarray(codes, dtype=np.int64),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        conversions=frame["conversions"].to_numpy(dtype=float),
        nulls=frame["nulls"].to_numpy(dtype=float),
        value=frame["value"].to_numpy(dtype=float) if "value" in frame else None,
        sep=sep,
    )


def _rows_with(texts: list[str], sep: str, names: set[str]) -> list[int]:
    return [i for i, t in enumerate(texts, start=1) if names.intersection(t.split(sep))]


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class AttributionResult:
    """Conversions (and value) credited to each channel by one model.

    Attributes
    ----------
    credit : pd.Series
        Credited conversions per channel (index ``channel``); sums to ``n_conversions``.
    value_credit : pd.Series or None
        Credited value per channel; sums to the total value. None without a value column.
    draws : pd.DataFrame or None
        Bootstrap replicates of ``credit``, one row per resample of journeys (see
        :func:`bootstrap`); None for a point estimate.
    model : str
        One of :data:`MODELS`.
    order : int or None
        Markov order; None for the other models.
    n_conversions : float
        Conversions credited (the total of the data).
    removal_effects : pd.Series or None
        Markov removal effect of each channel, ``1 - P(conv without c) / P(conv)``.
    value_draws : pd.DataFrame or None
        Bootstrap replicates of ``value_credit``.
    approx_error : pd.Series or None
        For sampled Shapley values: a 95 % bound on the sampling error of ``credit``, in
        conversions (Hoeffding; see :func:`attribute`). None when the credit is exact.
    """

    credit: pd.Series
    value_credit: pd.Series | None
    draws: pd.DataFrame | None
    model: str
    order: int | None
    n_conversions: float
    removal_effects: pd.Series | None = None
    value_draws: pd.DataFrame | None = None
    approx_error: pd.Series | None = None

    @property
    def share(self) -> pd.Series:
        """Fraction of the conversions credited to each channel (NaN when there are none)."""
        total = float(self.credit.sum())
        if total == 0:
            return pd.Series(np.nan, index=self.credit.index, name="share")
        return (self.credit / total).rename("share")

    @property
    def bse(self) -> pd.Series:
        """Bootstrap standard error of ``credit``, in conversions."""
        return self._require_draws().std(ddof=1).rename("bse")

    def conf_int(
        self, alpha: float = 0.05, kind: Literal["credit", "share", "value"] = "credit"
    ) -> pd.DataFrame:
        """Percentile bootstrap interval, columns ``low`` and ``high``, one row per channel.

        Parameters
        ----------
        alpha : float, default 0.05
            1 - coverage.
        kind : {"credit", "share", "value"}, default "credit"
            Interval for credited conversions, for the share, or for credited value.
        """
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
        draws = self._require_draws()
        if kind == "share":
            draws = draws.div(draws.sum(axis=1), axis=0)
        elif kind == "value":
            if self.value_draws is None:
                raise ValueError("kind='value' needs a value column and bootstrap draws")
            draws = self.value_draws
        elif kind != "credit":
            raise ValueError(f"kind must be 'credit', 'share' or 'value', got {kind!r}")
        q = draws.quantile([alpha / 2, 1 - alpha / 2]).T
        return q.set_axis(["low", "high"], axis=1)

    def summary(self, alpha: float = 0.05) -> pd.DataFrame:
        """One row per channel: channel, conversions, [value], share, [low, high].

        ``low``/``high`` (the percentile interval of the credited conversions) appear when the
        result has bootstrap draws.
        """
        frame = self.to_frame()
        if self.draws is not None:
            ci = self.conf_int(alpha)
            frame["low"] = ci["low"].to_numpy()
            frame["high"] = ci["high"].to_numpy()
        return frame

    def to_frame(self) -> pd.DataFrame:
        """Exactly the CLI layout: channel, conversions[, value], share."""
        frame = pd.DataFrame(
            {"channel": self.credit.index.astype(object), "conversions": self.credit.to_numpy()}
        )
        if self.value_credit is not None:
            frame["value"] = self.value_credit.to_numpy()
        frame["share"] = self.share.to_numpy()
        return frame

    def _require_draws(self) -> pd.DataFrame:
        if self.draws is None:
            raise ValueError("this result has no bootstrap draws; use attribution.bootstrap()")
        return self.draws


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def attribute(
    paths: Paths | pd.DataFrame,
    model: str,
    order: int = 1,
    *,
    half_life_steps: float = 1.0,
    shapley_method: Literal["auto", "exact", "sample"] = "auto",
    shapley_game: Literal["conversion_rate", "conversions"] = "conversion_rate",
    n_permutations: int = 2000,
    seed: int = 0,
) -> AttributionResult:
    """Credit the conversions (and value) of aggregated paths to channels with one model.

    Parameters
    ----------
    paths : Paths or pd.DataFrame
        From :func:`parse_paths`; a DataFrame is parsed with its defaults.
    model : str
        One of :data:`MODELS` (see the module docstring for the weights).
    order : int, default 1
        Markov order k (states are the last k channels); ignored by the other models.
    half_life_steps : float, default 1.0
        ``time_decay`` only: touches this many steps before the last touch get half its weight.
    shapley_method : {"auto", "exact", "sample"}, default "auto"
        Shapley only. "exact" enumerates all coalitions (at most
        :data:`EXACT_SHAPLEY_MAX_CHANNELS` channels); "sample" averages marginal contributions
        over ``n_permutations`` random channel orders; "auto" (default) uses the closed form
        phi_i = sum of worth(T)/|T| over the channel sets T containing i (unanimity games),
        exact for any number of channels ("exact" and "sample" remain as cross-checks).
    shapley_game : {"conversion_rate", "conversions"}, default "conversion_rate"
        Shapley only: the worth of a channel set is the conversion rate of the journeys that
        used exactly that set (converting and not), or their conversions (Zhao et al.'s
        simplified Shapley, which ignores the non-converting journeys). See Notes.
    n_permutations : int, default 2000
        Shapley sampling only.
    seed : int, default 0
        Shapley sampling only.

    Returns
    -------
    AttributionResult
        Without bootstrap draws (see :func:`bootstrap`).

    Notes
    -----
    Markov: the state after a touch is the tuple of the last k channels. Transitions are
    counted from the distinct paths, each weighted by its journeys, (start) -> states ->
    (conversion) or (null). As in ChannelAttribution (checked on its ``transition_matrix``
    output), (start) leads straight to the first k channels and a path shorter than k is one
    state of its own. Padding the first states at the start, ((start), c1), ((start), c1, c2),
    ..., gives exactly the same probabilities and removal effects: those prefix states form a
    tree, so their transition probabilities multiply back to the frequency of each k-prefix
    (the tests check this against a padded reference).

    The conversion probability from (start) solves the absorbing chain, ``(I - Q) x = r``; no
    simulation. Removing channel c sends every state containing c to (null); its removal
    effect is ``1 - P(conv without c) / P(conv)`` (equal to ChannelAttribution's simulated
    "share of converting paths that visit c") and channel credit is ``removal_c /
    sum(removal) * conversions``. Value credit uses the same chain with each conversion worth
    its path's mean value. The states that survive a removal form a principal sub-matrix of
    ``I - Q``, so each removal is one solve on that sub-matrix: a sparse LU factorisation
    (``splu``) up to :data:`DIRECT_MAX_STATES` states; above that (order 4 and up) LU fill-in
    costs minutes, and the fixed-point iteration ``x <- r + Q x`` is run until a rigorous
    a-posteriori error bound is below ``1e-13`` relative (see ``_solve_transient``).
    Repeated consecutive states (A > A) are self-loops, which do not change absorption
    probabilities; they are dropped.

    Shapley (order and repetition within a path are ignored; a path's channel set is its
    coalition). Default game, ``shapley_game="conversion_rate"``: the worth ``r(T)`` of a set T
    is the conversion rate of the journeys whose channel set is exactly T, conversions over
    conversions plus nulls, so the non-converting journeys count. The conversions of each
    converting set C are split among C's channels in proportion to their Shapley values in the
    game ``v(S) = sum of r(T) over observed T ⊆ S`` on C's channels; value credit splits C's
    value in the same proportions. Credit therefore sums to the conversions (and value) by
    construction. v is a sum of unanimity games, so C's Shapley values are
    ``phi_i = sum of r(T) / |T|`` over the observed ``T ⊆ C`` holding i, exact for any number
    of channels: credit_i = ``sum over T ∋ i of r(T) / |T| * s(T)`` with ``s(T) = sum of
    conversions(C) / v(C)`` over converting C ⊇ T. A channel whose journeys often fail lowers
    the rate of every set holding it and so takes a smaller part of the shared conversions.
    Like DP6's ``run_shapley(value_column="conv_rate")`` the split is per converting set and
    rescaled to its conversions (a single game over all channels, rescaled once, would credit
    a rare set with a high rate as much as a common one); unlike DP6, whose coalition value is
    the rate of exactly S (so channels can get negative credit), v(S) sums the rates of the
    subsets of S (Zhao et al.'s construction), which keeps every credit non-negative.

    ``shapley_game="conversions"``: the worth ``w(T)`` is the conversions of the paths whose
    channel set is exactly T and ``v(S) = sum of w(T) over T ⊆ S`` over all channels, the
    conversions S could produce on its own (Zhao et al. 2018, "simplified Shapley"); the exact
    value is ``sum of w(T) / |T|`` over the sets T holding the channel. Non-converting journeys
    play no part.

    "exact" evaluates the Shapley formula over all coalitions (for the default game, over the
    2^|C| subsets of each converting set C); "sample" replaces ``1 / |T|`` by the fraction of
    ``n_permutations`` random channel orders in which the channel comes last among T's
    members (Castro et al. 2009). The sampled estimate is unbiased, credits exactly the total
    for every permutation, and its per-channel error is below
    ``R_c * sqrt(ln(2 / 0.05) / (2 n_permutations))`` with 95 % probability (Hoeffding), where
    ``R_c`` bounds the credit one order can give c (the conversions of the paths containing c
    for the counts game; ``sum over T ∋ c of r(T) s(T)`` for the rate game): stored in
    ``approx_error``.

    References
    ----------
    .. [1] Anderl et al. (2016), IJRM 33(3): removal effects of higher-order Markov chains.
    .. [2] Zhao et al. (2018), arXiv:1804.05327: simplified Shapley value.
    .. [3] Castro et al. (2009): Shapley value by sampling permutations.
    .. [4] DP6, marketing-attribution-models 2.1.1, ``MAM.run_shapley`` (conv_rate game).

    Examples
    --------
    >>> data = pd.DataFrame({"path": ["C1>C2>C3", "C1", "C2>C3"],
    ...                      "conversions": [1, 0, 0], "nulls": [0, 1, 1]})
    >>> attribute(parse_paths(data), "markov").credit.round(6).tolist()
    [0.2, 0.4, 0.4]
    """
    paths = _as_paths(paths)
    model = _check_model(model)
    evaluate = _prepare(
        paths, model, order, half_life_steps, shapley_method, n_permutations, seed, shapley_game
    )
    credit, value_credit, extras = evaluate(paths.conversions, paths.nulls, paths.value)
    return _result(paths, model, order, credit, value_credit, extras)


def bootstrap(
    paths: Paths | pd.DataFrame,
    model: str,
    order: int = 1,
    *,
    n_boot: int = 200,
    seed: int = 0,
    **options: object,
) -> AttributionResult:
    """Point estimate of :func:`attribute` plus bootstrap replicates for intervals.

    Parameters
    ----------
    paths : Paths or pd.DataFrame
        Whole journeys: conversions and nulls must be integers.
    model, order : see :func:`attribute`
    n_boot : int, default 200
        Replicates B.
    seed : int, default 0
        Seed of the resampling (and of Shapley permutation sampling).
    **options
        Passed to :func:`attribute` (``half_life_steps``, ``shapley_method``, ...).

    Returns
    -------
    AttributionResult
        With ``draws`` (B rows, one column per channel) and, with value, ``value_draws``.

    Notes
    -----
    Each replicate draws N journeys with replacement, N the observed number of journeys. On
    aggregated data that is a multinomial draw over the (path, converted) and (path, null)
    cells with probabilities proportional to their counts: exactly the journey bootstrap.
    A resampled converting journey carries its path's mean value (the data do not hold the
    value of each journey). The model (including Markov transition probabilities) is re-fitted
    on every replicate; the paths' structure is encoded once.

    References
    ----------
    .. [1] Efron & Tibshirani (1993), An Introduction to the Bootstrap, ch. 13 (percentile
       intervals).
    """
    paths = _as_paths(paths)
    model = _check_model(model)
    if n_boot < 2:
        raise ValueError(f"n_boot must be at least 2, got {n_boot}")
    cells = np.concatenate([paths.conversions, paths.nulls])
    if not np.allclose(cells, np.round(cells)):
        raise ValueError("bootstrap needs whole journeys: conversions and nulls must be integers")
    evaluate = _prepare(paths, model, order, **_prepare_options(options, seed))
    point = _result(paths, model, order, *evaluate(paths.conversions, paths.nulls, paths.value))
    rng = np.random.default_rng(seed)
    n_total = int(round(cells.sum()))
    probs = cells / cells.sum() if n_total else cells
    mean_value = _mean_value(paths)
    credit_rows, value_rows = [], []
    for _ in range(n_boot):
        drawn = rng.multinomial(n_total, probs).astype(float) if n_total else cells
        conv, nulls = drawn[: paths.n_paths], drawn[paths.n_paths :]
        value = None if mean_value is None else conv * mean_value
        credit, value_credit, _ = evaluate(conv, nulls, value)
        credit_rows.append(credit)
        if value_credit is not None:
            value_rows.append(value_credit)
    columns = paths.channels
    draws = pd.DataFrame(np.vstack(credit_rows), columns=columns)
    value_draws = pd.DataFrame(np.vstack(value_rows), columns=columns) if value_rows else None
    return dataclasses.replace(point, draws=draws, value_draws=value_draws)


def attribute_time_decay_by_age(
    touches: pd.DataFrame,
    *,
    journey_col: str = "journey_id",
    channel_col: str = "channel",
    age_col: str = "age_days",
    conv_col: str = "conversions",
    value_col: str | None = None,
    half_life_days: float = TIME_DECAY_HALF_LIFE_DAYS,
) -> AttributionResult:
    """Time-decay credit from touches with their age, in days before the conversion.

    Parameters
    ----------
    touches : pd.DataFrame
        Long format: one row per touch, with its journey, channel and age in days (>= 0,
        measured back from the conversion or the end of the journey).
    journey_col, channel_col, age_col : str
        Column names.
    conv_col : str, default "conversions"
        Conversions of the journey (repeated on each of its touches; 0 or 1 for one journey).
    value_col : str or None, default None
        Value of the journey's conversions (repeated on each of its touches).
    half_life_days : float, default 7.0
        A touch this many days older than another gets half its weight. Seven days is the
        default of Google Analytics' and HubSpot's time-decay models.

    Returns
    -------
    AttributionResult
        ``model="time_decay"``.

    Notes
    -----
    Touch weight is ``2 ** (-age_days / half_life_days)``, normalised within the journey, so
    the journey's conversions (and value) are shared in proportion. The first row of a journey
    gives its conversions and value.
    """
    if half_life_days <= 0:
        raise ValueError(f"half_life_days must be positive, got {half_life_days}")
    cols = [journey_col, channel_col, age_col, conv_col] + ([value_col] if value_col else [])
    for col in cols:
        if col not in touches.columns:
            raise PathDataError(col, (), "missing column")
        _check_no_missing(touches, col)
    ages = _numeric_column(touches, age_col)
    _check_non_negative(ages, age_col)
    journey_codes, _ = pd.factorize(touches[journey_col])
    weight = np.exp2(-(ages - _group_min(ages, journey_codes)) / half_life_days)
    weight = weight / np.bincount(journey_codes, weights=weight)[journey_codes]
    first_rows = pd.Series(np.arange(len(touches))).groupby(journey_codes).first().to_numpy()
    conv = _numeric_column(touches, conv_col)
    _check_non_negative(conv, conv_col)
    channel_codes, channels = pd.factorize(touches[channel_col].astype(str), sort=True)
    index = pd.Index(channels, dtype=object, name="channel")
    credit = np.bincount(channel_codes, weights=weight * conv[first_rows][journey_codes],
                         minlength=len(index))
    value_credit = None
    if value_col:
        value = _numeric_column(touches, value_col)
        journey_value = value[first_rows][journey_codes]
        value_credit = np.bincount(channel_codes, weights=weight * journey_value,
                                   minlength=len(index))
    return AttributionResult(
        credit=pd.Series(credit, index=index, name="conversions"),
        value_credit=None if value_credit is None else pd.Series(value_credit, index=index,
                                                                 name="value"),
        draws=None,
        model="time_decay",
        order=None,
        n_conversions=float(conv[first_rows].sum()),
    )


def _group_min(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Youngest touch of each journey, so the youngest gets weight 1 (numerical safety only)."""
    return pd.Series(values).groupby(groups).transform("min").to_numpy()


def split_sales_marketing(
    result: AttributionResult, sales_channels: Iterable[str], alpha: float = 0.05
) -> pd.DataFrame:
    """Sum channel credit into marketing and sales touches.

    Parameters
    ----------
    result : AttributionResult
    sales_channels : iterable of str
        The channels that are sales touches (the aggregated layout has no per-touch marker);
        every other channel counts as marketing. Unknown names are an error. For paths built
        by :func:`alignment.journeys.build_journeys` (mixed channels split) pass
        :attr:`JourneyAttribution.sales_channels`: the split is then exact per touch.
    alpha : float, default 0.05
        For the ``low``/``high`` interval columns, present when ``result`` has draws.

    Returns
    -------
    pd.DataFrame
        Rows ``marketing`` and ``sales`` (index ``team``): conversions[, value], share[, low,
        high].
    """
    sales = set(sales_channels)
    unknown = sorted(sales.difference(result.credit.index))
    if unknown:
        raise ValueError(f"sales_channels: unknown channels {', '.join(unknown)}; "
                         f"known: {', '.join(map(str, result.credit.index))}")
    team = pd.Index(["sales" if c in sales else "marketing" for c in result.credit.index])
    order = pd.Index(["marketing", "sales"], name="team")
    frame = pd.DataFrame({"conversions": result.credit.groupby(team.to_numpy()).sum()})
    if result.value_credit is not None:
        frame["value"] = result.value_credit.groupby(team.to_numpy()).sum()
    frame = frame.reindex(order, fill_value=0.0)
    total = frame["conversions"].sum()
    frame["share"] = frame["conversions"] / total if total else np.nan
    if result.draws is not None:
        summed = result.draws.T.groupby(team.to_numpy()).sum().T.reindex(columns=order,
                                                                         fill_value=0.0)
        q = summed.quantile([alpha / 2, 1 - alpha / 2]).T
        frame["low"], frame["high"] = q.iloc[:, 0], q.iloc[:, 1]
    return frame


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------


def _as_paths(paths: Paths | pd.DataFrame) -> Paths:
    if isinstance(paths, Paths):
        return paths
    if isinstance(paths, pd.DataFrame):
        return parse_paths(paths)
    raise TypeError(f"paths must be Paths or a DataFrame, got {type(paths).__name__}")


def _check_model(model: str) -> str:
    name = str(getattr(model, "value", model))
    if name not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {name!r}")
    return name


def _prepare_options(options: dict[str, object], seed: int) -> dict[str, object]:
    allowed = {"half_life_steps", "shapley_method", "shapley_game", "n_permutations"}
    unknown = set(options).difference(allowed)
    if unknown:
        raise TypeError(f"unknown options: {', '.join(sorted(unknown))}")
    return {**options, "seed": seed}


def _prepare(
    paths: Paths,
    model: str,
    order: int = 1,
    half_life_steps: float = 1.0,
    shapley_method: str = "auto",
    n_permutations: int = 2000,
    seed: int = 0,
    shapley_game: str = "conversion_rate",
) -> _Evaluator:
    """Encode what does not depend on the counts once; return the model as a function of them."""
    if model == "markov":
        return _prepare_markov(paths, order)
    if model == "shapley":
        return _prepare_shapley(paths, shapley_method, n_permutations, seed, shapley_game)
    return _prepare_rule(paths, model, half_life_steps)


def _result(
    paths: Paths,
    model: str,
    order: int,
    credit: np.ndarray,
    value_credit: np.ndarray | None,
    extras: dict[str, np.ndarray],
) -> AttributionResult:
    index = paths.channels

    def series(values: np.ndarray | None, name: str) -> pd.Series | None:
        return None if values is None else pd.Series(values, index=index, name=name)

    return AttributionResult(
        credit=pd.Series(credit, index=index, name="conversions"),
        value_credit=series(value_credit, "value"),
        draws=None,
        model=model,
        order=order if model == "markov" else None,
        n_conversions=float(paths.conversions.sum()),
        removal_effects=series(extras.get("removal_effects"), "removal_effect"),
        approx_error=series(extras.get("approx_error"), "approx_error"),
    )


def _mean_value(paths: Paths) -> np.ndarray | None:
    if paths.value is None:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(paths.conversions > 0, paths.value / paths.conversions, 0.0)
    return mean


# --------------------------------------------------------------------------------------------
# Rule-based models
# --------------------------------------------------------------------------------------------


def touch_weights(
    position: np.ndarray, length: np.ndarray, model: str, half_life_steps: float = 1.0
) -> np.ndarray:
    """Share of a path's credit that each touch gets under a rule-based model.

    Parameters
    ----------
    position : np.ndarray
        0-based position of each touch in its path.
    length : np.ndarray
        Touches in that path (same shape as ``position``).
    model : str
        One of :data:`RULE_MODELS`.
    half_life_steps : float, default 1.0
        ``time_decay`` only.

    Returns
    -------
    np.ndarray
        Weights; they sum to 1 over the touches of every path.

    Examples
    --------
    >>> touch_weights(np.array([0, 1, 2, 3]), np.array([4, 4, 4, 4]), "u_shaped").tolist()
    [0.4, 0.1, 0.1, 0.4]
    """
    pos = np.asarray(position, dtype=np.int64)
    n = np.asarray(length, dtype=np.int64)
    if model == "first_touch":
        return (pos == 0).astype(float)
    if model == "last_touch":
        return (pos == n - 1).astype(float)
    if model == "linear":
        return 1.0 / n
    if model == "time_decay":
        return _time_decay_weights(pos, n, half_life_steps)
    if model in _ANCHORS:
        return _anchor_weights(pos, n, model)
    raise ValueError(f"model must be one of {', '.join(RULE_MODELS)}; got {model!r}")


def _time_decay_weights(pos: np.ndarray, n: np.ndarray, half_life_steps: float) -> np.ndarray:
    if not half_life_steps > 0:
        raise ValueError(f"half_life_steps must be positive, got {half_life_steps}")
    q = 2.0 ** (-1.0 / half_life_steps)  # ratio of a touch's weight to the next one's
    raw = q ** (n - 1 - pos).astype(float)
    total = (1.0 - q**n) / (1.0 - q)  # geometric sum over the path's touches
    return raw / total


def _anchor_positions(n: np.ndarray, model: str) -> list[np.ndarray]:
    """0-based positions of the anchors (first, middles, last) for paths long enough."""
    first, last = np.zeros_like(n), n - 1
    if model == "w_shaped":
        return [first, n // 2, last]
    if model == "full_path":
        lead = np.floor((n - 1) / 3 + 0.5).astype(np.int64)
        opportunity = np.floor(2 * (n - 1) / 3 + 0.5).astype(np.int64)
        return [first, lead, opportunity, last]
    return [first, last]


def _anchor_weights(pos: np.ndarray, n: np.ndarray, model: str) -> np.ndarray:
    anchor_w, rest_w = _ANCHORS[model]
    k = len(anchor_w)
    weights = np.zeros(len(pos), dtype=float)
    is_anchor = np.zeros(len(pos), dtype=bool)
    for at, w in zip(_anchor_positions(n, model), anchor_w, strict=True):
        hit = pos == at
        weights[hit] += w
        is_anchor |= hit
    n_rest = np.maximum(n - k, 1)
    weights = np.where(is_anchor, weights, rest_w / n_rest)
    exact = n == k  # no touch outside the anchors: renormalise them
    weights = np.where(exact, weights / sum(anchor_w), weights)
    return np.where(n < k, 1.0 / n, weights)


def _prepare_rule(paths: Paths, model: str, half_life_steps: float) -> _Evaluator:
    owner = paths.path_of_token
    weights = touch_weights(paths.position, paths.lengths[owner], model, half_life_steps)
    codes, n_channels = paths.tokens, len(paths.channels)

    def evaluate(
        conv: np.ndarray, nulls: np.ndarray, value: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
        credit = np.bincount(codes, weights=weights * conv[owner], minlength=n_channels)
        value_credit = None
        if value is not None:
            value_credit = np.bincount(codes, weights=weights * value[owner],
                                       minlength=n_channels)
        return credit, value_credit, {}

    return evaluate


# --------------------------------------------------------------------------------------------
# Markov chains of order k
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _MarkovStructure:
    """What a Markov fit needs that does not depend on the counts."""

    n_states: int
    contains: np.ndarray  # (n_states, n_channels) bool: state holds the channel
    edge_from: np.ndarray  # transient -> transient transitions (no self-loops)
    edge_to: np.ndarray
    edge_path: sp.csr_matrix  # (n_edges, n_paths): how often each path makes each transition
    first_state: np.ndarray  # per path: state entered from (start)
    last_state: np.ndarray  # per path: state left for (conversion)/(null)


def _prepare_markov(paths: Paths, order: int) -> _Evaluator:
    if not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"order must be a positive integer, got {order!r}")
    structure = _markov_structure(paths, int(order))
    log.debug("markov order %d: %d states, %d transitions", order, structure.n_states,
              len(structure.edge_from))
    n_channels = len(paths.channels)

    def evaluate(
        conv: np.ndarray, nulls: np.ndarray, value: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
        removal, value_removal = _removal_effects(structure, conv, nulls, value, n_channels)
        credit = _normalise(removal, conv.sum())
        value_credit = None if value is None else _normalise(value_removal, value.sum())
        return credit, value_credit, {"removal_effects": removal}

    return evaluate


def _markov_structure(paths: Paths, order: int) -> _MarkovStructure:
    """States (last k channels) of every touch, and the transitions between them."""
    owner, pos, lengths = paths.path_of_token, paths.position, paths.lengths
    history = _histories(paths.tokens, pos, order)  # (n_tokens, order), -1 = before the path
    keep = pos >= np.minimum(order, lengths[owner]) - 1  # first state: min(k, L) channels
    history, owner = history[keep], owner[keep]
    state = _state_ids(history, len(paths.channels))
    n_states = int(state.max()) + 1 if len(state) else 0
    contains = _state_channels(history, state, n_states, len(paths.channels))
    same_path = owner[1:] == owner[:-1]
    step = same_path & (state[1:] != state[:-1])  # drop self-loops: absorption unchanged
    edge_key = state[:-1][step] * max(n_states, 1) + state[1:][step]
    keys, edge_index = np.unique(edge_key, return_inverse=True)
    edge_path = sp.csr_matrix(
        (np.ones(len(edge_index)), (edge_index.ravel(), owner[:-1][step])),
        shape=(len(keys), paths.n_paths),
    )
    starts = np.flatnonzero(np.r_[True, ~same_path])
    ends = np.flatnonzero(np.r_[~same_path, True])
    return _MarkovStructure(
        n_states=n_states,
        contains=contains,
        edge_from=keys // max(n_states, 1),
        edge_to=keys % max(n_states, 1),
        edge_path=edge_path,
        first_state=state[starts],
        last_state=state[ends],
    )


def _histories(tokens: np.ndarray, pos: np.ndarray, order: int) -> np.ndarray:
    """Row t: channels of touches t-k+1..t (oldest first), -1 where before the path's start."""
    out = np.full((len(tokens), order), -1, dtype=np.int64)
    for lag in range(order):
        ok = pos >= lag
        shifted = np.roll(tokens, lag)
        out[ok, order - 1 - lag] = shifted[ok]
    return out


def _state_ids(history: np.ndarray, n_channels: int) -> np.ndarray:
    """Number the distinct rows of ``history`` (through one integer key when it fits)."""
    base, order = n_channels + 1, history.shape[1]
    if order * math.log2(base) < 62:
        key = np.zeros(len(history), dtype=np.int64)
        for col in range(order):
            key = key * base + (history[:, col] + 1)
        _, state = np.unique(key, return_inverse=True)
    else:
        _, state = np.unique(history, axis=0, return_inverse=True)
    return state.ravel()


def _state_channels(
    history: np.ndarray, state: np.ndarray, n_states: int, n_channels: int
) -> np.ndarray:
    contains = np.zeros((n_states, n_channels), dtype=bool)
    for col in range(history.shape[1]):
        ok = history[:, col] >= 0
        contains[state[ok], history[ok, col]] = True
    return contains


def _removal_effects(
    s: _MarkovStructure,
    conv: np.ndarray,
    nulls: np.ndarray,
    value: np.ndarray | None,
    n_channels: int,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Exact removal effects for conversions (and value) of the chain fitted to these counts."""
    journeys = conv + nulls
    edge_count = s.edge_path @ journeys
    n = s.n_states
    out = np.bincount(s.edge_from, weights=edge_count, minlength=n).astype(float)
    out += np.bincount(s.last_state, weights=journeys, minlength=n)  # to (conversion)/(null)
    rhs_cols = [np.bincount(s.last_state, weights=conv, minlength=n)]
    if value is not None:
        rhs_cols.append(np.bincount(s.last_state, weights=value, minlength=n))
    entered = np.bincount(s.first_state, weights=journeys, minlength=n)
    live = out > 0  # states no resampled journey visits drop out
    with np.errstate(invalid="ignore", divide="ignore"):
        inv_out = np.where(live, 1.0 / out, 0.0)
    q = sp.csr_matrix((edge_count * inv_out[s.edge_from], (s.edge_from, s.edge_to)),
                      shape=(n, n))
    a = (sp.identity(n, format="csr") - q).tocsc()
    b = np.column_stack(rhs_cols) * inv_out[:, None]
    p0 = entered / journeys.sum() if journeys.sum() > 0 else entered
    steps = _expected_steps_bound(a[np.flatnonzero(live)][:, np.flatnonzero(live)].tocsc())
    base = _absorb(a, b, p0, live, steps)
    removal = np.zeros(n_channels)
    value_removal = None if value is None else np.zeros(n_channels)
    for c in range(n_channels):
        keep = live & ~s.contains[:, c]
        without = _absorb(a, b, p0, keep, steps)
        removal[c] = _relative_drop(base[0], without[0])
        if value_removal is not None:
            value_removal[c] = _relative_drop(base[1], without[1])
    return removal, value_removal


def _absorb(
    a: sp.csc_matrix, b: np.ndarray, p0: np.ndarray, keep: np.ndarray, steps_bound: float
) -> np.ndarray:
    """Absorption reward from (start) when only the ``keep`` states remain (others: null)."""
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        return np.zeros(b.shape[1])
    sub = a[idx][:, idx].tocsc()
    x = _solve_transient(sub, np.ascontiguousarray(b[idx]), steps_bound)
    return p0[idx] @ x


def _solve_transient(a: sp.csc_matrix, b: np.ndarray, steps_bound: float) -> np.ndarray:
    """Solve ``(I - Q) x = b``: sparse LU, or for large chains a checked fixed-point iteration.

    For more than :data:`DIRECT_MAX_STATES` states the LU factors of a higher-order chain fill
    in badly (20,700 states of an order-4 chain on 12 channels: 26-39 million non-zeros, 6-25 s
    per factorisation), so ``x <- b + Q x`` (the Neumann series) is iterated instead until the
    a-posteriori bound ``max|x - x*| <= steps_bound * max|b - (I - Q) x|`` falls below
    :data:`ITERATIVE_REL_TOL` times ``max|x|``. ``steps_bound`` bounds the row sums of
    ``(I - Q)^-1``, the expected number of steps to absorption (see
    :func:`_expected_steps_bound`). Without convergence it falls back to LU.
    """
    if a.shape[0] <= DIRECT_MAX_STATES or not np.isfinite(steps_bound):
        return splu(a).solve(b)
    q = (sp.identity(a.shape[0], format="csr") - a.tocsr()).tocsr()
    x = b.copy()
    for _ in range(MAX_ITERATIONS):
        nxt = b + q @ x
        residual = np.abs(nxt - x).max(axis=0)  # = |b - (I - Q) x| before the update
        x = nxt
        scale = np.maximum(np.abs(x).max(axis=0), np.finfo(float).tiny)
        if np.all(steps_bound * residual <= ITERATIVE_REL_TOL * scale):
            return x
    log.warning("fixed-point iteration did not reach the error bound; sparse LU on %d states",
                a.shape[0])
    return splu(a).solve(b)


def _expected_steps_bound(a: sp.csc_matrix) -> float:
    """Upper bound of the expected steps to absorption from any state, ``max (I - Q)^-1 1``.

    With ``t_m = sum of Q^i 1, i < m`` the residual is ``1 - (I - Q) t_m = Q^m 1 >= 0``, so
    ``t* = t_m + (I - Q)^-1 Q^m 1 <= t_m + max(t*) max(Q^m 1)``, hence
    ``max(t*) <= max(t_m) / (1 - max(Q^m 1))`` once ``max(Q^m 1) < 1``. Returns inf when the
    iteration does not get there (then LU is used).
    """
    n = a.shape[0]
    if n <= DIRECT_MAX_STATES:
        return math.inf
    q = (sp.identity(n, format="csr") - a.tocsr()).tocsr()
    t, power = np.zeros(n), np.ones(n)
    for _ in range(MAX_ITERATIONS):
        t += power
        power = q @ power
        tail = power.max()
        if tail <= 0.5:
            return float(t.max() / (1.0 - tail))
    return math.inf


def _relative_drop(base: float, without: float) -> float:
    if base <= 0:
        return 0.0
    return float(min(max(1.0 - without / base, 0.0), 1.0))


def _normalise(effects: np.ndarray | None, total: float) -> np.ndarray:
    effects = np.asarray(effects, dtype=float)
    s = effects.sum()
    if s <= 0:
        return np.zeros_like(effects)
    return effects / s * total


# --------------------------------------------------------------------------------------------
# Shapley values
# --------------------------------------------------------------------------------------------


def _prepare_shapley(
    paths: Paths, method: str, n_permutations: int, seed: int,
    game: str = "conversion_rate",
) -> _Evaluator:
    n_channels = len(paths.channels)
    if method not in ("auto", "exact", "sample"):
        raise ValueError(f"shapley_method must be 'auto', 'exact' or 'sample', got {method!r}")
    if game not in SHAPLEY_GAMES:
        raise ValueError(f"shapley_game must be one of {', '.join(SHAPLEY_GAMES)}, got {game!r}")
    if method == "exact" and n_channels > EXACT_SHAPLEY_MAX_CHANNELS:
        raise ValueError(f"shapley_method='exact' handles at most {EXACT_SHAPLEY_MAX_CHANNELS} "
                         f"channels, the data have {n_channels}; use 'sample'")
    if method == "sample" and n_permutations < 2:
        raise ValueError(f"n_permutations must be at least 2, got {n_permutations}")
    coalition_of_path, members, member_offsets, masks = _coalitions(paths)
    if game == "conversion_rate":
        return _prepare_rate_shapley(paths, method, n_permutations, seed, coalition_of_path,
                                     members, member_offsets, masks)
    n_coalitions = len(member_offsets) - 1
    if method == "auto":  # exact for any number of channels, in one pass over the coalitions
        solve = _unanimity_solver(members, member_offsets, n_channels)
    elif method == "exact":
        solve = _exact_solver(masks, n_channels)
    else:
        solve = _sampling_solver(members, member_offsets, n_channels, n_permutations, seed)

    def evaluate(
        conv: np.ndarray, nulls: np.ndarray, value: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
        worth = [np.bincount(coalition_of_path, weights=conv, minlength=n_coalitions)]
        if value is not None:
            worth.append(np.bincount(coalition_of_path, weights=value, minlength=n_coalitions))
        phi, error = solve(np.column_stack(worth))
        extras = {} if error is None else {"approx_error": error}
        return phi[:, 0], (phi[:, 1] if value is not None else None), extras

    return evaluate


def _prepare_rate_shapley(
    paths: Paths,
    method: str,
    n_permutations: int,
    seed: int,
    coalition_of_path: np.ndarray,
    members: np.ndarray,
    member_offsets: np.ndarray,
    masks: np.ndarray | None,
) -> _Evaluator:
    """The conversion-rate game: each converting channel set C splits its conversions (and
    value) among its channels in proportion to their Shapley values in the game on C's
    channels whose worths are the conversion rates r(T) of the observed sets T ⊆ C.

    With ``s(T) = sum over converting C ⊇ T of conversions(C) / v(C)`` and
    ``v(C) = sum over T ⊆ C of r(T)``, channel i gets ``sum over T ∋ i of r(T) a_i(T) s(T)``,
    where ``a_i(T)`` is the fraction of T's worth that goes to i: ``1/|T|`` exactly
    (unanimity games), or the fraction of sampled orders in which i is T's last member.
    """
    n_channels = len(paths.channels)
    n_coalitions = len(member_offsets) - 1
    sizes = np.diff(member_offsets)
    owner = np.repeat(np.arange(n_coalitions), sizes)
    # a coalition without observed conversions draws none in a bootstrap replicate either
    observed = np.bincount(coalition_of_path, weights=paths.conversions, minlength=n_coalitions)
    targets = np.flatnonzero(observed > 0)
    pair_c, pair_t = _subset_pairs(members, member_offsets, masks, targets)

    def rates_of(conv: np.ndarray, nulls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        won = np.bincount(coalition_of_path, weights=conv, minlength=n_coalitions)
        seen = won + np.bincount(coalition_of_path, weights=nulls, minlength=n_coalitions)
        rate = np.divide(won, seen, out=np.zeros(n_coalitions), where=seen > 0)
        return won, rate

    def per_unit_worth(amount: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.divide(amount, v, out=np.zeros(n_coalitions), where=v > 0)

    if method == "exact":
        return _rate_shapley_by_enumeration(masks, members, member_offsets, targets, n_channels,
                                            coalition_of_path, rates_of)
    if method == "sample":
        fraction = _last_member_fraction(members, member_offsets, n_channels, n_permutations,
                                         seed)
    else:
        fraction = 1.0 / sizes[owner] if len(owner) else np.zeros(0)
    half_width = math.sqrt(math.log(2 / 0.05) / (2 * n_permutations))

    def evaluate(
        conv: np.ndarray, nulls: np.ndarray, value: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
        won, rate = rates_of(conv, nulls)
        v = np.bincount(pair_c, weights=rate[pair_t], minlength=n_coalitions)  # v(C)

        def credit_of(amount: np.ndarray) -> np.ndarray:
            s = np.bincount(pair_t, weights=per_unit_worth(amount, v)[pair_c],
                            minlength=n_coalitions)
            return np.bincount(members, weights=(rate * s)[owner] * fraction,
                               minlength=n_channels)

        credit = credit_of(won)
        value_credit = None
        if value is not None:
            value_credit = credit_of(np.bincount(coalition_of_path, weights=value,
                                                 minlength=n_coalitions))
        extras: dict[str, np.ndarray] = {}
        if method == "sample":  # each sampled order's credit of i lies in [0, range_i]
            s = np.bincount(pair_t, weights=per_unit_worth(won, v)[pair_c],
                            minlength=n_coalitions)
            reach = np.bincount(members, weights=(rate * s)[owner], minlength=n_channels)
            extras["approx_error"] = reach * half_width
        return credit, value_credit, extras

    return evaluate


def _subset_pairs(
    members: np.ndarray, member_offsets: np.ndarray, masks: np.ndarray | None,
    targets: np.ndarray, max_cells: int = 4_000_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (C, T) of coalitions with C in ``targets`` and T ⊆ C, as two index arrays.

    Bitmask comparison for at most 62 channels; otherwise a sparse product of the coalitions'
    channel-incidence matrix (T ⊆ C when they share |T| channels). Chunked over ``targets``.
    """
    n_coalitions = len(member_offsets) - 1
    chunk = max(1, max_cells // max(n_coalitions, 1))
    found_c, found_t = [], []
    if masks is not None:
        for start in range(0, len(targets), chunk):
            part = targets[start:start + chunk]
            c, t = np.nonzero((masks[None, :] & ~masks[part][:, None]) == 0)
            found_c.append(part[c])
            found_t.append(t)
    else:
        sizes = np.diff(member_offsets)
        owner = np.repeat(np.arange(n_coalitions), sizes)
        n_channels = int(members.max()) + 1 if len(members) else 0
        incidence = sp.csr_matrix((np.ones(len(members)), (owner, members)),
                                  shape=(n_coalitions, n_channels))
        for start in range(0, len(targets), chunk):
            part = targets[start:start + chunk]
            shared = (incidence[part] @ incidence.T).tocoo()
            keep = shared.data == sizes[shared.col]
            found_c.append(part[shared.row[keep]])
            found_t.append(shared.col[keep])
    if not found_c:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(found_c).astype(np.int64), np.concatenate(found_t).astype(np.int64)


def _last_member_fraction(
    members: np.ndarray, member_offsets: np.ndarray, n_channels: int, n_permutations: int,
    seed: int, max_cells: int = 5_000_000,
) -> np.ndarray:
    """For each member entry (T, i): the fraction of random channel orders in which i comes
    last among T's members (Castro et al. 2009); its expectation is 1/|T|."""
    n_coalitions = len(member_offsets) - 1
    if len(members) == 0:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    counts = np.zeros(n_coalitions * n_channels)
    chunk = int(max(1, min(256, max_cells // len(members))))
    done = 0
    while done < n_permutations:
        m = min(chunk, n_permutations - done)
        ranks = rng.permuted(np.tile(np.arange(n_channels), (m, 1)), axis=1)
        key = ranks[:, members] * n_channels + members  # the largest rank wins
        winner = np.maximum.reduceat(key, member_offsets[:-1], axis=1) % n_channels
        cell = np.arange(n_coalitions) * n_channels + winner  # (m, n_coalitions)
        counts += np.bincount(cell.ravel(), minlength=n_coalitions * n_channels)
        done += m
    owner = np.repeat(np.arange(n_coalitions), np.diff(member_offsets))
    return counts[owner * n_channels + members] / n_permutations


def _rate_shapley_by_enumeration(
    masks: np.ndarray | None,
    members: np.ndarray,
    member_offsets: np.ndarray,
    targets: np.ndarray,
    n_channels: int,
    coalition_of_path: np.ndarray,
    rates_of: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
) -> _Evaluator:
    """Cross-check of the conversion-rate game: for each converting set C, the Shapley
    formula summed over all 2^|C| coalitions of its channels, with the coalition values
    ``v(S) = sum of r(T), T ⊆ S`` from a zeta transform over all 2^n channel sets."""
    assert masks is not None
    n_coalitions = len(member_offsets) - 1
    size = 1 << n_channels
    by_size: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def layout(k: int) -> tuple[np.ndarray, np.ndarray]:
        """Local subsets of k players as 0/1 rows, and the Shapley weights: phi = W @ v."""
        if k not in by_size:
            has = (np.arange(1 << k)[:, None] >> np.arange(k)) & 1  # (2^k, k)
            popcount = has.sum(axis=1)
            weight = np.empty((k, 1 << k))
            for j in range(k):
                inside = has[:, j] == 1
                without = popcount - inside  # size of the coalition without player j
                coef = np.array([1.0 / (k * math.comb(k - 1, int(x))) for x in range(k)])
                weight[j] = np.where(inside, 1.0, -1.0) * coef[without]
            by_size[k] = (has, weight)
        return by_size[k]

    local = []  # per converting C: (C, its channels, masks of its subsets)
    for c in targets:
        players = members[member_offsets[c]:member_offsets[c + 1]]
        has, _ = layout(len(players))
        local.append((c, players, has @ (np.int64(1) << players.astype(np.int64))))

    def evaluate(
        conv: np.ndarray, nulls: np.ndarray, value: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
        won, rate = rates_of(conv, nulls)
        v = np.zeros(size)
        np.add.at(v, masks, rate)
        for bit in range(n_channels):  # zeta transform: v(S) = sum of r(T), T subset of S
            view = v.reshape(-1, 2, 1 << bit)
            view[:, 1] += view[:, 0]
        amounts = [won]
        if value is not None:
            amounts.append(np.bincount(coalition_of_path, weights=value,
                                       minlength=n_coalitions))
        out = [np.zeros(n_channels) for _ in amounts]
        for c, players, subset_masks in local:
            total = v[masks[c]]
            if total <= 0:
                continue
            phi = layout(len(players))[1] @ v[subset_masks]
            for credit, amount in zip(out, amounts, strict=True):
                credit[players] += amount[c] * phi / total
        return out[0], (out[1] if value is not None else None), {}

    return evaluate


def _coalitions(paths: Paths) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Group paths by their set of channels.

    Returns the coalition of each path, the coalitions' members (CSR: ``members``,
    ``member_offsets``) and, for at most 62 channels, each coalition's bitmask.
    """
    n_channels = len(paths.channels)
    owner = paths.path_of_token
    pair = np.unique(owner * n_channels + paths.tokens)  # distinct (path, channel), sorted
    pair_path, pair_channel = pair // n_channels, pair % n_channels
    counts = np.bincount(pair_path, minlength=paths.n_paths)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    if n_channels <= 62:
        bits = np.left_shift(np.int64(1), pair_channel.astype(np.int64))
        path_key = np.bitwise_or.reduceat(bits, offsets[:-1]) if len(bits) else bits
        keys, first, coalition_of_path = np.unique(path_key, return_index=True,
                                                   return_inverse=True)
        masks: np.ndarray | None = keys
    else:
        text = [pair_channel[offsets[i]:offsets[i + 1]].tobytes() for i in range(paths.n_paths)]
        _, first, coalition_of_path = np.unique(np.array(text, dtype=object), return_index=True,
                                                return_inverse=True)
        masks = None
    member_counts = counts[first]
    member_offsets = np.concatenate([[0], np.cumsum(member_counts)])
    member_index = np.concatenate([np.arange(offsets[p], offsets[p + 1]) for p in first]) \
        if len(first) else np.zeros(0, dtype=np.int64)
    members = pair_channel[member_index]
    return coalition_of_path.ravel(), members, member_offsets, masks


def _unanimity_solver(
    members: np.ndarray, member_offsets: np.ndarray, n_channels: int
) -> Callable[[np.ndarray], tuple[np.ndarray, None]]:
    """Shapley values of the game v(S) = sum of w(T) over T subset of S, in closed form.

    That game is a sum of unanimity games (one per channel set T, worth w(T)), and the
    Shapley value of a unanimity game splits its worth equally among T's members, so
    phi_i = sum over T containing i of w(T) / |T| (Shapley 1953; Zhao et al. 2018's
    "simplified" Shapley). Exact for any number of channels, O(distinct channel sets).
    """
    sizes = np.diff(member_offsets)
    owner = np.repeat(np.arange(len(sizes)), sizes)

    def solve(worth: np.ndarray) -> tuple[np.ndarray, None]:
        per_member = worth[owner] / sizes[owner, None]
        phi = np.zeros((n_channels, worth.shape[1]))
        np.add.at(phi, members, per_member)
        return phi, None

    return solve


def _exact_solver(
    masks: np.ndarray | None, n_channels: int
) -> Callable[[np.ndarray], tuple[np.ndarray, None]]:
    """Shapley values by enumerating all 2^n coalitions, vectorised over bitmasks."""
    assert masks is not None
    size = 1 << n_channels
    popcount = np.zeros(size, dtype=np.int64)
    for bit in range(n_channels):
        popcount += (np.arange(size) >> bit) & 1
    # weight of a coalition S without i in i's Shapley value: |S|! (n - |S| - 1)! / n!
    coef = np.array([1.0 / (n_channels * math.comb(n_channels - 1, s))
                     for s in range(n_channels)]) if n_channels else np.zeros(0)

    def solve(worth: np.ndarray) -> tuple[np.ndarray, None]:
        v = np.zeros((size, worth.shape[1]))
        np.add.at(v, masks, worth)  # w(T): conversions of paths whose channel set is T
        for bit in range(n_channels):  # zeta transform: v(S) = sum of w(T), T subset of S
            view = v.reshape(-1, 2, 1 << bit, worth.shape[1])
            view[:, 1] += view[:, 0]
        phi = np.zeros((n_channels, worth.shape[1]))
        for bit in range(n_channels):
            view = v.reshape(-1, 2, 1 << bit, worth.shape[1])
            without = popcount.reshape(-1, 2, 1 << bit)[:, 0]
            gain = view[:, 1] - view[:, 0]
            phi[bit] = np.einsum("ab,abk->k", coef[without], gain)
        return phi, None

    return solve


def _sampling_solver(
    members: np.ndarray,
    member_offsets: np.ndarray,
    n_channels: int,
    n_permutations: int,
    seed: int,
    max_cells: int = 5_000_000,
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Shapley values averaged over random channel orders (Castro et al. 2009).

    In the game ``v(S) = sum of w(T), T ⊆ S``, the marginal contribution of channel i in an
    order is the worth of the coalitions whose last member in that order is i, so each order
    hands every coalition's worth to exactly one of its members.
    """
    n_coalitions = len(member_offsets) - 1
    coalition_of_member = np.repeat(np.arange(n_coalitions), np.diff(member_offsets))
    containing = np.zeros((n_channels, n_coalitions))
    containing[members, coalition_of_member] = 1.0
    chunk = int(max(1, min(256, max_cells // max(len(members), 1))))  # bounds memory

    def last_members(ranks: np.ndarray) -> np.ndarray:
        key = ranks[:, members] * n_channels + members  # the largest rank wins
        if len(members) == 0:
            return np.zeros((len(ranks), 0), dtype=np.int64)
        return np.maximum.reduceat(key, member_offsets[:-1], axis=1) % n_channels

    def solve(worth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        total = np.zeros((n_channels, worth.shape[1]))
        done = 0
        while done < n_permutations:
            m = min(chunk, n_permutations - done)
            ranks = rng.permuted(np.tile(np.arange(n_channels), (m, 1)), axis=1)
            winner = last_members(ranks)  # (m, n_coalitions)
            rows = np.repeat(np.arange(m), n_coalitions) * n_channels + winner.ravel()
            for k in range(worth.shape[1]):
                gain = np.bincount(rows, weights=np.tile(worth[:, k], m),
                                   minlength=m * n_channels).reshape(m, n_channels)
                total[:, k] += gain.sum(axis=0)
            done += m
        phi = total / n_permutations
        bound = (containing @ worth[:, 0]) * math.sqrt(math.log(2 / 0.05) / (2 * n_permutations))
        return phi, bound

    return solve


# --------------------------------------------------------------------------------------------
# One quarter's journeys: every model side by side, sales vs marketing, revenue, account view
# --------------------------------------------------------------------------------------------

#: display order of the models in the report's tables (rule-based first, data-driven last)
REPORT_MODELS: tuple[str, ...] = (
    "first_touch",
    "last_touch",
    "linear",
    "time_decay",
    "u_shaped",
    "w_shaped",
    "full_path",
    "j_shaped",
    "inverse_j",
    "markov",
    "shapley",
)
#: models whose credit depends on the non-converting journeys too (Markov through its transition
#: probabilities, Shapley through the conversion rates of its default game); they get bootstrap
#: intervals
DATA_DRIVEN_MODELS: tuple[str, ...] = ("markov", "shapley")


@dataclass(frozen=True, slots=True, eq=False)
class JourneyAttribution:
    """Every requested model's credit for one window's journeys, plus what a reader needs.

    Made by :func:`attribute_journeys`. Each model's :class:`AttributionResult` credits the
    same converting journeys (the ones with at least one touch in their lookback window).

    Attributes
    ----------
    results : dict of str to AttributionResult
        One result per model, in :data:`REPORT_MODELS` order. ``time_decay`` uses the touches'
        real ages in days (:func:`attribute_time_decay_by_age`); Markov and Shapley carry
        bootstrap draws when ``n_boot`` was at least 2.
    paths : Paths
        The aggregated paths the models ran on.
    channels : pd.DataFrame
        ``channel, base_channel, n_touches, n_sales_touches, is_sales_channel`` over the
        journeys' touches, one row per channel label of the paths
        (:func:`alignment.journeys.summarise_channels`): with ``split_mixed_channels`` the
        sales touches of a channel that also has marketing touches are the label
        ``"<channel> (sales)"``.
    n_converting, n_null, n_converting_without_touch : int
        Converting journeys with a path, non-converting journeys, and conversions in the
        window with no touch in their lookback window (credited to no channel).
    unit : str
        ``person`` or ``account``.
    start_at, end_at : datetime
        The window, UTC, end excluded.
    conversion_event : str
        ``SQL``, ``Opportunity`` or ``won``.
    lookback_days : int
        Touches older than this before the journey's reference time are not in its path.
    half_life_days : float
        Half-life of ``time_decay``, in days.
    n_boot : int
        Bootstrap replicates of the data-driven models (0: point estimates only).
    """

    results: dict[str, AttributionResult]
    paths: Paths
    channels: pd.DataFrame
    n_converting: int
    n_null: int
    n_converting_without_touch: int
    unit: str
    start_at: datetime
    end_at: datetime
    conversion_event: str
    lookback_days: int
    half_life_days: float
    n_boot: int = 0

    @property
    def models(self) -> tuple[str, ...]:
        """The models run, in display order."""
        return tuple(self.results)

    @property
    def sales_channels(self) -> tuple[str, ...]:
        """Channel labels most of whose touches are sales touches (``is_sales_touch``).

        With ``split_mixed_channels`` (the default) every label is all one team's, so these
        are exactly the labels of the sales touches, e.g. ``sales_call`` and
        ``email (sales)``.
        """
        flagged = self.channels.loc[self.channels["is_sales_channel"].astype(bool), "channel"]
        return tuple(str(c) for c in flagged)

    @property
    def mixed_channels(self) -> tuple[str, ...]:
        """Channel labels holding both sales and marketing touches (none when the journeys were
        built with ``split_mixed_channels``); their minority touches are credited to the
        other team by :meth:`sales_split`."""
        ch = self.channels
        n_sales = ch["n_sales_touches"].astype(int)
        mixed = ch.loc[(n_sales > 0) & (n_sales < ch["n_touches"].astype(int)), "channel"]
        return tuple(str(c) for c in mixed)

    @property
    def split_channels(self) -> tuple[str, ...]:
        """Channels whose sales touches were given a label of their own (``email`` when
        ``email (sales)`` is a label)."""
        ch = self.channels
        if "base_channel" not in ch.columns:
            return ()
        base = ch["base_channel"].astype(str).str.replace(self.paths.sep, "_", regex=False)
        split = base[ch["is_sales_channel"].astype(bool) & (base != ch["channel"].astype(str))]
        return tuple(sorted(set(split)))

    @property
    def has_value(self) -> bool:
        """True when some revenue could be linked to the converting journeys."""
        return self.paths.value is not None and float(self.paths.value.sum()) > 0

    @property
    def total_value(self) -> float:
        """Revenue of the converting journeys, in the report currency (0 without revenue)."""
        return float(self.paths.value.sum()) if self.paths.value is not None else 0.0

    def counts(self) -> pd.DataFrame:
        """The journeys behind the credit: ``journeys, count`` (one row per kind).

        Rows: converting journeys with a path (credited), non-converting journeys, conversions
        with no touch in their lookback window (credited to nobody), distinct paths.
        """
        rows = [
            ("converting journeys (credited)", self.n_converting),
            ("non-converting journeys", self.n_null),
            ("conversions without a touch in the lookback window",
             self.n_converting_without_touch),
            ("distinct paths", self.paths.n_paths),
        ]
        return pd.DataFrame(rows, columns=["journeys", "count"]).astype({"count": "int64"})

    def credit_table(self, kind: Literal["conversions", "share", "value"] = "conversions",
                     models: Sequence[str] | None = None) -> pd.DataFrame:
        """Channels × models: ``channel`` then one column per model.

        Parameters
        ----------
        kind : {"conversions", "share", "value"}, default "conversions"
            Credited conversions, fraction of the credited conversions, or credited revenue
            (report currency; needs :attr:`has_value`).
        models : sequence of str, optional
            Subset of :attr:`models` (default all), in this order.

        Returns
        -------
        pd.DataFrame
            One row per channel, ordered by the last model's credit, largest first (the
            data-driven models come last in :data:`REPORT_MODELS`).
        """
        chosen = self._chosen(models)
        columns = {}
        for name in chosen:
            result = self.results[name]
            if kind == "conversions":
                columns[name] = result.credit
            elif kind == "share":
                columns[name] = result.share
            elif kind == "value":
                if result.value_credit is None:
                    raise ValueError("kind='value' needs revenue on the converting journeys")
                columns[name] = result.value_credit
            else:
                raise ValueError(f"kind must be 'conversions', 'share' or 'value', got {kind!r}")
        wide = pd.DataFrame(columns, index=self.paths.channels).fillna(0.0)
        if chosen:
            wide = wide.sort_values(chosen[-1], ascending=False, kind="stable")
        wide.index.name = "channel"
        return wide.reset_index().astype({"channel": object})

    def summary(self, alpha: float = 0.05, models: Sequence[str] | None = None) -> pd.DataFrame:
        """Tidy credit: ``model, channel, conversions, share, share_low, share_high`` [, value].

        ``share_low``/``share_high`` are the percentile bootstrap interval of the share
        (``1 - alpha`` coverage) for results with draws, NaN otherwise. This is the frame
        :func:`alignment.plots.plot_credit_by_channel` draws.
        """
        frames = []
        for name in self._chosen(models):
            result = self.results[name]
            frame = pd.DataFrame({
                "model": name,
                "channel": result.credit.index.astype(object),
                "conversions": result.credit.to_numpy(),
                "share": result.share.to_numpy(),
                "share_low": np.nan,
                "share_high": np.nan,
            })
            if result.draws is not None:
                ci = result.conf_int(alpha, kind="share")
                frame["share_low"] = ci["low"].to_numpy()
                frame["share_high"] = ci["high"].to_numpy()
            if result.value_credit is not None:
                frame["value"] = result.value_credit.to_numpy()
            frames.append(frame)
        if not frames:
            return pd.DataFrame(columns=["model", "channel", "conversions", "share",
                                         "share_low", "share_high"])
        return pd.concat(frames, ignore_index=True)

    def share_intervals(self, alpha: float = 0.05,
                        models: Sequence[str] | None = None) -> pd.DataFrame:
        """Each data-driven model's share per channel with its bootstrap interval, side by side.

        Parameters
        ----------
        alpha : float, default 0.05
            1 - coverage of the percentile interval.
        models : sequence of str, optional
            Default: the models of :data:`DATA_DRIVEN_MODELS` that were run with bootstrap
            draws. A model without draws gets NaN bounds.

        Returns
        -------
        pd.DataFrame
            ``channel``, then per model ``<model>_share``, ``<model>_share_low`` and
            ``<model>_share_high`` (fractions of the credited conversions), ordered by the
            first model's share, largest first. No rows when no model qualifies.
            :func:`format_share_intervals` turns it into one text cell per model.
        """
        if models is None:
            models = [m for m in DATA_DRIVEN_MODELS
                      if m in self.results and self.results[m].draws is not None]
        chosen = self._chosen(models)
        if not chosen:
            return pd.DataFrame(columns=["channel"])
        out = pd.DataFrame(index=pd.Index(self.paths.channels.astype(object), name="channel"))
        for name in chosen:
            tidy = self.summary(alpha, [name]).set_index("channel")
            out[f"{name}_share"] = tidy["share"].reindex(out.index)
            out[f"{name}_share_low"] = tidy["share_low"].reindex(out.index)
            out[f"{name}_share_high"] = tidy["share_high"].reindex(out.index)
        out = out.sort_values(f"{chosen[0]}_share", ascending=False, kind="stable")
        return out.reset_index()

    def removal_effects(self, alpha: float = 0.05) -> pd.DataFrame:
        """Markov removal effects: ``channel, removal_effect, conversions, share, share_low,
        share_high``.

        ``removal_effect`` is the fraction of the conversion probability lost when the
        channel is removed from the chain (its states lead to a non-conversion); credit is the
        removal effects scaled to the conversions. ``share_low``/``share_high``: percentile
        bootstrap interval of the share (NaN without draws). Largest removal effect first.
        """
        result = self._require("markov")
        tidy = self.summary(alpha, ["markov"])
        frame = pd.DataFrame({
            "channel": tidy["channel"],
            "removal_effect": result.removal_effects.reindex(tidy["channel"]).to_numpy(),
            "conversions": tidy["conversions"],
            "share": tidy["share"],
            "share_low": tidy["share_low"],
            "share_high": tidy["share_high"],
        })
        return frame.sort_values("removal_effect", ascending=False, ignore_index=True,
                                 kind="stable")

    def revenue_credit(self, models: Sequence[str] = ("last_touch", "linear", "markov",
                                                      "shapley"),
                       alpha: float = 0.05) -> pd.DataFrame:
        """Revenue credited per channel: ``channel``, one column per model (report currency),
        and ``<model>_low``/``<model>_high`` bootstrap intervals for models with draws.

        Models not run are skipped. Empty (no rows) when no revenue is linked to the
        converting journeys (:attr:`has_value` false).
        """
        chosen = [m for m in models if m in self.results]
        if not self.has_value or not chosen:
            return pd.DataFrame(columns=["channel", *chosen])
        wide = self.credit_table("value", chosen)
        for name in chosen:
            result = self.results[name]
            if result.value_draws is not None:
                ci = result.conf_int(alpha, kind="value").reindex(wide["channel"])
                at = wide.columns.get_loc(name) + 1
                wide.insert(at, f"{name}_low", ci["low"].to_numpy())
                wide.insert(at + 1, f"{name}_high", ci["high"].to_numpy())
        return wide

    def sales_split(self, alpha: float = 0.05) -> pd.DataFrame:
        """Share of each model's credit earned by sales touches.

        Returns
        -------
        pd.DataFrame
            One row per model: ``model, marketing_conversions, sales_conversions,
            sales_share`` (fraction of the credited conversions) and ``sales_share_low``,
            ``sales_share_high`` (percentile bootstrap interval for models with draws, else
            NaN).

        Notes
        -----
        The split is a sum over the paths' channel labels (:attr:`sales_channels`), and it is
        exact per touch: with ``split_mixed_channels`` (the default,
        :func:`alignment.journeys.build_journeys`) the sales touches of a channel that
        marketing also uses are a label of their own (``email (sales)``), so every label is
        one team's and every model credits sales' and marketing's touches separately (a
        rep's email closing a journey gets last-touch credit as sales'). Marketing plus
        sales credit is the model's total credit. Only when the journeys were built without
        the split does a mixed channel (:attr:`mixed_channels`) go whole to the team of most
        of its touches. Reference: hand-computed first/last/linear splits and Markov
        removal effects on a journey set with a mixed channel, both ways
        (tests/test_attribution_demo.py, ``test_sales_split_is_exact_per_touch_*``).
        """
        sales = set(self.sales_channels)
        columns = ["model", "marketing_conversions", "sales_conversions", "sales_share",
                   "sales_share_low", "sales_share_high"]
        if self.paths.conversions.sum() == 0:
            return pd.DataFrame(columns=columns)
        rows = []
        for name, result in self.results.items():
            is_sales = result.credit.index.isin(list(sales))
            total = float(result.credit.sum())
            sales_credit = float(result.credit[is_sales].sum())
            low = high = np.nan
            if result.draws is not None:
                totals = result.draws.sum(axis=1)
                shares = (result.draws.loc[:, is_sales].sum(axis=1) / totals.where(totals > 0))
                low, high = shares.quantile([alpha / 2, 1 - alpha / 2]).to_numpy()
            rows.append({
                "model": name,
                "marketing_conversions": total - sales_credit,
                "sales_conversions": sales_credit,
                "sales_share": sales_credit / total if total > 0 else np.nan,
                "sales_share_low": low,
                "sales_share_high": high,
            })
        return pd.DataFrame(rows, columns=columns)

    def describe_sales_split(self) -> str:
        """One plain-text paragraph: which touches count as sales' and under which labels.

        Plain text (no Markdown); escape before display.
        """
        sales = self.sales_channels
        if not sales:
            return ("No touch in these journeys is marked as a sales touch (is_sales_touch), "
                    "so all credit is marketing's.")
        mixed = self.mixed_channels
        if mixed:
            ch = self.channels.set_index("channel")
            teams = [f"{c}: {'sales' if ch.at[c, 'is_sales_channel'] else 'marketing'}"
                     for c in mixed]
            return ("A touch is sales' when the data mark it as a sales touch (is_sales_touch), "
                    "but here the split is by channel, not touch by touch (mixed channels were "
                    f"not split): sales touches are credited under {_join(sales)}; "
                    f"{_join(mixed)}, with touches of both teams, "
                    f"{'goes' if len(mixed) == 1 else 'go'} to the team of most of "
                    f"{'its' if len(mixed) == 1 else 'their'} touches ({'; '.join(teams)}).")
        text = ("A touch is sales' when the data mark it as a sales touch (is_sales_touch), "
                "and its credit counts as sales' touch by touch, whatever its channel: sales "
                f"touches are credited under {_join(sales)}.")
        split = self.split_channels
        if split:
            verb = "has" if len(split) == 1 else "have"
            text += (f" {_join(split)} {verb} touches of both teams, so the sales touches "
                     "there are a channel of their own, marked (sales).")
        return text

    def channel_profile(self) -> pd.DataFrame:
        """Where each channel sits in the journeys, the facts behind the models' disagreement.

        Returns
        -------
        pd.DataFrame
            ``channel, first_touch_share, last_touch_share`` (fraction of converting
            journeys it opens / closes), ``converting_share`` (fraction of converting
            journeys whose path holds it), ``n_journeys`` (journeys, converting or not, whose
            path holds it), ``conversion_rate`` (fraction of those that converted) and
            ``conversion_rate_without`` (fraction of the other journeys that converted).
        """
        p = self.paths
        n_channels = len(p.channels)
        owner = p.path_of_token
        has = np.zeros((p.n_paths, n_channels), dtype=bool)
        has[owner, p.tokens] = True
        journeys = p.conversions + p.nulls
        with_c = journeys @ has
        conv_with = p.conversions @ has
        total_j, total_c = journeys.sum(), p.conversions.sum()
        first = p.tokens[p.offsets[:-1]] if p.n_paths else np.zeros(0, dtype=np.int64)
        last = p.tokens[p.offsets[1:] - 1] if p.n_paths else np.zeros(0, dtype=np.int64)
        opens = np.bincount(first, weights=p.conversions, minlength=n_channels)
        closes = np.bincount(last, weights=p.conversions, minlength=n_channels)
        with np.errstate(invalid="ignore", divide="ignore"):
            frame = pd.DataFrame({
                "channel": p.channels.astype(object),
                "first_touch_share": opens / total_c if total_c else np.nan,
                "last_touch_share": closes / total_c if total_c else np.nan,
                "converting_share": conv_with / total_c if total_c else np.nan,
                "n_journeys": with_c.astype(np.int64),
                "conversion_rate": np.where(with_c > 0, conv_with / with_c, np.nan),
                "conversion_rate_without": np.where(
                    total_j - with_c > 0, (total_c - conv_with) / (total_j - with_c), np.nan
                ),
            })
        return frame

    def distance_to(self, true_share: Mapping[str, float]) -> pd.DataFrame:
        """Total variation distance of each model's shares to known true shares.

        Parameters
        ----------
        true_share : mapping of channel to float
            E.g. the demo's ``ground_truth.json`` ``true_credit_share``.

        Returns
        -------
        pd.DataFrame
            ``model, tvd, n_channels`` sorted by ``tvd`` (best first); see
            :func:`total_variation_distance` (channels present in both, renormalised).
        """
        truth = pd.Series(dict(true_share), dtype=float)
        rows = [
            {"model": name, "tvd": total_variation_distance(result.credit, truth),
             "n_channels": len(result.credit.index.intersection(truth.index))}
            for name, result in self.results.items()
        ]
        return pd.DataFrame(rows).sort_values("tvd", ignore_index=True, kind="stable")

    def _chosen(self, models: Sequence[str] | None) -> list[str]:
        if models is None:
            return list(self.results)
        unknown = [m for m in models if m not in self.results]
        if unknown:
            raise ValueError(f"models not run: {', '.join(unknown)}; run: "
                             f"{', '.join(self.results)}")
        return list(models)

    def _require(self, model: str) -> AttributionResult:
        if model not in self.results:
            raise ValueError(f"model {model!r} was not run; run: {', '.join(self.results)}")
        return self.results[model]


def _join(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    names = [str(n) for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def format_share_intervals(intervals: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """One readable text cell per model: ``"31.2 % (28.4–34.0 %)"``, share then interval.

    Parameters
    ----------
    intervals : pd.DataFrame
        From :meth:`JourneyAttribution.share_intervals`.
    alpha : float, default 0.05
        Only names the coverage in the column headers.

    Returns
    -------
    pd.DataFrame
        ``channel`` and, per model, ``"<Model> share (95 % interval)"``; a missing bound
        shows the share alone.
    """
    coverage = f"{100 * (1 - alpha):g} %"
    out = intervals[["channel"]].copy()
    for column in [c for c in intervals.columns if c.endswith("_share")]:
        name = column.removesuffix("_share")
        cells = []
        for share, low, high in zip(intervals[column], intervals[f"{name}_share_low"],
                                    intervals[f"{name}_share_high"], strict=True):
            text = "–" if pd.isna(share) else f"{100 * share:.1f} %"
            if not (pd.isna(low) or pd.isna(high)):
                text += f" ({100 * low:.1f}–{100 * high:.1f} %)"
            cells.append(text)
        out[f"{_model_label(name)} share ({coverage} interval)"] = cells
    return out


def total_variation_distance(credit: pd.Series, truth: pd.Series) -> float:
    """Total variation distance between two credit distributions over channels.

    Both are restricted to the channels they share and renormalised to sum to one, then
    ``TVD = 0.5 * sum |p_c - q_c|``: 0 when identical, 1 when disjoint; the largest
    amount of credit any set of channels gets too much (or too little).

    Parameters
    ----------
    credit, truth : pd.Series
        Non-negative weights (conversions or shares) indexed by channel.

    Returns
    -------
    float
        NaN when either side has no weight on the shared channels.

    Examples
    --------
    >>> total_variation_distance(pd.Series({"a": 3.0, "b": 1.0, "x": 9.0}),
    ...                          pd.Series({"a": 0.5, "b": 0.5}))
    0.25
    """
    common = credit.index.intersection(truth.index)
    p = credit.reindex(common).astype(float)
    q = truth.reindex(common).astype(float)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    return float(0.5 * (p / p.sum() - q / q.sum()).abs().sum())


def attribute_journeys(
    touchpoints: ir.Table,
    stage_events: ir.Table,
    opportunities: ir.Table,
    people: ir.Table,
    *,
    start_at: datetime,
    end_at: datetime,
    params: AttributionParams,
    unit: Literal["person", "account"] | None = None,
    models: Sequence[str] | None = None,
    opportunity_people: ir.Table | None = None,
    n_boot: int | None = None,
    seed: int = 0,
    con: ibis.BaseBackend | None = None,
) -> JourneyAttribution:
    """Build a window's journeys, aggregate their paths and credit them with every model.

    Parameters
    ----------
    touchpoints, stage_events, opportunities, people : ibis.Table
        Contract tables (from :func:`alignment.store.open_data`).
    start_at, end_at : datetime
        The window (usually a quarter), UTC, ``end_at`` excluded.
    params : AttributionParams
        ``conversion_event``, ``lookback_days``, ``markov_order``, ``shapley_game``,
        ``time_decay_half_life_days``, ``bootstrap_replicates``, ``split_mixed_channels``
        and (default) ``unit`` and ``models``.
    unit : {"person", "account"}, optional
        Overrides ``params.unit``: a person's journey, or an account's (its buying group's
        touches, marketing's and sales', on one path).
    models : sequence of str, optional
        Overrides ``params.models``; any of :data:`MODELS`. Shown in :data:`REPORT_MODELS`
        order.
    opportunity_people : ibis.Table, optional
        Links people to opportunities: without it person journeys carry no revenue.
    n_boot : int, optional
        Bootstrap replicates for Markov and Shapley; default ``params.bootstrap_replicates``;
        below 2: no intervals.
    seed : int, default 0
        Seed of the bootstrap.
    con : ibis backend, optional
        Where to execute; default the tables' own backend.

    Returns
    -------
    JourneyAttribution

    Notes
    -----
    Row-level work (journeys, paths, channel summary, counts) runs as Ibis expressions on the
    backend (:mod:`alignment.journeys`); only the aggregated paths and the touches of
    converting journeys (their ages, for time decay) come back to pandas. ``time_decay``
    weighs a touch by ``2 ** (-days_before / half_life_days)``, its real age before the
    conversion, instead of its step position. Revenue is the value of the converting journeys
    (won opportunities created at or after the conversion, :func:`alignment.journeys.
    conversion_events`); every model credits it in the same proportions as it credits
    conversions on each path, Markov through its value-weighted chain. With
    ``params.split_mixed_channels`` (default) the sales touches of a channel that also has
    marketing touches are the channel ``"<channel> (sales)"`` in every model (more Markov
    states and Shapley players), so :meth:`JourneyAttribution.sales_split` is exact per
    touch.
    """
    from alignment import journeys as jr

    unit = unit or params.unit
    chosen = _report_order(models if models is not None else params.models)
    n_boot = params.bootstrap_replicates if n_boot is None else int(n_boot)
    touches = jr.touches_with_account(touchpoints, people)
    conversions = jr.conversion_events(
        stage_events, opportunities, event=params.conversion_event, unit=unit, people=people,
        opportunity_people=opportunity_people,
    )
    window = dict(start_at=start_at, end_at=end_at, unit=unit, lookback_days=params.lookback_days)
    built = jr.build_journeys(touches, conversions,
                              split_mixed_channels=params.split_mixed_channels, **window)
    path_frame = _execute(jr.aggregate_paths(built), con)
    counts = _execute(jr.count_journeys(touches, conversions, **window), con).iloc[0]
    channels = _execute(jr.summarise_channels(built), con)
    channels = channels.assign(  # as aggregate_paths writes them into the paths
        channel=channels["channel"].astype(str).str.replace(">", "_", regex=False)
    ).astype({"channel": object})
    has_value = float(path_frame["value"].sum()) > 0 if len(path_frame) else False
    paths = parse_paths(path_frame, value_col="value" if has_value else None,
                        channels=sorted(set(channels["channel"])))
    results: dict[str, AttributionResult] = {}
    for name in chosen:
        if name == "time_decay":
            ages = _execute(
                built.filter(built.is_converted).select("unit_id", "channel", "days_before",
                                                        "value"), con)
            results[name] = _time_decay_by_age(ages, paths, params.time_decay_half_life_days,
                                               has_value)
        else:
            results[name] = _attribute_one(paths, name, params.markov_order, n_boot, seed,
                                           shapley_game=params.shapley_game)
    log.info("attributed %d converting and %d null %s journeys with %d models",
             _whole(counts["n_converting"]), _whole(counts["n_null"]), unit, len(results))
    return JourneyAttribution(
        results=results,
        paths=paths,
        channels=channels,
        n_converting=_whole(counts["n_converting"]),
        n_null=_whole(counts["n_null"]),
        n_converting_without_touch=_whole(counts["n_converting_without_touch"]),
        unit=unit,
        start_at=start_at,
        end_at=end_at,
        conversion_event=params.conversion_event,
        lookback_days=params.lookback_days,
        half_life_days=params.time_decay_half_life_days,
        n_boot=n_boot if n_boot >= 2 else 0,
    )


def _whole(value: Any) -> int:
    """A count from SQL: NULL (a sum over no rows) is 0."""
    return 0 if pd.isna(value) else int(value)


def _report_order(models: Iterable[str]) -> list[str]:
    names = [_check_model(m) for m in models]
    return sorted(dict.fromkeys(names), key=REPORT_MODELS.index)


def _execute(expr: Any, con: Any) -> pd.DataFrame:
    """Run an Ibis expression on ``con`` (default: its own backend) and return pandas."""
    frame = con.execute(expr) if con is not None else expr.execute()
    if isinstance(frame, pd.DataFrame):
        return frame
    return frame.to_frame()


def _attribute_one(paths: Paths, model: str, order: int, n_boot: int, seed: int,
                   shapley_game: str = "conversion_rate") -> AttributionResult:
    """One model's credit; data-driven models with bootstrap draws when ``n_boot >= 2``."""
    if paths.n_paths == 0 or paths.conversions.sum() == 0:
        return _empty_result(paths, model, order)
    options = {"shapley_game": shapley_game} if model == "shapley" else {}
    if model in DATA_DRIVEN_MODELS and n_boot >= 2:
        return bootstrap(paths, model, order, n_boot=n_boot, seed=seed, **options)
    return attribute(paths, model, order, **options)


def _empty_result(paths: Paths, model: str, order: int) -> AttributionResult:
    """Zero credit for every channel: no converting journey in the window."""
    zeros = np.zeros(len(paths.channels))
    return _result(paths, model, order, zeros,
                   None if paths.value is None else zeros.copy(),
                   {"removal_effects": zeros.copy()} if model == "markov" else {})


def _time_decay_by_age(ages: pd.DataFrame, paths: Paths, half_life_days: float,
                       has_value: bool) -> AttributionResult:
    """Time-decay credit by age in days, on the same channels as ``paths``."""
    if ages.empty:
        return _empty_result(paths, "time_decay", 1)
    frame = ages.assign(
        channel=ages["channel"].astype(str).str.replace(paths.sep, "_", regex=False),
        conversions=1.0,
    )
    raw = attribute_time_decay_by_age(
        frame, journey_col="unit_id", age_col="days_before",
        value_col="value" if has_value else None, half_life_days=half_life_days,
    )
    credit = raw.credit.reindex(paths.channels, fill_value=0.0).rename("conversions")
    value = None if raw.value_credit is None else raw.value_credit.reindex(
        paths.channels, fill_value=0.0).rename("value")
    return dataclasses.replace(raw, credit=credit, value_credit=value)


def build_account_view(
    account: JourneyAttribution,
    person: JourneyAttribution | None = None,
    models: Sequence[str] = ("markov", "linear"),
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Account-level credit next to the person-level shares.

    Parameters
    ----------
    account : JourneyAttribution
        Run with ``unit="account"``.
    person : JourneyAttribution, optional
        Run with ``unit="person"`` on the same window; adds ``person_<model>_share``.
    models : sequence of str, default ("markov", "linear")
    alpha : float, default 0.05

    Returns
    -------
    pd.DataFrame
        ``channel``, then per model ``<model>`` (credited account conversions),
        ``<model>_share`` and, with draws, ``<model>_share_low``/``_high``; then the person
        shares. Ordered by the first model's account credit.
    """
    chosen = [m for m in models if m in account.results]
    out = account.credit_table("conversions", chosen).set_index("channel")
    if chosen:
        out = out.sort_values(chosen[0], ascending=False, kind="stable")
    for name in chosen:
        part = account.summary(alpha, [name]).set_index("channel")
        out[f"{name}_share"] = part["share"].reindex(out.index)
        if account.results[name].draws is not None:
            out[f"{name}_share_low"] = part["share_low"].reindex(out.index)
            out[f"{name}_share_high"] = part["share_high"].reindex(out.index)
    columns = [c for name in chosen for c in out.columns if c == name or c.startswith(f"{name}_")]
    out = out[columns]
    if person is not None:
        for name in chosen:
            if name in person.results:
                out[f"person_{name}_share"] = person.results[name].share.reindex(out.index)
    return out.reset_index()


def describe_disagreement(result: JourneyAttribution, top: int = 3) -> str:
    """A plain-language paragraph: which channels the models disagree about most, and why.

    The spread of a channel is the largest minus the smallest share any model gives it. For
    each of the ``top`` channels with the largest spread it says which models give it most
    and least credit and the facts behind it: position-based models credit a channel for
    where it sits (it opens or closes converting journeys), data-driven models (Markov,
    Shapley) for the conversions it takes part in, whatever its position. It then names the
    channels that the data-driven models credit most above and most below the first/last-touch
    models. Plain text (no Markdown); escape before display.
    """
    shares = result.credit_table("share").set_index("channel")
    if shares.empty or result.n_converting == 0:
        return ("No converting journeys in the window, so the models have nothing to "
                "disagree about.")
    spread = (shares.max(axis=1) - shares.min(axis=1)).sort_values(ascending=False, kind="stable")
    profile = result.channel_profile().set_index("channel")
    overall = result.n_converting / max(result.n_converting + result.n_null, 1)
    data_driven = [m for m in DATA_DRIVEN_MODELS if m in shares.columns]
    sentences = [
        f"Across {len(shares.columns)} models the shares of {len(shares)} channels differ by up "
        f"to {100 * spread.iloc[0]:.0f} points; the largest disagreements:"
    ]
    for channel in spread.index[:top]:
        sentences.append(_disagreement_sentence(channel, shares.loc[channel],
                                                profile.loc[channel], overall, data_driven))
    ends = [m for m in ("first_touch", "last_touch") if m in shares.columns]
    if data_driven and ends:
        sentences.append(_ends_vs_data_driven(shares, profile, ends, data_driven))
    return " ".join(sentences)


def _ends_vs_data_driven(shares: pd.DataFrame, profile: pd.DataFrame, ends: Sequence[str],
                         data_driven: Sequence[str]) -> str:
    """The channel the data-driven models favour most over first/last touch (mean against
    mean), and the one they favour least."""
    driven_mean = shares[list(data_driven)].mean(axis=1)
    gap = driven_mean - shares[list(ends)].mean(axis=1)
    up, down = gap.idxmax(), gap.idxmin()
    driven_text = " and ".join(_model_label(m) for m in data_driven)

    def under_ends(channel: str) -> str:
        return " and ".join(f"{100 * shares.at[channel, m]:.0f} % under {_model_label(m)}"
                            for m in ends)

    return (
        f"{driven_text} give {up} {100 * driven_mean[up]:.0f} % against {under_ends(up)}: it "
        f"is in {100 * profile.at[up, 'converting_share']:.0f} % of converting journeys but "
        f"{_end_positions(profile.loc[up], of='them')}, and models that credit only the ends "
        "miss its "
        f"touches in between. They give {down} "
        f"{100 * driven_mean[down]:.0f} % against {under_ends(down)}: it "
        f"{_end_positions(profile.loc[down])}, which position rules reward in full, while "
        f"{driven_text} share those conversions with the other channels on the same paths."
    )


def _end_positions(facts: pd.Series, of: str = "converting journeys") -> str:
    return (f"opens {100 * facts['first_touch_share']:.0f} % and closes "
            f"{100 * facts['last_touch_share']:.0f} % of {of}")


def _disagreement_sentence(channel: str, row: pd.Series, facts: pd.Series, overall: float,
                           data_driven: Sequence[str]) -> str:
    high, low = row.idxmax(), row.idxmin()
    text = (f"{channel}: {100 * row[high]:.0f} % of the credit under {_model_label(high)} but "
            f"{100 * row[low]:.0f} % under {_model_label(low)}")
    reasons = []
    if facts["first_touch_share"] >= facts["last_touch_share"]:
        reasons.append(f"it opens {100 * facts['first_touch_share']:.0f} % of converting journeys")
    else:
        reasons.append(f"it closes {100 * facts['last_touch_share']:.0f} % of converting journeys")
    rate = facts["conversion_rate"]
    if rate == rate:
        relation = "above" if rate > overall else "below"
        reasons.append(f"journeys that include it convert at {100 * rate:.1f} %, {relation} the "
                       f"{100 * overall:.1f} % of all journeys")
    if data_driven:
        shown = ", ".join(f"{_model_label(m)} {100 * row[m]:.0f} %" for m in data_driven)
        reasons.append(f"data-driven: {shown}")
    return text + " (" + "; ".join(reasons) + ")."


def _model_label(model: str) -> str:
    labels = {"markov": "Markov", "shapley": "Shapley", "u_shaped": "U-shaped",
              "w_shaped": "W-shaped", "j_shaped": "J-shaped", "inverse_j": "inverse-J"}
    return labels.get(model, model.replace("_", " "))


def compute_kpis(
    touchpoints: ir.Table,
    stage_events: ir.Table,
    opportunities: ir.Table,
    people: ir.Table,
    quarter: Quarter,
    params: AttributionParams,
    *,
    n_previous: int = 3,
    opportunity_people: ir.Table | None = None,
    source: str = "attribution#tbl-attribution-kpis",
    con: ibis.BaseBackend | None = None,
) -> pd.DataFrame:
    """Attribution's headline KPIs for ``quarter`` and the ``n_previous`` quarters before it.

    KPIs (person journeys as in ``params``; Markov point estimates, no bootstrap):

    - **Conversions attributed** (count): converting journeys with at least one touch in
      their lookback window.
    - **Conversions without a touch** (count): conversions credited to no channel.
    - **Share of credit to sales touches (Markov)** (fraction): Markov credit of the sales
      touches over all credit (:meth:`JourneyAttribution.sales_split`, exact per touch with
      ``params.split_mixed_channels``).
    - **Markov top channel share** (fraction): the largest channel share; ``note`` names it.

    Returns
    -------
    pd.DataFrame
        ``kpi, quarter, value, unit, source, headline, note``, oldest quarter first (the
        ``kpis-attribution`` table of docs/notebooks.md, item 5).
    """
    quarters = [quarter.previous(i) for i in range(n_previous, 0, -1)] + [quarter]
    rows = []
    for q in quarters:
        result = attribute_journeys(
            touchpoints, stage_events, opportunities, people, start_at=q.start_at,
            end_at=q.end_at, params=params, models=("markov",),
            opportunity_people=opportunity_people, n_boot=0, con=con,
        )
        markov = result.results["markov"]
        split = result.sales_split().set_index("model")
        sales_share = float(split.at["markov", "sales_share"]) if "markov" in split.index else (
            float("nan")  # no converting journey in this quarter: no share to report
        )
        share = markov.share
        top_channel = str(share.idxmax()) if share.notna().any() else ""
        values = [
            ("Conversions attributed", float(result.n_converting), "count", True, ""),
            ("Conversions without a touch", float(result.n_converting_without_touch), "count",
             False, ""),
            ("Share of credit to sales touches (Markov)", sales_share, "fraction", True, ""),
            ("Markov top channel share", float(share.max()) if top_channel else float("nan"),
             "fraction", False, top_channel),
        ]
        rows += [
            {"kpi": k, "quarter": str(q), "value": v, "unit": u, "source": source,
             "headline": h, "note": n}
            for k, v, u, h, n in values
        ]
    return pd.DataFrame(rows)
