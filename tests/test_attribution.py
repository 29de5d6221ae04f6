"""Tests of alignment.attribution and `alignment attribute`, each against an independent reference.

References used: hand computation (written out in the comments), closed forms, a dense
fundamental-matrix Markov implementation written here with plain loops, brute-force permutation
enumeration of Shapley values, and peers' outputs in tests/results/attribution_reference.json
(written by tests/results/make_attribution_reference.py: DP6 mam 2.1.1, ChannelAttribution 2.2.5).
"""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from typer.testing import CliRunner

from alignment import attribution as at
from alignment.cli import app

RESULTS = Path(__file__).parent / "results"


def frame(rows: list[tuple], value: bool = False) -> pd.DataFrame:
    """A path table from (path, conversions, nulls[, value]) tuples."""
    cols = ["path", "conversions", "nulls"] + (["value"] if value else [])
    return pd.DataFrame(rows, columns=cols)


HAND = frame([("C1>C2>C3", 1, 0), ("C1", 0, 1), ("C2>C3", 0, 1)])

MIXED = frame(
    [
        ("a>b>c", 30, 70), ("a", 5, 95), ("b>c", 12, 40), ("c>a>a>b", 8, 10), ("d>a", 3, 30),
        ("b>b>d>c>a", 6, 9), ("c", 2, 60), ("d>c>b>a>d", 4, 4), ("a>d", 0, 25), ("b>a>c>a", 7, 3),
    ],
)


# --------------------------------------------------------------------------------------------
# Independent references written for the tests
# --------------------------------------------------------------------------------------------


def dense_markov_removal(data: pd.DataFrame, order: int = 1, sep: str = ">") -> dict[str, float]:
    """Removal effects by a dense fundamental matrix, built with plain loops.

    States are k-tuples padded at the start with "^" (so the first touch gives ("^", .., c1)),
    self-loops are kept, and removal redirects every transition into a state holding the
    channel to (null), as DP6 does. N = (I - Q)^-1, P(conv) = N[start] @ R[:, conv].
    """
    counts: dict[tuple, dict[tuple, float]] = {}
    start = ("^",) * order

    def add(src: tuple, dst: tuple, n: float) -> None:
        counts.setdefault(src, {}).setdefault(dst, 0.0)
        counts[src][dst] += n

    for path, conv, null in data[["path", "conversions", "nulls"]].itertuples(index=False):
        state = start
        for channel in [c.strip() for c in path.split(sep)]:
            nxt = (*state[1:], channel)
            add(state, nxt, conv + null)
            state = nxt
        add(state, ("CONV",), conv)
        add(state, ("NULL",), null)
    transient = sorted(counts)
    index = {s: i for i, s in enumerate(transient)}
    channels = sorted({c for s in transient for c in s if c != "^"})

    def p_conv(removed: str | None) -> float:
        n = len(transient)
        q, r = np.zeros((n, n)), np.zeros(n)
        for src, dests in counts.items():
            total = sum(dests.values())
            for dst, c in dests.items():
                if dst == ("CONV",):
                    r[index[src]] += c / total
                elif dst != ("NULL",) and removed not in dst:
                    q[index[src], index[dst]] += c / total
        fundamental = np.linalg.inv(np.eye(n) - q)
        return float(fundamental[index[start]] @ r)

    base = p_conv(None)
    return {c: 1 - p_conv(c) / base for c in channels}


def journey_attribution(paths: at.Paths, results: dict[str, at.AttributionResult],
                        channels: pd.DataFrame, n_boot: int = 0) -> at.JourneyAttribution:
    """A JourneyAttribution around path-level results, as attribute_journeys would make it."""
    return at.JourneyAttribution(
        results=results, paths=paths, channels=channels,
        n_converting=int(paths.conversions.sum()), n_null=int(paths.nulls.sum()),
        n_converting_without_touch=0, unit="person", start_at=datetime(2026, 7, 1, tzinfo=UTC),
        end_at=datetime(2026, 10, 1, tzinfo=UTC), conversion_event="SQL", lookback_days=90,
        half_life_days=7.0, n_boot=n_boot,
    )


def subset_game_shapley_brute_force(data: pd.DataFrame) -> dict[str, float]:
    """Shapley values by enumerating every order of the players (n! orders)."""
    sets = [frozenset(c.strip() for c in p.split(">")) for p in data["path"]]
    conv = data["conversions"].to_numpy(dtype=float)
    players = sorted(set().union(*sets))

    def v(coalition: frozenset) -> float:  # conversions of paths using only channels of S
        return float(sum(c for s, c in zip(sets, conv, strict=True) if s <= coalition))

    phi = dict.fromkeys(players, 0.0)
    orders = list(itertools.permutations(players))
    for order in orders:
        before: frozenset = frozenset()
        for player in order:
            phi[player] += v(before | {player}) - v(before)
            before = before | {player}
    return {p: phi[p] / len(orders) for p in players}


def rate_game_shapley_brute_force(data: pd.DataFrame, rate_of_exact_set: bool = False,
                                  amount: str = "conversions") -> dict[str, float]:
    """Conversion-rate Shapley credit by enumerating every order of each converting set.

    r(T) = conversions / (conversions + nulls) of the journeys whose channel set is exactly T.
    Each converting set C splits its ``amount`` (conversions or value) among its channels in
    proportion to their Shapley values, averaged over all |C|! orders of C's channels, of the
    game v(S) = sum of r(T) over observed T ⊆ S, or, with ``rate_of_exact_set``, v(S) = r(S)
    (DP6's ``run_shapley(value_column="conv_rate")``).
    """
    sets = [frozenset(c.strip() for c in p.split(">")) for p in data["path"]]
    won: dict[frozenset, float] = {}
    seen: dict[frozenset, float] = {}
    worth: dict[frozenset, float] = {}
    for s, conv, null, amt in zip(sets, data["conversions"], data["nulls"], data[amount],
                                  strict=True):
        won[s] = won.get(s, 0.0) + conv
        seen[s] = seen.get(s, 0.0) + conv + null
        worth[s] = worth.get(s, 0.0) + amt
    rate = {s: won[s] / seen[s] for s in seen if seen[s] > 0}

    def v(coalition: frozenset) -> float:
        if rate_of_exact_set:
            return rate.get(coalition, 0.0)
        return sum(r for t, r in rate.items() if t <= coalition)

    credit = dict.fromkeys(sorted(set().union(*sets)), 0.0)
    for coalition, conv in won.items():
        if conv <= 0:
            continue
        phi = dict.fromkeys(coalition, 0.0)
        orders = list(itertools.permutations(sorted(coalition)))
        for order in orders:
            before: frozenset = frozenset()
            for player in order:
                phi[player] += (v(before | {player}) - v(before)) / len(orders)
                before = before | {player}
        total = sum(phi.values())
        for player, value in phi.items():
            credit[player] += worth[coalition] * value / total
    return credit


