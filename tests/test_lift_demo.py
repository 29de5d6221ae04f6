"""Recovery of the demo generator's planted lift effects with ``alignment.lift`` on demo data.

The demo (``alignment.demo``) plants three experiments and an SLA roll-out and writes what it
planted to ``ground_truth.json``; these tests build the unit frames and the roll-out panel
from the demo's tables with the Ibis builders, analyse them, and check the planted truth
against the reported intervals. Seeds make every number deterministic.

Reference values come from ``ground_truth.json``; each tolerance is the reported 95 %
interval. The small scale (seed 7) is too small for informative intervals (the account
experiment's relative interval is more than 100 points wide, the person experiments' 35-50
points); the medium scale gives intervals narrower than 40 points, so coverage is checked on
both and informativeness on the medium scale.

The demo plants no rep- or region-randomised experiment; the builders for those designs are
checked on the demo's tables with seeded A/A assignments of its users and accounts (membership
against pandas, the interval against the true lift of 0).
"""

from __future__ import annotations

import ast
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from alignment import lift, params, plots, store
from alignment.demo import generate_demo

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "conversion_lift.ipynb"
STUDY_PARAMS = ROOT / "params" / "conversion_lift.yaml"


@dataclass(frozen=True)
class DemoStudy:
    """The demo's truth, its unit frames and the analyses the notebook shows."""

    folder: Path
    truth: dict
    units: dict[str, pd.DataFrame]
    results: dict[str, lift.ExperimentResult]
    rollout: lift.RolloutResult


def read_demo_study(folder: Path) -> DemoStudy:
    """Build and analyse every planted experiment (no CUPED: plain ``estimate_lift_frame``
    for person units, errors clustered by unit for account units) and the roll-out."""
    data = store.open_data(folder)
    truth = lift.read_demo_truth(folder)
    assignments = data.table("assignments")
    specs = lift.resolve_experiment_specs(
        data.execute(lift.list_experiments(assignments)), truth=truth
    )
    units = {
        spec.experiment_id: data.execute(
            lift.build_experiment_units(
                assignments, data.table("stage_events"), data.table("opportunities"),
                data.table("people"), data.table("accounts"), experiment_id=spec.experiment_id,
                outcome=spec.outcome, window_days=spec.window_days, unit_type=spec.unit_type,
                touchpoints=data.table("touchpoints"), level=spec.level,
            )
        )
        for spec in specs
    }  # fmt: skip
    results = {
        spec.experiment_id: lift.analyse_experiment(
            units[spec.experiment_id], spec, covariate=None
        )
        for spec in specs
    }
    planted = truth["sla_rollout"]
    panel = data.execute(
        lift.build_rollout_panel(
            data.table("stage_events"), data.table("people"), data.table("accounts"),
            regions=planted["regions"], start_date=planted["start_date"],
        )
    )  # fmt: skip
    return DemoStudy(folder, truth, units, results, lift.analyse_rollout(panel))


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lift_demo") / "small"
    generate_demo(folder, seed=7, scale="small")
    return folder


@pytest.fixture(scope="session")
def small_study(small_demo: Path) -> DemoStudy:
    return read_demo_study(small_demo)


@pytest.fixture(scope="session")
def medium_study(tmp_path_factory: pytest.TempPathFactory) -> DemoStudy:
    folder = tmp_path_factory.mktemp("lift_demo") / "medium"
    generate_demo(folder, seed=7, scale="medium")
    return read_demo_study(folder)


def planted_arms(study: DemoStudy) -> list[tuple[str, str, float]]:
    """(experiment, arm, planted relative lift) of every non-control arm."""
    return [
        (experiment_id, arm, spec["true_rel_lift"])
        for experiment_id, planted in study.truth["experiments"].items()
        for arm, spec in planted["arms"].items()
        if arm != planted["control_arm"]
    ]


def rel_interval(study: DemoStudy, experiment_id: str, arm: str) -> tuple[float, float]:
    row = study.results[experiment_id].summary().set_index("arm").loc[arm]
    return row.rel_ci_low, row.rel_ci_high


# --------------------------------------------------------------------------------------------
# design


def test_demo_experiments_are_read_with_their_planted_outcomes(small_study):
    specs = {r.experiment_id: r.spec for r in small_study.results.values()}
    assert {k: (s.unit_type, s.outcome, s.window_days) for k, s in specs.items()} == {
        "exp_nurture_cadence": ("person", "SQL", 60),
        "exp_sdr_outreach_script": ("person", "meeting", 30),
        "exp_joint_account_meetings": ("account", "opportunity_created", 90),
    }
    assert all(s.source == "demo truth" for s in specs.values())