def subset_game_shapley_closed_form(data: pd.DataFrame) -> dict[str, float]:
    """phi_c = sum over paths holding c of conversions / number of distinct channels."""
    phi: dict[str, float] = {}
    for path, conv in data[["path", "conversions"]].itertuples(index=False):
        channels = {c.strip() for c in path.split(">")}
        for c in channels:
            phi[c] = phi.get(c, 0.0) + conv / len(channels)
    return phi


# --------------------------------------------------------------------------------------------
# Markov
# --------------------------------------------------------------------------------------------


def test_markov_hand_computed_chain_gives_removal_half_one_one():
    # Reference: hand computation. Transitions: start->C1 2/3, start->C2 1/3; C1->C2 1/2,
    # C1->null 1/2; C2->C3 1; C3->conv 1/2, C3->null 1/2.
    # P(conv) = 2/3*1/2*1*1/2 + 1/3*1*1/2 = 1/6 + 1/6 = 1/3.
    # Without C1: only start->C2->C3->conv = 1/3*1/2 = 1/6, removal 1 - (1/6)/(1/3) = 0.5.
    # Without C2 or C3 no path reaches conv: removal 1. Sum 2.5 -> credit 0.2, 0.4, 0.4 of 1.
    # Tolerance: float rounding.
    res = at.attribute(at.parse_paths(HAND), "markov")
    assert_allclose(res.removal_effects[["C1", "C2", "C3"]], [0.5, 1.0, 1.0], rtol=1e-12)
    assert_allclose(res.credit[["C1", "C2", "C3"]], [0.2, 0.4, 0.4], rtol=1e-12)
    assert_allclose(res.share.sum(), 1.0, rtol=1e-12)


def test_markov_order1_matches_dense_fundamental_matrix():
    # Reference: dense_markov_removal (loops + np.linalg.inv, self-loops kept). Tolerance 1e-9.
    ref = dense_markov_removal(MIXED, order=1)
    res = at.attribute(at.parse_paths(MIXED), "markov")
    assert_allclose(res.removal_effects[list(ref)], list(ref.values()), rtol=1e-9)
    expected = np.array(list(ref.values())) / sum(ref.values()) * MIXED["conversions"].sum()
    assert_allclose(res.credit[list(ref)], expected, rtol=1e-9)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_markov_order_k_matches_padded_dense_reference(order):
    # Reference: dense_markov_removal with start padding; the module uses ChannelAttribution's
    # windows (no padding), which the Notes claim is equivalent. Tolerance 1e-9.
    ref = dense_markov_removal(MIXED, order=order)
    res = at.attribute(at.parse_paths(MIXED), "markov", order=order)
    assert_allclose(res.removal_effects[list(ref)], list(ref.values()), rtol=1e-9)