@pytest.mark.parametrize("scale", ["small", "medium"])
def test_sample_ratio_check_passes_for_every_planted_experiment(scale, request):
    study = request.getfixturevalue(f"{scale}_study")
    for experiment_id, result in study.results.items():
        planted = study.truth["experiments"][experiment_id]["arms"]
        # Reference: the demo's unit counts per arm. Tolerance: exact.
        assert result.srm.counts.to_dict() == {a: v["n_units"] for a, v in planted.items()}
        assert not result.srm.is_mismatch, (experiment_id, result.srm.p_value)


# --------------------------------------------------------------------------------------------
# planted experiment effects


PLANTED_ARMS = [
    ("exp_nurture_cadence", "treatment"),
    ("exp_sdr_outreach_script", "script_a"),
    ("exp_sdr_outreach_script", "script_b"),
    ("exp_joint_account_meetings", "treatment"),
]


def test_every_planted_treatment_arm_is_checked(small_study):
    assert sorted((e, a) for e, a, _ in planted_arms(small_study)) == sorted(PLANTED_ARMS)


@pytest.mark.parametrize("scale", ["small", "medium"])
@pytest.mark.parametrize(("experiment_id", "arm"), PLANTED_ARMS)
def test_interval_covers_the_planted_lift(scale, experiment_id, arm, request):
    study = request.getfixturevalue(f"{scale}_study")
    planted = study.truth["experiments"][experiment_id]["arms"][arm]["true_rel_lift"]
    low, high = rel_interval(study, experiment_id, arm)
    # Reference: ground_truth.json true_rel_lift (seed 7). Tolerance: the 95 % interval of
    # the relative lift (delta method; person units: estimate_lift_frame, account units:
    # clustered by account). Each check fails by chance 5 % of the time: a failure after a
    # change to the demo generator means "look", and may be chance.
    assert low <= planted <= high, (low, planted, high)


@pytest.mark.parametrize(("experiment_id", "arm"), PLANTED_ARMS)
def test_medium_demo_intervals_are_informative(medium_study, experiment_id, arm):
    low, high = rel_interval(medium_study, experiment_id, arm)
    # The small demo's intervals are too wide to say much (the account experiment's spans
    # more than 100 points); the medium demo's are narrower than 40 points.
    assert high - low < 0.4


@pytest.mark.parametrize("experiment_id", ["exp_nurture_cadence", "exp_joint_account_meetings"])
def test_medium_demo_control_rate_matches_the_planted_rate(medium_study, experiment_id):
    result = medium_study.results[experiment_id]
    control = result.arms.results[next(iter(result.arms.results))]
    planted = medium_study.truth["experiments"][experiment_id]["control_rate"]
    # Reference: the planted expected control rate (model probability averaged over units).
    # Tolerance: 3 standard errors of the measured rate. (The outreach experiment is left
    # out: its "meeting" outcome also counts account executives' meetings during
    # opportunities, which the planted rate leaves out, so its measured rate is higher.)
    assert abs(control.control_rate - planted) < 3 * control.control_se


def test_account_experiment_is_analysed_with_clustered_errors(small_study):
    result = small_study.results["exp_joint_account_meetings"]
    assert result.method == "ols-cluster"
    # Its outcome (an opportunity created) happens to accounts: one row per account, so each
    # cluster holds one row and the clustered errors are robust ones.
    assert result.level == "account" and result.spec.level == "account"
    assert result.arms.results["treatment"].n_clusters == result.n_analysed
    assert set(result.design().analysis) == {"accounts, robust (HC1)"}


# --------------------------------------------------------------------------------------------
# cluster-randomised experiments over people, on the demo's tables (A/A assignments)
#
# The demo plants no rep- or region-randomised experiment: it has 7 SDRs at the small scale,
# too few clusters for a cluster-robust interval to mean much. These tests randomise the
# demo's users and accounts into two arms with a seed (an A/A experiment: the true lift is 0
# by construction), build the people of each cluster with the Ibis builders on the demo's
# DuckDB tables, and check the membership against pandas and the interval against 0.

AA_ASSIGNED_AT = pd.Timestamp("2026-01-05", tz="UTC")


def aa_assignments(ids: pd.Series, unit_type: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = ids.astype(str).sort_values().reset_index(drop=True)
    arm = np.where(rng.permutation(len(ids)) < len(ids) // 2, "control", "treatment")
    return pd.DataFrame({"experiment_id": f"aa_{unit_type}", "unit_type": unit_type,
                         "unit_id": ids, "arm": arm, "assigned_at": AA_ASSIGNED_AT})  # fmt: skip


def aa_units(folder: Path, assignments: pd.DataFrame, unit_type: str) -> pd.DataFrame:
    import ibis

    data = store.open_data(folder)
    return data.execute(
        lift.build_experiment_units(
            ibis.memtable(assignments), data.table("stage_events"), data.table("opportunities"),
            data.table("people"), data.table("accounts"), experiment_id=f"aa_{unit_type}",
            outcome="SQL", window_days=60, unit_type=unit_type,
            touchpoints=data.table("touchpoints"),
        )
    )  # fmt: skip


def test_rep_randomised_people_are_each_reps_first_worked_leads(small_demo):
    users = pd.read_parquet(small_demo / "users.parquet")
    assignments = aa_assignments(users.user_id, "user", seed=11)
    units = aa_units(small_demo, assignments, "user")
    # Reference: pandas over the demo's tables. Every (person, user, time) a user owned a
    # stage event or made a touch, at or after the user's assignment; each person goes to the
    # earliest such work (ties: the smallest user id), whose time starts the window.
    stages = pd.read_parquet(small_demo / "stage_events.parquet")
    touches = pd.read_parquet(small_demo / "touchpoints.parquet")
    columns = ["person_id", "user_id", "when"]
    owned = stages.dropna(subset=["owner_user_id"])[["person_id", "owner_user_id", "entered_at"]]
    touched = touches.dropna(subset=["user_id"])[["person_id", "user_id", "ts"]]
    work = pd.concat([owned.set_axis(columns, axis=1), touched.set_axis(columns, axis=1)])
    work = work[work.user_id.isin(assignments.unit_id) & (work.when >= AA_ASSIGNED_AT)]
    first = work.sort_values(["person_id", "when", "user_id"]).drop_duplicates("person_id")
    got = units.set_index("unit_id").sort_index()
    expected = first.set_index("person_id").sort_index()
    assert got.index.tolist() == expected.index.tolist()
    assert got.cluster_id.tolist() == expected.user_id.tolist()
    assert (got.assigned_at == expected.when).all()
    arms = assignments.set_index("unit_id").arm
    assert (got.arm == arms.reindex(got.cluster_id).to_numpy()).all()
    spec = lift.ExperimentSpec("aa_user", unit_type="user", outcome="SQL", window_days=60)
    result = lift.analyse_experiment(units, spec, segments=())
    row = result.summary().iloc[0]
    assert (row.method, row.level) == ("ols-cluster", "person")
    assert row.n_clusters == units[~units.is_censored].cluster_id.nunique() > 10
    assert "clustered intervals tend to be too narrow" in result.describe()[1]  # < 30 users
    # Reference: the A/A truth, a relative lift of 0. Tolerance: the 95 % interval (people,
    # errors clustered by user; fails by chance 5 % of the time, deterministic by seed).
    assert row.rel_ci_low <= 0 <= row.rel_ci_high, (row.rel_ci_low, row.rel_ci_high)


def test_account_randomised_people_are_the_accounts_people(small_demo):
    accounts = pd.read_parquet(small_demo / "accounts.parquet")
    assignments = aa_assignments(accounts.account_id, "account", seed=12)
    units = aa_units(small_demo, assignments, "account")
    # Reference: pandas. Every person of every assigned account; the window starts at the
    # later of the assignment and the person's created_at.
    people = pd.read_parquet(small_demo / "people.parquet").set_index("person_id").sort_index()
    got = units.set_index("unit_id").sort_index()
    assert got.index.tolist() == people.index.tolist()
    assert got.cluster_id.tolist() == people.account_id.tolist()
    start = people.created_at.where(people.created_at > AA_ASSIGNED_AT, AA_ASSIGNED_AT)
    assert (got.assigned_at == start).all()
    spec = lift.ExperimentSpec("aa_account", unit_type="account", outcome="SQL", window_days=60)
    result = lift.analyse_experiment(units, spec, segments=())
    row = result.summary().iloc[0]
    assert (row.method, row.level) == ("ols-cluster", "person")
    assert result.srm.counts.sum() == units.cluster_id.nunique()
    # Reference: the A/A truth, 0. Tolerance: the 95 % interval, clustered by account.
    assert row.rel_ci_low <= 0 <= row.rel_ci_high, (row.rel_ci_low, row.rel_ci_high)


# --------------------------------------------------------------------------------------------
# planted SLA roll-out


@pytest.mark.parametrize("scale", ["small", "medium"])
def test_did_interval_covers_the_planted_sla_effect(scale, request):
    study = request.getfixturevalue(f"{scale}_study")
    planted = study.truth["sla_rollout"]
    did = study.rollout.did
    # Reference: ground_truth.json sla_rollout.true_effect, +0.08 on P(SQL | SAL) for MQLs
    # from the start date in the SLA regions. Tolerance: the 95 % interval of the wild cluster
    # bootstrap (4 regions, Webb weights, all 1,296 draws; wide by necessity).
    assert did.ci_low <= planted["true_effect"] <= did.ci_high, (did.ci_low, did.ci_high)
    assert set(study.rollout.regions) == set(planted["regions"])
    assert did.n_clusters == 4 and did.method == "twfe"
    assert did.cov_type == "cluster-wild-bootstrap" and did.bootstrap.n_draws == 1_296
    assert did.bootstrap.is_enumerated and did.bootstrap.weights == "webb"
    assert "wild cluster bootstrap" in study.rollout.describe()


# --------------------------------------------------------------------------------------------
# figures and the notebook


def test_lift_figures_have_titles_and_axis_labels(small_study):
    import matplotlib.pyplot as plt

    forest = pd.concat([r.segment_summary() for r in small_study.results.values()])
    figures = [
        plots.plot_lift_forest(forest),
        plots.plot_event_study(small_study.rollout.event.summary(), did_estimate=0.05),
        plots.plot_rollout_trends(small_study.rollout.panel),
    ]
    for fig in figures:
        assert fig.get_suptitle() or all(ax.get_title() for ax in fig.axes)
        assert fig.axes[-1].get_xlabel() and (fig.axes[-1].get_ylabel() or len(fig.axes) > 1)
        plt.close(fig)


def notebook_parameters() -> set[str]:
    """Names assigned in the notebook's cell tagged ``parameters``."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    tree = ast.parse(cell.source)
    return {node.target.id for node in tree.body if isinstance(node, ast.AnnAssign)}


def test_study_params_name_only_notebook_parameters():
    study = params.load_study_params(STUDY_PARAMS)
    assert study.notebook == "conversion_lift"
    assert set(study.parameters) <= notebook_parameters()
    assert {"quarter", "data_dir", "params_file", "output_dir"} <= notebook_parameters()


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def executed_outputs(path: Path) -> dict[str, str]:
    """Markdown shown by each labelled cell of an executed notebook, by its label line."""
    executed = nbformat.read(path, as_version=4)
    return {
        c.source.splitlines()[0].removeprefix("#| label: "): "".join(
            o.get("data", {}).get("text/markdown", "") for o in c.outputs
        )
        for c in executed.cells
        if c.cell_type == "code" and c.source.startswith("#| label:")
    }


@pytest.mark.slow
def test_notebook_runs_on_the_demo_with_the_study_params(small_demo, tmp_path):
    from alignment import pipeline

    parameters = params.load_study_params(STUDY_PARAMS).parameters | {
        "data_dir": str(small_demo), "params_file": str(ROOT / "params" / "2026Q3.yaml"),
        "output_dir": str(tmp_path / "out"),
    }  # fmt: skip
    pipeline.run_notebook("conversion_lift", parameters, tmp_path / "executed.ipynb")
    shown = executed_outputs(tmp_path / "executed.ipynb")
    assert shown["tbl-lift-results"].count("exp\\_") == 4  # one row per treatment arm
    assert "inconclusive" in shown["txt-lift-verdicts"]
    assert "wild cluster bootstrap" in shown["tbl-sla-rollout-did"]
    assert shown["tbl-lift-srm"] and shown["tbl-lift-design"]  # embedded before any result
    figures = {p.name for p in (tmp_path / "out" / "figures").iterdir()}
    assert {"fig-lift-forest.png", "fig-sla-event-study.png"} <= figures
    kpis = pd.read_csv(tmp_path / "out" / "tables" / "kpis-conversion_lift.csv")
    assert set(kpis.quarter) == {"2025Q4", "2026Q1", "2026Q2", "2026Q3"}
    assert kpis.source.str.startswith("conversion_lift#").all()


@pytest.mark.slow
def test_notebook_without_assignments_says_so(small_demo, tmp_path):
    from alignment import pipeline

    data = tmp_path / "data"
    shutil.copytree(small_demo, data)
    (data / "assignments.parquet").unlink()
    (data / "ground_truth.json").unlink()  # not demo data any more: no planted roll-out
    out = tmp_path / "out"
    pipeline.run_notebook(
        "conversion_lift",
        {"data_dir": str(data), "params_file": str(ROOT / "params" / "2026Q3.yaml"),
         "output_dir": str(out)},
        tmp_path / "executed.ipynb",
    )  # fmt: skip
    shown = executed_outputs(tmp_path / "executed.ipynb")
    assert "No experiments in this export." in shown["tbl-lift-results"]
    assert "No experiments in this export." in shown["txt-lift-verdicts"]
    assert "No SLA roll-out given" in shown["tbl-sla-rollout-did"]
    kpis = pd.read_csv(out / "tables" / "kpis-conversion_lift.csv")
    assert (kpis.value == 0).all() and set(kpis.unit) == {"count"}