def test_markov_order1_removal_matches_dp6_mam():
    # Reference: DP6 mam 2.1.1 run_markov (dense np.linalg.inv), attribution_reference.json.
    # Tolerance: 1e-12, both exact.
    ref = json.loads((RESULTS / "attribution_reference.json").read_text())
    res = at.attribute(pd.DataFrame(ref["paths"]), "markov")
    removal = pd.Series(ref["dp6_mam_2.1.1_removal_effects_order1"])
    assert_allclose(res.removal_effects[removal.index], removal, rtol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_markov_credit_is_close_to_channelattribution_simulation(order):
    # Reference: ChannelAttribution 2.2.5 markov_model, 5e6 simulated paths, conv_par 0.002
    # (attribution_reference.json). Tolerance: 0.5 conversions of 169 (0.3 %), the
    # simulation's own convergence criterion (0.2 %) plus noise; measured gap at most 0.065.
    ref = json.loads((RESULTS / "attribution_reference.json").read_text())
    res = at.attribute(pd.DataFrame(ref["paths"]), "markov", order=order)
    theirs = pd.Series(ref["channelattribution_2.2.5_credit"][f"order{order}"])
    assert_allclose(res.credit[theirs.index], theirs, atol=0.5)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_markov_order_k_equals_order1_when_every_path_has_one_touch(order):
    # Reference: order 1 on the same data (every state is a single channel). Tolerance 1e-12.
    data = frame([("a", 3, 7), ("b", 1, 9), ("c", 5, 5)])
    one = at.attribute(data, "markov", order=1)
    k = at.attribute(data, "markov", order=order)
    assert_allclose(k.credit, one.credit, rtol=1e-12)
    assert_allclose(k.removal_effects, one.removal_effects, rtol=1e-12)


def first_order_expected_paths() -> pd.DataFrame:
    """Expected counts (1e6 journeys) of every path of a first-order chain on a DAG."""
    nxt = {  # channel -> {next channel or CONV/NULL: probability}; edges only go "down"
        "^": {"a": 0.5, "b": 0.3, "c": 0.2},
        "a": {"b": 0.4, "c": 0.2, "d": 0.1, "CONV": 0.1, "NULL": 0.2},
        "b": {"c": 0.3, "d": 0.3, "CONV": 0.15, "NULL": 0.25},
        "c": {"d": 0.5, "CONV": 0.2, "NULL": 0.3},
        "d": {"CONV": 0.35, "NULL": 0.65},
    }
    rows: dict[str, list[float]] = {}

    def walk(path: list[str], prob: float) -> None:
        for dst, p in nxt[path[-1] if path else "^"].items():
            if dst in ("CONV", "NULL"):
                row = rows.setdefault(">".join(path), [0.0, 0.0])
                row[0 if dst == "CONV" else 1] += 1e6 * prob * p
            else:
                walk([*path, dst], prob * p)

    walk([], 1.0)
    return frame([(p, c, n) for p, (c, n) in rows.items()])


@pytest.mark.parametrize("order", [2, 3, 4])
def test_markov_order_k_equals_order1_on_expected_counts_of_first_order_chain(order):
    # Reference: order 1 on expected counts of a first-order chain: every k-history then has
    # the same next-step probabilities as its last channel, so P(conv) and removal effects
    # agree. Tolerance 1e-10 (sums of ~30 products).
    data = first_order_expected_paths()
    one = at.attribute(data, "markov", order=1)
    k = at.attribute(data, "markov", order=order)
    assert_allclose(k.removal_effects, one.removal_effects, rtol=1e-10)


def test_markov_iterative_solver_matches_sparse_lu(monkeypatch):
    # Reference: the same chain solved by sparse LU. Tolerance 1e-11 (the iteration stops at a
    # proven error bound of 1e-13 relative).
    data = frame([(f"{a}>{b}>{c}>{d}", (i * 7) % 5, 3 + i % 4) for i, (a, b, c, d) in
                  enumerate(itertools.product("pqrst", repeat=4))])
    lu = at.attribute(data, "markov", order=3)
    monkeypatch.setattr(at, "DIRECT_MAX_STATES", 0)
    iterated = at.attribute(data, "markov", order=3)
    assert_allclose(iterated.removal_effects, lu.removal_effects, rtol=1e-11)


def test_markov_value_credit_by_hand():
    # Reference: hand computation. start->a 4/8, start->b 4/8, a->b 1, b->conv 3/8 and value
    # 110 per 8 journeys leaving b. P(conv) = 3/8, V = 110/8. Without a: 3/16 and 55/8, both
    # removals 0.5; without b: 0, removal 1. Credit a = 0.5/1.5 * 3 = 1, b = 2; value a =
    # 110/3, b = 220/3. Tolerance: float rounding.
    data = frame([("a>b", 2, 2, 100.0), ("b", 1, 3, 10.0)], value=True)
    res = at.attribute(at.parse_paths(data, value_col="value"), "markov")
    assert_allclose(res.removal_effects[["a", "b"]], [0.5, 1.0], rtol=1e-12)
    assert_allclose(res.credit[["a", "b"]], [1.0, 2.0], rtol=1e-12)
    assert_allclose(res.value_credit[["a", "b"]], [110 / 3, 220 / 3], rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Shapley
# --------------------------------------------------------------------------------------------


def test_shapley_two_channels_by_hand():
    # Reference: hand computation. w({A}) = 10, w({B}) = 4, w({A,B}) = 6.
    # v(A) = 10, v(B) = 4, v(AB) = 20. phi_A = (10 + (20 - 4)) / 2 = 13, phi_B = 7.
    data = frame([("A", 10, 1), ("B", 4, 1), ("A>B", 3, 1), ("B>A>B", 3, 0)])
    res = at.attribute(data, "shapley", shapley_game="conversions")
    assert_allclose(res.credit[["A", "B"]], [13.0, 7.0], rtol=1e-12)


def test_shapley_three_channels_by_hand():
    # Reference: hand computation, Shapley of a sum of unanimity games: each set's worth is
    # split equally among its members. w(A)=6, w(AB)=4, w(ABC)=9, w(BC)=2:
    # A = 6 + 2 + 3 = 11, B = 2 + 3 + 1 = 6, C = 3 + 1 = 4.
    data = frame([("A", 6, 0), ("A>B", 4, 0), ("C>B>A", 9, 0), ("B>C", 2, 5)])
    res = at.attribute(data, "shapley", shapley_game="conversions")
    assert_allclose(res.credit[["A", "B", "C"]], [11.0, 6.0, 4.0], rtol=1e-12)


RATE_HAND = frame([("A", 1, 3, 10.0), ("B", 1, 1, 20.0), ("A>B", 2, 2, 40.0),
                   ("C>A>B", 3, 1, 90.0), ("C", 0, 4, 0.0)], value=True)


@pytest.mark.parametrize("method", ["auto", "exact", "sample"])
def test_shapley_conversion_rate_game_three_channels_by_hand(method):
    """Reference: hand computation of the default (conversion-rate) game.

    Rates r(T) = conversions / journeys of the paths whose channel set is exactly T:
    r(A) = 1/4, r(B) = 1/2, r(AB) = 2/4 = 1/2, r(ABC) = 3/4, r(C) = 0/4 = 0.

    Each converting set C splits its conversions by the Shapley values of the game
    v(S) = sum of r(T), T ⊆ S, on C's channels; phi_i = sum over T ⊆ C holding i of r(T)/|T|:

    - {A}, 1 conversion: all to A. {B}, 1 conversion: all to B.
    - {A,B}, 2 conversions: phi_A = 1/4 + 1/4 = 1/2, phi_B = 1/2 + 1/4 = 3/4, v = 5/4;
      A gets 2 * (1/2) / (5/4) = 0.8, B gets 1.2.
    - {A,B,C}, 3 conversions: phi_A = 1/4 + 1/4 + 1/4 = 3/4, phi_B = 1/2 + 1/4 + 1/4 = 1,
      phi_C = 0 + 1/4 = 1/4, v = 2; A gets 9/8, B 3/2, C 3/8.

    Credit: A = 1 + 0.8 + 1.125 = 2.925, B = 1 + 1.2 + 1.5 = 3.7, C = 0.375 (sum 7).
    Value, split in the same proportions: A = 10 + 40 * 0.4 + 90 * 3/8 = 59.75,
    B = 20 + 40 * 0.6 + 90 * 1/2 = 89, C = 90 * 1/8 = 11.25 (sum 160).
    The counts game gives A = 1 + 1 + 1 = 3, B = 3, C = 1: C's four lone journeys that never
    converted cost it credit only under the rate game.

    Tolerance: 1e-12 for the exact methods; the sampled one within its own 95 % bound.
    """
    paths = at.parse_paths(RATE_HAND, value_col="value")
    res = at.attribute(paths, "shapley", shapley_method=method, n_permutations=4000)
    expected = pd.Series({"A": 2.925, "B": 3.7, "C": 0.375})
    if method == "sample":
        assert (res.credit[expected.index] - expected).abs().le(
            res.approx_error[expected.index]).all()
    else:
        assert res.approx_error is None
        assert_allclose(res.credit[expected.index], expected, rtol=1e-12)
        assert_allclose(res.value_credit[["A", "B", "C"]], [59.75, 89.0, 11.25], rtol=1e-12)
    counts = at.attribute(paths, "shapley", shapley_game="conversions")
    assert_allclose(counts.credit[["A", "B", "C"]], [3.0, 3.0, 1.0], rtol=1e-12)


def test_shapley_rate_game_takes_credit_from_a_channel_whose_journeys_fail():
    # Reference: hand computation and the counts game, which ignores nulls. RATE_HAND with
    # C's lone path converting once in 1 + n journeys: r(C) = 1 / (1 + n). The counts game
    # gives C its lone conversion plus a third of w(ABC) = 3: 2, whatever n. The rate game
    # gives C 1 + 3 * phi_C / v(ABC) with phi_C = r(C) + r(ABC)/3 = r(C) + 1/4 and
    # v(ABC) = 2 + r(C): 1 + 3 * 1.25 / 3 = 2.25 for n = 0, and less as n grows
    # (n = 10: 1 + 3 * (1/11 + 1/4) / (2 + 1/11) = 1.48913...). Tolerance 1e-12.
    def with_c(n: int) -> pd.DataFrame:
        lone_c = RATE_HAND["path"] == "C"
        return RATE_HAND.assign(conversions=RATE_HAND["conversions"].where(~lone_c, 1),
                                nulls=RATE_HAND["nulls"].where(~lone_c, n))

    credit = []
    for n in (0, 10, 100, 1000):
        rate = at.attribute(with_c(n), "shapley").credit
        counts = at.attribute(with_c(n), "shapley", shapley_game="conversions").credit
        assert_allclose(counts[["A", "B", "C"]], [3.0, 3.0, 2.0], rtol=1e-12)
        assert_allclose(rate.sum(), 8.0, rtol=1e-12)
        credit.append(rate["C"])
    r = 1 / 11
    assert_allclose(credit[:2], [2.25, 1 + 3 * (r + 0.25) / (2 + r)], rtol=1e-12)
    assert credit[0] > 2.0 > credit[1] > credit[2] > credit[3] > 1.0


def test_shapley_exact_matches_brute_force_permutations():
    # Reference: subset_game_shapley_brute_force, all 4! orders. Tolerance 1e-9.
    ref = subset_game_shapley_brute_force(MIXED)
    res = at.attribute(MIXED, "shapley", shapley_method="exact", shapley_game="conversions")
    assert_allclose(res.credit[list(ref)], list(ref.values()), rtol=1e-9)


@pytest.mark.parametrize("method", ["auto", "exact"])
def test_shapley_rate_game_matches_brute_force_permutations(method):
    # Reference: rate_game_shapley_brute_force, all orders of each converting set.
    # Tolerance 1e-9 (float noise of a few hundred additions).
    data = MIXED.assign(value=MIXED["conversions"] * np.arange(1.0, 11.0))
    paths = at.parse_paths(data, value_col="value")
    res = at.attribute(paths, "shapley", shapley_method=method)
    ref = rate_game_shapley_brute_force(data)
    assert_allclose(res.credit[list(ref)], list(ref.values()), rtol=1e-9)
    ref_value = rate_game_shapley_brute_force(data, amount="value")
    assert_allclose(res.value_credit[list(ref_value)], list(ref_value.values()), rtol=1e-9)


def test_shapley_rate_game_against_dp6_on_the_reference_paths():
    """Reference: DP6 mam 2.1.1 ``run_shapley(value_column="conv_rate")`` on the 4-channel
    table of tests/results/attribution_reference.json (make_attribution_reference.py).

    DP6 splits each converting set's conversions by the Shapley values of v(S) = r(S), the
    rate of exactly S; ours by v(S) = sum of r(T) over T ⊆ S. The brute-force reference with
    ``rate_of_exact_set=True`` must reproduce DP6's numbers (1e-9: both are exact enumeration
    in floating point), which pins down the one documented difference; with the default it
    must reproduce ours (1e-9). The two games rank the four channels alike.
    """
    ref = json.loads((RESULTS / "attribution_reference.json").read_text())
    data = pd.DataFrame(ref["paths"])
    dp6 = pd.Series(ref["dp6_mam_2.1.1_shapley_conv_rate"])
    dp6_again = pd.Series(rate_game_shapley_brute_force(data, rate_of_exact_set=True))
    assert_allclose(dp6_again[dp6.index], dp6, rtol=1e-9)
    ours = at.attribute(data, "shapley").credit
    mine = pd.Series(rate_game_shapley_brute_force(data))
    assert_allclose(ours[mine.index], mine, rtol=1e-9)
    assert list(ours.sort_values().index) == list(dp6.sort_values().index)
    assert_allclose(ours.sum(), dp6.sum(), rtol=1e-9)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.lists(
    st.tuples(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=4),
              st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=8))
def test_shapley_rate_closed_form_equals_permutation_enumeration(data):
    # Reference: rate_game_shapley_brute_force (itertools over every order of each
    # converting set), on random games of up to 4 channels. Tolerance 1e-9.
    table = frame([(">".join(path), conv, null) for path, conv, null in data])
    if table["conversions"].sum() == 0:
        return
    ref = pd.Series(rate_game_shapley_brute_force(table))
    res = at.attribute(table, "shapley").credit
    assert_allclose(res[ref.index], ref, rtol=1e-9, atol=1e-12)
    enumerated = at.attribute(table, "shapley", shapley_method="exact").credit
    assert_allclose(enumerated[ref.index], ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("game", at.SHAPLEY_GAMES)
def test_shapley_sampling_beyond_fifteen_channels_is_within_its_bound(game):
    # Reference: the closed form (exact for either game: the counts game by
    # subset_game_shapley_closed_form, the rate game by its "auto" method, checked against
    # enumeration above). Tolerance: the result's own 95 % Hoeffding bound (seeded).
    rng = np.random.default_rng(3)
    names = [f"ch{i:02d}" for i in range(18)]
    rows = [(">".join(rng.choice(names, size=rng.integers(1, 6))), int(rng.integers(0, 20)), 5)
            for _ in range(300)]
    data = frame(rows)
    res = at.attribute(data, "shapley", shapley_method="sample", n_permutations=500, seed=1,
                       shapley_game=game)
    if game == "conversions":
        ref = pd.Series(subset_game_shapley_closed_form(data))
    else:
        ref = at.attribute(data, "shapley").credit
    assert res.approx_error is not None
    assert (res.credit[ref.index] - ref).abs().le(res.approx_error[ref.index]).all()
    assert_allclose(res.credit.sum(), data["conversions"].sum(), rtol=1e-12)


def test_shapley_rejects_an_unknown_game():
    with pytest.raises(ValueError, match="shapley_game"):
        at.attribute(HAND, "shapley", shapley_game="rates")


def test_shapley_exact_refuses_more_than_fifteen_channels():
    data = frame([(f"c{i}", 1, 1) for i in range(16)])
    with pytest.raises(ValueError, match="at most 15"):
        at.attribute(data, "shapley", shapley_method="exact")


# --------------------------------------------------------------------------------------------
# Rule-based models
# --------------------------------------------------------------------------------------------

RULE_CASES = [  # Reference: the weight table in the module docstring (HubSpot/Marketo Measure)
    ("first_touch", 3, [1, 0, 0]),
    ("last_touch", 3, [0, 0, 1]),
    ("linear", 4, [0.25] * 4),
    ("time_decay", 1, [1.0]),
    ("time_decay", 3, [1 / 7, 2 / 7, 4 / 7]),  # 1 : 2 : 4 with a half-life of one step
    ("u_shaped", 1, [1.0]),
    ("u_shaped", 2, [0.5, 0.5]),
    ("u_shaped", 3, [0.4, 0.2, 0.4]),
    ("u_shaped", 5, [0.4, 0.2 / 3, 0.2 / 3, 0.2 / 3, 0.4]),
    ("j_shaped", 2, [0.25, 0.75]),
    ("j_shaped", 4, [0.2, 0.1, 0.1, 0.6]),
    ("inverse_j", 2, [0.75, 0.25]),
    ("inverse_j", 3, [0.6, 0.2, 0.2]),
    ("w_shaped", 2, [0.5, 0.5]),
    ("w_shaped", 3, [1 / 3, 1 / 3, 1 / 3]),
    ("w_shaped", 4, [0.3, 0.1, 0.3, 0.3]),  # middle touch: position L // 2 + 1 = 3
    ("w_shaped", 5, [0.3, 0.05, 0.3, 0.05, 0.3]),
    ("full_path", 3, [1 / 3, 1 / 3, 1 / 3]),
    ("full_path", 4, [0.25, 0.25, 0.25, 0.25]),
    ("full_path", 5, [0.225, 0.225, 0.1, 0.225, 0.225]),  # anchors at 1, 2, 4, 5
    ("full_path", 7, [0.225, 0.1 / 3, 0.225, 0.1 / 3, 0.225, 0.1 / 3, 0.225]),  # 1, 3, 5, 7
]


@pytest.mark.parametrize(("model", "length", "expected"), RULE_CASES,
                         ids=[f"{m}-{n}" for m, n, _ in RULE_CASES])
def test_rule_weights_for_short_paths(model, length, expected):
    # Tolerance: float rounding.
    pos = np.arange(length)
    got = at.touch_weights(pos, np.full(length, length), model)
    assert_allclose(got, expected, rtol=1e-12)
    assert_allclose(got.sum(), 1.0, rtol=1e-12)


def test_time_decay_half_life_in_steps():
    # Reference: closed form 2^(-d/h) for d steps before the last touch, h = 2: 1/2, 1/sqrt2, 1.
    got = at.touch_weights(np.arange(3), np.full(3, 3), "time_decay", half_life_steps=2.0)
    raw = np.array([0.5, 2**-0.5, 1.0])
    assert_allclose(got, raw / raw.sum(), rtol=1e-12)


def test_rule_model_counts_repeated_channel_twice():
    # Reference: hand computation: linear on a>b>a with 3 conversions: a 2, b 1.
    res = at.attribute(frame([("a>b>a", 3, 0)]), "linear")
    assert_allclose(res.credit[["a", "b"]], [2.0, 1.0], rtol=1e-12)


def test_time_decay_by_age_uses_seven_day_half_life():
    # Reference: closed form: ages 0 and 7 days, half-life 7 -> weights 1 and 1/2 -> 2/3, 1/3.
    touches = pd.DataFrame({"journey_id": [1, 1, 2], "channel": ["email", "web", "web"],
                            "age_days": [0.0, 7.0, 3.0], "conversions": [3, 3, 1],
                            "value": [30.0, 30.0, 5.0]})
    res = at.attribute_time_decay_by_age(touches, value_col="value")
    assert_allclose(res.credit[["email", "web"]], [2.0, 1.0 + 1.0], rtol=1e-12)
    assert_allclose(res.value_credit[["email", "web"]], [20.0, 15.0], rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def test_parse_strips_whitespace_and_sums_repeated_paths():
    paths = at.parse_paths(frame([(" a > b ", 1, 2), ("a>b", 3, 4), ("b", 0, 1)]))
    assert list(paths.path) == ["a>b", "b"]
    assert paths.conversions.tolist() == [4.0, 0.0]
    assert paths.nulls.tolist() == [6.0, 1.0]


@pytest.mark.parametrize(
    ("data", "column", "rows", "rule"),
    [
        (frame([("a", 1, 1), ("b", -1, 2), ("c", 1, -3)]), "conversions", (2,), "negative"),
        (frame([("a", 1, 1), ("", 1, 2), ("a>>b", 1, 1)]), "path", (2, 3), "empty"),
        (frame([("a", 1, np.nan), ("b", 1, 1)]), "nulls", (1,), "missing value"),
        (frame([("a", 1, 1), (None, 1, 1)]), "path", (2,), "missing value"),
        (frame([("a", 0, 1, 5.0)], value=True), "value", (1,), "without conversions"),
    ],
    ids=["negative", "empty", "nan-count", "nan-path", "value-without-conversion"],
)
def test_parse_rejects_bad_rows_naming_column_and_rows(data, column, rows, rule):
    with pytest.raises(at.PathDataError, match=rule) as info:
        at.parse_paths(data, value_col="value" if "value" in data else None)
    assert info.value.column == column
    assert info.value.rows == rows
    assert isinstance(info.value, ValueError)


def test_parse_names_missing_column():
    with pytest.raises(ValueError, match="column nulls: missing column"):
        at.parse_paths(pd.DataFrame({"path": ["a"], "conversions": [1]}))


def test_declared_channel_that_never_appears_gets_zero_credit():
    paths = at.parse_paths(frame([("a>b", 2, 1)]), channels=["b", "a", "z"])
    for model in ("markov", "shapley", "linear"):
        res = at.attribute(paths, model)
        assert list(res.credit.index) == ["b", "a", "z"]
        assert res.credit["z"] == 0.0


def test_undeclared_channel_is_an_error():
    with pytest.raises(at.PathDataError, match="undeclared channel q"):
        at.parse_paths(frame([("a>q", 1, 1)]), channels=["a"])


# --------------------------------------------------------------------------------------------
# Results, bootstrap, sales/marketing
# --------------------------------------------------------------------------------------------


def test_to_frame_has_exactly_the_cli_columns():
    res = at.attribute(at.parse_paths(frame([("a>b", 2, 1, 9.0)], value=True), value_col="value"),
                       "linear")
    assert list(res.to_frame().columns) == ["channel", "conversions", "value", "share"]
    assert list(at.attribute(HAND, "linear").to_frame().columns) == [
        "channel", "conversions", "share"]


def test_bootstrap_is_seeded_and_summary_has_intervals():
    a = at.bootstrap(MIXED, "markov", n_boot=30, seed=5)
    b = at.bootstrap(MIXED, "markov", n_boot=30, seed=5)
    pd.testing.assert_frame_equal(a.draws, b.draws)
    assert a.draws.shape == (30, 4)
    summary = a.summary()
    assert list(summary.columns) == ["channel", "conversions", "share", "low", "high"]
    assert (summary["low"] <= summary["high"]).all()
    share_ci = a.conf_int(kind="share")
    assert ((share_ci >= 0) & (share_ci <= 1)).all().all()
    assert (a.bse > 0).all()


@pytest.mark.parametrize("model", ["markov", "shapley", "u_shaped"])
def test_bootstrap_interval_contains_estimate_on_fixed_data(model):
    res = at.bootstrap(MIXED, model, n_boot=200, seed=11)
    for kind, estimate in (("credit", res.credit), ("share", res.share)):
        ci = res.conf_int(0.05, kind=kind)
        assert ((ci["low"] <= estimate) & (estimate <= ci["high"])).all()


def test_bootstrap_resamples_the_observed_number_of_journeys():
    # Reference: multinomial over (path, outcome) cells keeps N fixed; linear credit of a
    # single-channel table is the resampled conversions, whose mean is N * p (law of large
    # numbers: 400 draws, tolerance 4 standard errors of the mean).
    data = frame([("a", 30, 70), ("b", 10, 90)])
    res = at.bootstrap(data, "linear", n_boot=400, seed=2)
    n, p_a = 200, 30 / 200
    se = math.sqrt(n * p_a * (1 - p_a) / 400)
    assert abs(res.draws["a"].mean() - n * p_a) < 4 * se


def test_bootstrap_needs_whole_journeys():
    with pytest.raises(ValueError, match="whole journeys"):
        at.bootstrap(frame([("a", 0.5, 1)]), "linear")


def test_split_sales_marketing_sums_channel_credit():
    res = at.bootstrap(MIXED, "linear", n_boot=20, seed=1)
    split = at.split_sales_marketing(res, ["c", "d"])
    assert_allclose(split.loc["sales", "conversions"], res.credit[["c", "d"]].sum(), rtol=1e-12)
    assert_allclose(split["share"].sum(), 1.0, rtol=1e-12)
    assert {"low", "high"} <= set(split.columns)
    with pytest.raises(ValueError, match="unknown channels"):
        at.split_sales_marketing(res, ["nope"])


def test_result_without_draws_explains_bootstrap():
    with pytest.raises(ValueError, match="bootstrap"):
        at.attribute(HAND, "linear").conf_int()


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

CHANNELS = ["a", "b", "c", "d", "e"]


@st.composite
def path_tables(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 8))
    rows = []
    for _ in range(n):
        path = draw(st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=5))
        conv = draw(st.integers(0, 20))
        null = draw(st.integers(0, 20))
        value = float(conv) * draw(st.floats(1, 100)) if conv else 0.0
        rows.append((">".join(path), conv, null, value))
    return frame(rows, value=True)


FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALL = [*at.RULE_MODELS, "markov", "shapley"]


@FAST
@given(data=path_tables(), model=st.sampled_from(ALL), order=st.integers(1, 3),
       game=st.sampled_from(at.SHAPLEY_GAMES))
def test_credit_sums_to_conversions_and_value(data, model, order, game):
    res = at.attribute(at.parse_paths(data, value_col="value"), model, order=order,
                       shapley_game=game)
    total = data["conversions"].sum()
    if total == 0:
        assert (res.credit == 0).all()
        return
    assert_allclose(res.credit.sum(), total, rtol=1e-10)
    assert_allclose(res.value_credit.sum(), data["value"].sum(), rtol=1e-10)
    assert ((res.share >= 0) & (res.share <= 1 + 1e-12)).all()


@FAST
@given(data=path_tables(), model=st.sampled_from(["markov", "shapley", "linear", "w_shaped"]),
       perm=st.permutations(CHANNELS))
def test_relabelling_channels_permutes_credit(data, model, perm):
    mapping = dict(zip(CHANNELS, perm, strict=True))
    renamed = data.assign(path=[">".join(mapping[c] for c in p.split(">")) for p in data["path"]])
    a = at.attribute(data, model, order=2).credit
    b = at.attribute(renamed, model, order=2).credit
    assert_allclose(b[[mapping[c] for c in a.index]].to_numpy(), a.to_numpy(), rtol=1e-9,
                    atol=1e-9)


@FAST
@given(data=path_tables(), model=st.sampled_from(["markov", "shapley", "u_shaped"]))
def test_declared_unused_channel_gets_zero(data, model):
    res = at.attribute(at.parse_paths(data, channels=[*CHANNELS, "never"]), model)
    assert res.credit["never"] == 0.0


TEAM_CHANNELS = ["a", "b", "c"]


@st.composite
def team_journeys(draw: st.DrawFn) -> list[tuple[list[tuple[str, bool]], int, int]]:
    """Journeys as (touches, conversions, nulls), a touch being (channel, is_sales_touch)."""
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        touches = draw(st.lists(st.tuples(st.sampled_from(TEAM_CHANNELS), st.booleans()),
                                min_size=1, max_size=4))
        conv = draw(st.integers(0, 5))
        rows.append((touches, conv, draw(st.integers(0 if conv else 1, 5))))
    return rows


def team_attribution(journeys: list, split: bool) -> at.JourneyAttribution:
    """Every model on the journeys, named by the rule of alignment.journeys written again here:
    with ``split`` a sales touch of a channel that has a marketing touch is "<c> (sales)"."""
    has_marketing = {c for touches, _, _ in journeys for c, sales in touches if not sales}

    def name(channel: str, sales: bool) -> str:
        return f"{channel} (sales)" if split and sales and channel in has_marketing else channel

    rows, counts = [], {}
    for touches, conv, null in journeys:
        rows.append((">".join(name(c, s) for c, s in touches), conv, null))
        for c, sales in touches:  # touches of the journeys, as summarise_channels counts them
            n = counts.setdefault(name(c, sales), [c, 0, 0])
            n[1] += conv + null
            n[2] += (conv + null) * sales
    channels = pd.DataFrame([(k, *v) for k, v in sorted(counts.items())],
                            columns=["channel", "base_channel", "n_touches", "n_sales_touches"])
    channels["is_sales_channel"] = 2 * channels["n_sales_touches"] > channels["n_touches"]
    paths = at.parse_paths(frame(rows), channels=channels["channel"])
    return journey_attribution(paths, {m: at.attribute(paths, m) for m in at.MODELS}, channels)


@FAST
@given(journeys=team_journeys(), split=st.booleans())
def test_marketing_and_sales_credit_add_up_to_every_models_total(journeys, split):
    result = team_attribution(journeys, split)
    total = sum(conv for _, conv, _ in journeys)
    table = result.sales_split().set_index("model")
    if total == 0:
        assert table.empty
        return
    ch = result.channels.set_index("channel")
    all_sales = ch.index[ch["n_sales_touches"] == ch["n_touches"]]
    all_marketing = ch.index[ch["n_sales_touches"] == 0]
    majority_sales = ch.index[ch["is_sales_channel"]]
    for model, res in result.results.items():
        got = table.loc[model]
        assert_allclose(got.marketing_conversions + got.sales_conversions, total, rtol=1e-10)
        if split:  # every label is one team's: no credit falls on a mixed label
            assert result.mixed_channels == ()
            assert_allclose(res.credit[all_sales].sum() + res.credit[all_marketing].sum(),
                            total, rtol=1e-10)
            assert_allclose(got.sales_conversions, res.credit[all_sales].sum(), rtol=1e-10,
                            atol=1e-12)
        else:  # the old rule: a mixed channel goes whole to the team of most of its touches
            assert_allclose(got.sales_conversions, res.credit[majority_sales].sum(),
                            rtol=1e-10, atol=1e-12)
    if split:
        # Reference, per touch on the unlabelled journeys: a converting journey's sales
        # credit is its sales touches' share (linear), its first or its last touch's flag.
        per_touch = {
            "linear": sum(conv * np.mean([s for _, s in t]) for t, conv, _ in journeys),
            "first_touch": sum(conv * t[0][1] for t, conv, _ in journeys),
            "last_touch": sum(conv * t[-1][1] for t, conv, _ in journeys),
        }
        for model, expected in per_touch.items():
            assert_allclose(table.at[model, "sales_conversions"], expected, rtol=1e-10,
                            atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(data=path_tables())
def test_bootstrap_interval_contains_linear_estimate(data):
    # The linear model's credit is linear in the cell counts, so its replicates centre on the
    # estimate; the percentile interval then contains it (B = 200).
    res = at.bootstrap(data, "linear", n_boot=200, seed=0)
    ci = res.conf_int(0.05)
    assert ((ci["low"] <= res.credit + 1e-9) & (res.credit <= ci["high"] + 1e-9)).all()


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def paths_csv(tmp_path: Path) -> Path:
    file = tmp_path / "paths.csv"
    frame([("a > b", 3, 1, 30.5), ("b", 1, 2, 10.0), ("=x>a", 1, 1, 1.1)], value=True).to_csv(
        file, index=False)
    return file


def test_cli_writes_csv_with_round_trip_floats(paths_csv):
    result = runner.invoke(app, ["attribute", str(paths_csv), "--model", "markov"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "channel,conversions,share"
    expected = at.attribute(pd.read_csv(paths_csv), "markov").to_frame()
    got = [line.split(",") for line in lines[1:]]
    assert [g[0] for g in got] == ["'=x", "a", "b"]  # leading = neutralised for spreadsheets
    assert [float(g[1]) for g in got] == expected["conversions"].tolist()  # exact round-trip
    assert [float(g[2]) for g in got] == expected["share"].tolist()


def test_cli_json_with_value_column_and_out_file(paths_csv, tmp_path):
    out = tmp_path / "credit.json"
    result = runner.invoke(app, ["attribute", str(paths_csv), "--model", "shapley",
                                 "--value-col", "value", "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["channels"]
    assert list(rows[0]) == ["channel", "conversions", "value", "share"]
    assert_allclose(sum(r["value"] for r in rows), 41.6, rtol=1e-12)


def test_cli_reads_gzip_and_parquet_with_custom_columns(tmp_path):
    data = pd.DataFrame({"journey": ["x|y", "y"], "conv": [2, 1], "lost": [1, 1]})
    data.to_csv(tmp_path / "p.csv.gz", index=False)
    data.to_parquet(tmp_path / "p.parquet")
    for name in ("p.csv.gz", "p.parquet"):
        result = runner.invoke(app, ["attribute", str(tmp_path / name), "--model", "last_touch",
                                     "--path-col", "journey", "--sep", "|", "--conv-col", "conv",
                                     "--null-col", "lost"])
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[1:] == ["x,0.0,0.0", "y,3.0,1.0"]


def test_cli_unknown_model_is_a_usage_error(paths_csv):
    result = runner.invoke(app, ["attribute", str(paths_csv), "--model", "magic"])
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--conv-col", "conv"], "column conv: missing column"),
        (["--sep", ";", "--null-col", "conversions"], None),
    ],
    ids=["missing-column", "ok-other-columns"],
)
def test_cli_missing_column_is_one_line_exit_1(paths_csv, args, message):
    result = runner.invoke(app, ["attribute", str(paths_csv), "--model", "linear", *args])
    if message is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_bad_file_is_exit_1(tmp_path):
    missing = runner.invoke(app, ["attribute", str(tmp_path / "none.csv"), "--model", "linear"])
    assert missing.exit_code == 1
    assert "no such file" in missing.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("x")
    result = runner.invoke(app, ["attribute", str(bad), "--model", "linear"])
    assert result.exit_code == 1
    negative = tmp_path / "neg.csv"
    frame([("a", -1, 1)]).to_csv(negative, index=False)
    result = runner.invoke(app, ["attribute", str(negative), "--model", "linear"])
    assert result.exit_code == 1
    assert "rows 1: negative count" in result.stderr


def test_default_shapley_closed_form_equals_subset_enumeration_and_scales_past_15_channels():
    # Reference: enumeration of all 2^n coalitions (shapley_method="exact"), an independent
    # route to the same game. Tolerance: float noise.
    rng = np.random.default_rng(5)
    channels = [f"c{i}" for i in range(12)]
    paths = [">".join(rng.choice(channels, rng.integers(1, 5))) for _ in range(300)]
    frame = pd.DataFrame({"path": paths, "conversions": rng.integers(0, 5, 300), "nulls": 3})
    parsed = at.parse_paths(frame)
    closed = at.attribute(parsed, "shapley", shapley_game="conversions")
    enumerated = at.attribute(parsed, "shapley", shapley_method="exact",
                              shapley_game="conversions")
    np.testing.assert_allclose(closed.credit.to_numpy(), enumerated.credit.to_numpy(), rtol=1e-10)
    wide = [f"w{i}" for i in range(40)]
    many = pd.DataFrame(
        {"path": [">".join(rng.choice(wide, 3)) for _ in range(500)], "conversions": 1, "nulls": 1}
    )
    result = at.attribute(at.parse_paths(many), "shapley", shapley_game="conversions")
    ref = pd.Series(subset_game_shapley_closed_form(many))
    assert_allclose(result.credit[ref.index], ref, rtol=1e-10)
    assert abs(result.credit.sum() - 500) < 1e-9


def test_shapley_rate_game_past_62_channels_matches_brute_force():
    # Above 62 channels the subsets T ⊆ C are found by a sparse product instead of bitmasks.
    # Reference: rate_game_shapley_brute_force (paths of at most 3 channels, so at most 3!
    # orders each). Tolerance 1e-9.
    rng = np.random.default_rng(8)
    names = [f"w{i:02d}" for i in range(70)]
    rows = [(">".join(rng.choice(names, rng.integers(1, 4))), int(rng.integers(0, 4)),
             int(rng.integers(0, 6))) for _ in range(400)]
    rows += [(name, 1, 3) for name in names]  # every channel alone, so all 70 are seen
    data = frame(rows)
    ref = pd.Series(rate_game_shapley_brute_force(data))
    res = at.attribute(data, "shapley").credit
    assert len(res) == 70
    assert_allclose(res[ref.index], ref, rtol=1e-9)


def test_share_intervals_table_brackets_each_data_driven_share():
    # Reference: AttributionResult.conf_int(kind="share") of the same bootstrap draws; the
    # percentile interval of MIXED's shares (200 replicates) contains the point estimate for
    # both data-driven models (as in test_bootstrap_interval_contains_estimate_on_fixed_data).
    paths = at.parse_paths(MIXED)
    results = {"linear": at.attribute(paths, "linear"),
               "markov": at.bootstrap(paths, "markov", n_boot=200, seed=3),
               "shapley": at.bootstrap(paths, "shapley", n_boot=200, seed=3)}
    journeys = journey_attribution(
        paths, results,
        pd.DataFrame({"channel": paths.channels, "n_touches": 1, "n_sales_touches": 0,
                      "is_sales_channel": False}),
        n_boot=200,
    )
    table = journeys.share_intervals()
    assert list(table.columns) == ["channel", "markov_share", "markov_share_low",
                                   "markov_share_high", "shapley_share", "shapley_share_low",
                                   "shapley_share_high"]
    assert table["markov_share"].is_monotonic_decreasing
    for model in ("markov", "shapley"):
        got = table.set_index("channel")
        ci = results[model].conf_int(kind="share")
        assert_allclose(got[f"{model}_share_low"], ci["low"][got.index], rtol=1e-12)
        assert_allclose(got[f"{model}_share_high"], ci["high"][got.index], rtol=1e-12)
        assert (got[f"{model}_share_low"] <= got[f"{model}_share"]).all()
        assert (got[f"{model}_share"] <= got[f"{model}_share_high"]).all()
    shown = at.format_share_intervals(table)
    assert list(shown.columns) == ["channel", "Markov share (95 % interval)",
                                   "Shapley share (95 % interval)"]
    first = table.iloc[0]
    assert shown.iloc[0, 1] == (f"{100 * first.markov_share:.1f} % "
                                f"({100 * first.markov_share_low:.1f}–"
                                f"{100 * first.markov_share_high:.1f} %)")
    assert journeys.share_intervals(models=["linear"])["linear_share_low"].isna().all()
