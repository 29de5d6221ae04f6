"""Synthetic B2B sales-marketing data with known ground truth (``alignment demo``).

`generate_demo` writes one Parquet file per table of the data contract
(``docs/data_contract.md``) plus ``ground_truth.json``, which states what was planted so
that every study can be checked against the truth. The data are deterministic by seed: the
same seed and scale give byte-identical files; nothing depends on today's date, the wall
clock, hash randomisation or dict order.

Calendar (fixed, never "today")
-------------------------------
Leads are created from 2025-07-01; marketing activity covers five quarters, 2025Q3 to
2026Q3 (the report quarter); sales follow-up continues after 2026-09-30; the export cut-off
is 2026-11-15T00:00:00Z and nothing is stamped at or after it. All timestamps are UTC,
whole seconds.

Generative story (one function per step)
----------------------------------------
1. Accounts: segment ~ Cat(SMB .55, MM .32, ENT .13), region ~ Cat(NA .40, EMEA .30,
   APAC .18, LATAM .12), industry; people per account ``lo_s + Poisson(mu_s)``, capped
   (SMB 1 + Poisson(2.5) <= 8, MM 2 + Poisson(4) <= 8, ENT 3 + Poisson(6) <= 14).
2. People (leads): persona ~ Cat, ``created_at`` in [2025-07-01, 2026-09-30) with mild
   growth; ``email_hash`` = sha256 of a synthetic, lower-cased e-mail.
3. Planned marketing touches: the lead-creating touch at ``created_at`` (channel from the
   lead-source mix); then each channel independently reaches the lead with probability
   ``reach_c * persona multiplier`` and touches it ``1 + Poisson(extra_c)`` times, uniformly
   over a journey of U(30, 180) days; touch type ~ Cat(row of the channel). Display and
   paid social reach few leads but often. None after 2026-09-30.
4. The CURRENT MQL RULE (deliberately imperfect): a lead becomes MQL at the first touch at
   which it has at least 3 engagement touches (form_fill, content_download, email_click,
   webinar_attend, event_visit, referral), or at a webinar_attend / event_visit touch.
   Marketing stops touching a lead at its MQL (hand-off to sales); the planned touches
   after it are not recorded but are used for counterfactuals.
5. Latent log-odds of qualifying, from what is known at the MQL (for non-MQLs: all their
   touches)::

       eta = b0 + b_segment + b_industry + b_persona
             + gamma * min(n_engagement, 6) + sum_c beta_c * exposed_c

   with the values in ``ground_truth.json["scoring"]`` (``exposed_c``: channel ``c``
   touched the lead, ``n_engagement``: engagement touches, both counted strictly before
   the touch that fires the MQL, as a score known at the MQL instant sees them).
6. Sales follow-up of an MQL in region ``r`` (sigma is the logistic function)::

       worked ~ Bernoulli(1 - u_r)         u_APAC = .45 (over capacity), else .03
       first sales touch = MQL + LogNormal(log(median_r hours), .9), capped at 30 days
       P(SAL | worked)       = a = .75 * sigma(eta + 1.0) * m_nurture
       P(meeting | SAL)      = g = .55 * m_script
       P(SQL | SAL, meeting) = b = .80 * sigma(eta + 1.2*meeting + .3*call + .1*email)
                                   + trend_quarter(MQL) + .08 * SLA

   ``SLA`` = the lead's region adopted the SLA and its MQL is on/after 2026-01-01; there its
   first response is also faster. ``m_*`` are the planted experiment multipliers. A worked
   lead that is not accepted is Disqualified with a reason drawn from a mix that depends on
   its lead-source channel (students: "Student / job seeker" with probability .85).
   "Bad timing" leads are Recycled with probability .6 (30-60 days later), and a quarter
   of those re-engage 100-200 days after the disqualification: MQL, SAL and SQL again.
7. The probability that drives the channel ground truth is therefore exactly::

       P(SQL) = MQL * (1 - u_r) * [a * (g * b(1) + (1 - g) * b(0))
                                   + (1 - a) * pi_bad_timing * .6 * .25]

   A channel's ``incremental_effect`` is the mean over exposed people (touched by the
   channel up to and including their MQL touch) of ``P(SQL)`` with their history minus
   ``P(SQL)`` with that channel's touches removed (the MQL rule,
   ``eta`` and the MQL date recomputed; person, lead source and experiment arms held fixed).
   For sales channels the same difference is taken on ``b`` (meeting: among accepted leads;
   call, e-mail: among worked leads, weighted by ``a``).
8. Opportunities: an account's SQLs less than 90 days apart form one buying cycle; the cycle
   opens an opportunity with probability ``p_segment`` (SMB .55, MM .65, ENT .75), times
   1.2 in treated accounts of ``exp_joint_account_meetings`` when the opportunity would be
   created within 90 days of assignment. The buying group is the cycle's SQL people plus
   other people of the account. Won with probability
   ``sigma(w_segment + 1.0 * [buying group viewed an effective asset])``.
9. Content: reps share assets during opportunities; buyers view, download, print and
   forward them (linked by ``share_id``); some assets are never used (no asset event at
   all; every other asset has at least one), some stale ones are still shared in the report
   quarter after they became stale (no other asset is stale by its end).

Realistic quirks, each at a low rate: exact duplicate stage events, SAL stamped at the
MQL's second, SAL recorded minutes before the MQL, sales touches without a user (~1 %).

References
----------
.. [1] Anderl, E., Becker, I., von Wangenheim, F., Schumann, J. H. (2016). Mapping the
   customer journey: lessons learned from graph-based online attribution modeling.
   International Journal of Research in Marketing, 33(3), 457-474.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alignment.schema import TABLES  # every contract table, in the contract's order

log = logging.getLogger(__name__)

__all__ = ["DemoSummary", "ScaleSizes", "TABLES", "generate_demo", "scale_sizes"]

# --------------------------------------------------------------------------- calendar

DAY = 86_400  # seconds
HOUR = 3_600  # seconds
WEEK = 7 * DAY


def _epoch(day: str) -> int:
    """Seconds since 1970-01-01 UTC of midnight UTC on ``day`` (``YYYY-MM-DD``)."""
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())


QUARTERS = ("2025Q3", "2025Q4", "2026Q1", "2026Q2", "2026Q3")
QUARTER_STARTS = np.array(
    [_epoch(d) for d in ("2025-07-01", "2025-10-01", "2026-01-01", "2026-04-01", "2026-07-01")]
    + [_epoch("2026-10-01")]
)  # the last entry is the end of the report quarter (exclusive)
REPORT_QUARTER = "2026Q3"
ACTIVITY_START = int(QUARTER_STARTS[0])
ACTIVITY_END = int(QUARTER_STARTS[-1])  # marketing activity and lead creation stop here
REPORT_QUARTER_START = int(QUARTER_STARTS[-2])
REPORT_QUARTER_END = ACTIVITY_END
EXPORTED_AT = _epoch("2026-11-15")  # every timestamp is strictly before the cut-off
N_WEEKS = (ACTIVITY_END - ACTIVITY_START) / WEEK
ACCOUNTS_FROM = _epoch("2018-01-01")

# --------------------------------------------------------------------------- vocabulary

SCALES = ("small", "medium", "large")

REGIONS = ("NA", "EMEA", "APAC", "LATAM")
REGION_P = (0.40, 0.30, 0.18, 0.12)
SEGMENTS = ("SMB", "MM", "ENT")
SEGMENT_P = (0.55, 0.32, 0.13)
INDUSTRIES = (
    "Software",
    "Financial Services",
    "Healthcare",
    "Manufacturing",
    "Retail",
    "Education",
    "Public Sector",
    "Media",
)
INDUSTRY_P = (0.22, 0.15, 0.13, 0.14, 0.12, 0.08, 0.08, 0.08)
PERSONAS = ("Executive", "Manager", "Practitioner", "Procurement", "Consultant", "Student")
PERSONA_P = (0.12, 0.27, 0.38, 0.08, 0.07, 0.08)
STUDENT = PERSONAS.index("Student")
# (low, Poisson mean, cap) of people per account, by segment
PEOPLE_PER_ACCOUNT = ((1, 2.5, 8), (2, 4.0, 8), (3, 6.0, 14))

MARKETING_CHANNELS = (
    "paid_search",
    "paid_social",
    "display",
    "organic_search",
    "email",
    "webinar",
    "events",
    "content_syndication",
    "partner_referral",
)
SALES_CHANNELS = ("sales_call", "sales_email", "sales_meeting")
CHANNELS = MARKETING_CHANNELS + SALES_CHANNELS
N_MKT = len(MARKETING_CHANNELS)
SALES_CALL, SALES_EMAIL, SALES_MEETING = (CHANNELS.index(c) for c in SALES_CHANNELS)
CHANNEL_LABELS = (
    "Paid Search",
    "Paid Social",
    "Display",
    "SEO & Content",
    "Email Nurture",
    "Webinars",
    "Field Events",
    "Content Syndication",
    "Partner Program",
)

TOUCH_TYPES = (
    "ad_click",
    "form_fill",
    "social_engagement",
    "ad_impression",
    "web_visit",
    "content_download",
    "email_open",
    "email_click",
    "webinar_register",
    "webinar_attend",
    "event_visit",
    "referral",
    "call",
    "sales_email",
    "meeting",
)
_T = {name: i for i, name in enumerate(TOUCH_TYPES)}
# touch-type mix of each marketing channel (rows follow MARKETING_CHANNELS)
CHANNEL_TOUCH_TYPES: tuple[dict[str, float], ...] = (
    {"ad_click": 0.80, "form_fill": 0.20},
    {"ad_click": 0.55, "social_engagement": 0.45},
    {"ad_impression": 0.85, "ad_click": 0.15},
    {"web_visit": 0.75, "content_download": 0.25},
    {"email_open": 0.88, "email_click": 0.12},
    {"webinar_register": 0.45, "webinar_attend": 0.55},
    {"event_visit": 1.0},
    {"content_download": 1.0},
    {"referral": 1.0},
)
SALES_TOUCH_TYPE = {
    SALES_CALL: _T["call"],
    SALES_EMAIL: _T["sales_email"],
    SALES_MEETING: _T["meeting"],
}
ENGAGEMENT_TYPES = (
    "form_fill",
    "content_download",
    "email_click",
    "webinar_attend",
    "event_visit",
    "referral",
)
TRIGGER_TYPES = ("webinar_attend", "event_visit")
IS_ENGAGEMENT = np.isin(np.arange(len(TOUCH_TYPES)), [_T[t] for t in ENGAGEMENT_TYPES])
IS_TRIGGER = np.isin(np.arange(len(TOUCH_TYPES)), [_T[t] for t in TRIGGER_TYPES])
MQL_MIN_ENGAGEMENT = 3
CURRENT_MQL_RULE = (
    "MQL when a lead has at least 3 engagement touches (form fill, content download, "
    "e-mail click, webinar attendance, event visit, partner referral), or attends a "
    "webinar or an event"
)

# Each marketing channel reaches a lead independently (probability CHANNEL_REACH times the
# persona's multiplier, capped at .95) and then touches it 1 + Poisson(extra) times, spread
# uniformly over the lead's journey window. The lead-creating touch comes on top, from
# SOURCE_WEIGHTS (times the same persona multipliers).
CHANNEL_REACH = (0.35, 0.12, 0.12, 0.45, 0.65, 0.20, 0.12, 0.15, 0.07)
CHANNEL_EXTRA_TOUCHES = (1.0, 1.0, 1.0, 3.0, 8.0, 0.3, 0.1, 0.5, 0.0)
SOURCE_WEIGHTS = (0.24, 0.10, 0.05, 0.22, 0.02, 0.10, 0.06, 0.13, 0.08)
PERSONA_CHANNEL_MULT = (
    (1.0, 0.7, 1.0, 0.8, 0.9, 1.3, 2.5, 0.8, 1.5),  # Executive
    (1.0, 1.0, 1.0, 1.0, 1.0, 1.3, 1.0, 1.0, 1.0),  # Manager
    (1.0, 1.0, 1.0, 1.3, 1.0, 1.0, 0.8, 1.3, 0.8),  # Practitioner
    (1.0, 0.8, 1.0, 1.0, 1.3, 0.6, 0.5, 1.0, 1.0),  # Procurement
    (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0),  # Consultant
    (0.8, 2.5, 1.0, 1.5, 0.8, 0.8, 0.3, 1.0, 0.2),  # Student
)
SEGMENT_TOUCH_MULT = np.array([0.9, 1.0, 1.25])  # on the extra touches
JOURNEY_DAYS = (30.0, 180.0)  # a lead's marketing journey lasts U(30, 180) days
LEAD_GROWTH_POWER = 0.9  # created_at = start + U**0.9 * span: slowly growing inflow

# --------------------------------------------------------------------------- model

INTERCEPT = -1.7
SEGMENT_LOG_ODDS = np.array([0.0, 0.7, 1.2])
INDUSTRY_LOG_ODDS = np.array([0.7, 0.5, 0.0, -0.4, -0.6, -1.0, -0.8, 0.0])
PERSONA_LOG_ODDS = np.array([1.4, 0.9, 0.0, -0.9, -1.1, -3.0])
ENGAGEMENT_LOG_ODDS = 0.15  # per engagement touch strictly before the MQL touch
ENGAGEMENT_CAP = 6
MARKETING_LOG_ODDS = np.array([0.2, 0.0, 0.0, 0.3, 0.1, 0.9, 0.9, 0.0, 0.7])
SALES_LOG_ODDS = {"sales_call": 0.3, "sales_email": 0.1, "sales_meeting": 1.2}

SAL_CEILING, SAL_SHIFT = 0.75, 1.0
MEETING_BASE = 0.55
SQL_CEILING, SQL_SHIFT = 0.80, 0.0
SQL_TREND = np.array([0.0, 0.01, 0.02, 0.02, 0.03])  # by MQL quarter, common to all regions

UNWORKED_SHARE = np.array([0.03, 0.03, 0.45, 0.03])  # by region
OVER_CAPACITY_REGIONS = ("APAC",)
RESPONSE_MEDIAN_HOURS = np.array([9.0, 9.0, 60.0, 12.0])
RESPONSE_SIGMA = 0.9
RESPONSE_CAP_DAYS = 30
SLA_HOURS = 24
SLA_REGIONS = ("EMEA", "LATAM")
SLA_START = _epoch("2026-01-01")
SLA_EFFECT = 0.08  # absolute, on P(SQL | SAL)
SLA_RESPONSE_MEDIAN_HOURS = 2.5
IS_SLA_REGION = np.isin(np.arange(len(REGIONS)), [REGIONS.index(r) for r in SLA_REGIONS])

MAX_SDR_TOUCHES = 6  # an SDR sequence: 1 + Binomial(5, .5) calls and e-mails
FIRST_CALL_P, CALL_P = 0.55, 0.45
SDR_GAP_DAYS = 1.5
SDR_TARGET_LOAD = 40.0  # MQLs per SDR per week a region aims for
SDR_UTILISATION = 0.7  # inflow / capacity in regions with enough SDRs
OVERLOAD = 2.5  # inflow / capacity in the over-capacity region
AE_TARGET_LOAD = 8.0  # SQLs per AE per week
AE_UTILISATION = 0.7

DQ_REASONS = (
    "No budget",
    "Not a decision maker",
    "Bad contact data",
    "Chose competitor",
    "Bad timing",
    "Student / job seeker",
    "No response",
)
BAD_TIMING = DQ_REASONS.index("Bad timing")
DQ_BASE_MIX = (0.20, 0.17, 0.08, 0.10, 0.18, 0.04, 0.23)
DQ_CHANNEL_MIX = {  # channels whose leads disqualify differently
    "paid_social": (0.12, 0.12, 0.22, 0.06, 0.12, 0.14, 0.22),
    "display": (0.16, 0.15, 0.14, 0.08, 0.15, 0.08, 0.24),
    "content_syndication": (0.14, 0.18, 0.16, 0.06, 0.12, 0.04, 0.30),
    "partner_referral": (0.24, 0.10, 0.03, 0.22, 0.25, 0.01, 0.15),
    "events": (0.22, 0.20, 0.04, 0.14, 0.24, 0.02, 0.14),
}
STUDENT_REASON_P = 0.85
P_RECYCLE = 0.6
P_REENGAGE = 0.25

CYCLE_GAP_DAYS = 90
OPP_CREATE_P = np.array([0.55, 0.65, 0.75])
OPP_DAYS_MEDIAN = np.array([35.0, 70.0, 120.0])
AMOUNT_MEDIAN = np.array([12_000.0, 55_000.0, 240_000.0])
WIN_LOG_ODDS = np.array([-0.5, -0.8, -1.1])
EFFECTIVE_ASSET_WIN_LOG_ODDS = 1.0
BUYING_GROUP_EXTRA = np.array([0.8, 2.0, 4.0])
AE_TOUCHES_PER_OPP = np.array([2.0, 4.0, 7.0])
SHARES_PER_OPP = np.array([1.5, 2.5, 4.0])
ROLES = ("Decision Maker", "Champion", "Influencer", "User")
PERSONA_ROLE = np.array([0, 2, 3, 2, 2, 3])  # by persona: Executive -> Decision Maker, ...
OPEN_STAGES = ("Discovery", "Proposal", "Negotiation")

# experiments ---------------------------------------------------------------------------
NURTURE = "exp_nurture_cadence"
NURTURE_FROM, NURTURE_TO = _epoch("2025-10-01"), _epoch("2026-09-01")  # MQLs assigned
NURTURE_ARMS = {"control": (0.5, 0.0), "treatment": (0.5, 0.15)}  # arm: (share, rel lift)
NURTURE_WINDOW_DAYS = 60
OUTREACH = "exp_sdr_outreach_script"
OUTREACH_FROM, OUTREACH_TO = _epoch("2026-01-01"), _epoch("2026-09-15")  # first sales touch
OUTREACH_ARMS = {"control": (1 / 3, 0.0), "script_a": (1 / 3, 0.20), "script_b": (1 / 3, 0.0)}
OUTREACH_WINDOW_DAYS = 30
JOINT = "exp_joint_account_meetings"
JOINT_ASSIGNED_AT = _epoch("2026-01-05")
JOINT_ARMS = {"control": (0.5, 0.0), "treatment": (0.5, 0.20)}
JOINT_WINDOW_DAYS = 90

# assets ------------------------------------------------------------------------------
ASSET_TYPES = ("case_study", "whitepaper", "deck", "one_pager", "video", "pricing", "battlecard")
ASSET_TYPE_COUNTS = (12, 9, 9, 10, 8, 5, 7)  # 60 assets
ASSET_STAGE = (
    "consideration",
    "awareness",
    "consideration",
    "consideration",
    "awareness",
    "decision",
    "decision",
)
ASSET_TEAM = (
    "marketing",
    "marketing",
    "sales",
    "product_marketing",
    "marketing",
    "sales",
    "product_marketing",
)
ASSET_PAGES = ((2, 6), (8, 24), (12, 30), (1, 2), None, (2, 4), (1, 3))
MARKETING_ASSET_TYPES = ("case_study", "whitepaper", "video")
N_NEVER_USED, N_STALE_OLD, N_STALE_EXPIRED, N_EFFECTIVE = 7, 3, 2, 5
STALE_DAYS = 365
HOSTILE_TITLES = ("<script>alert(1)</script> pricing sheet", '=HYPERLINK("http://x")')
EVENT_TYPES = (
    "internal_view",
    "share",
    "external_view",
    "download",
    "print",
    "forward",
    "present",
)
_E = {name: i for i, name in enumerate(EVENT_TYPES)}
DEVICES = ("desktop", "mobile", "tablet")
DEVICE_P = (0.62, 0.30, 0.08)

# quirks ------------------------------------------------------------------------------
DUPLICATE_STAGE_EVENT_SHARE = 0.003
TIED_SAL_SHARE = 0.005
EARLY_SAL_SHARE = 0.004
SALES_TOUCH_WITHOUT_USER_SHARE = 0.01

STAGES = ("Lead", "MQL", "SAL", "SQL", "Opportunity", "Customer", "Disqualified", "Recycled")
_S = {name: i for i, name in enumerate(STAGES)}
TEAMS = ("marketing", "sdr", "sales")
MARKETING_USERS_PER_REGION = 2

# name pools (synthetic)
ACCOUNT_WORDS = (
    (
        "Blue",
        "Silver",
        "Northern",
        "Bright",
        "Global",
        "Apex",
        "Summit",
        "Cedar",
        "Harbor",
        "Quantum",
        "Pioneer",
        "Crimson",
        "Evergreen",
        "Atlas",
        "Nova",
        "Granite",
    ),
    (
        "Harbor",
        "Peak",
        "River",
        "Stone",
        "Bridge",
        "Field",
        "Wave",
        "Forge",
        "Grove",
        "Point",
        "Ridge",
        "Vale",
        "Works",
        "Labs",
        "Line",
        "Path",
    ),
    (
        "Systems",
        "Group",
        "Holdings",
        "Analytics",
        "Partners",
        "Solutions",
        "Industries",
        "Health",
        "Capital",
        "Logistics",
        "Media",
        "Retail",
        "Energy",
        "Foods",
    ),
)
QUIRKY_ACCOUNT_NAMES = ('"Smith & Sons" <Holdings>', "=SUM(A1:A9) Analytics")
FIRST_NAMES = (
    "alex",
    "maria",
    "wei",
    "fatima",
    "john",
    "aiko",
    "carlos",
    "olga",
    "priya",
    "liam",
    "sofia",
    "kwame",
    "elena",
    "omar",
    "yuki",
    "noah",
    "ines",
    "raj",
    "chloe",
    "diego",
)
LAST_NAMES = (
    "smith",
    "garcia",
    "chen",
    "khan",
    "muller",
    "tanaka",
    "silva",
    "ivanova",
    "patel",
    "obrien",
    "rossi",
    "mensah",
    "novak",
    "haddad",
    "sato",
    "jensen",
    "costa",
    "kumar",
    "martin",
    "lopez",
)
CAMPAIGN_THEMES = ("Always-on", "Product launch", "Competitive", "Retargeting", "Brand")
CAMPAIGN_BASE_COST = np.array(
    [30_000, 22_000, 18_000, 8_000, 4_000, 12_000, 45_000, 15_000, 10_000], dtype=float
)  # per channel and quarter at small scale (3,000 people), in the report currency
PRODUCTS = ("Insight Cloud", "Pipeline Pro", "DataBridge", "Signal Hub", "Forecast Studio")
TOPICS = (
    "revenue operations",
    "pipeline hygiene",
    "account-based marketing",
    "sales forecasting",
    "data governance",
    "buyer enablement",
)
COMPETITORS = ("Rivalytics", "Funnelworks", "SalesForge", "Compass CRM")

# --------------------------------------------------------------------------- scales

# number of accounts per scale; people and touches follow from the model
ACCOUNTS_PER_SCALE = {"small": 620, "medium": 6_200, "large": 260_000}
CAMPAIGNS_PER_CHANNEL_QUARTER = {"small": 2, "medium": 3, "large": 4}
# recorded touchpoints per person (marketing + sales), measured on medium scale, seed 7
TOUCHES_PER_PERSON = 8.8
TOUCH_ROW_GROUP = 1_000_000


@dataclass(frozen=True, slots=True)
class ScaleSizes:
    """Planned sizes of one demo scale (expected values: the data are random).

    Attributes
    ----------
    scale : str
        ``small``, ``medium`` or ``large``.
    n_accounts : int
        Accounts generated (exact).
    expected_people : int
        Expected people (leads): ``n_accounts`` times the mean people per account.
    expected_touchpoints : int
        Expected touchpoint rows: ``expected_people`` times `TOUCHES_PER_PERSON`, the
        rate measured on the medium scale.
    campaigns_per_channel_quarter : int
        Campaigns per marketing channel and quarter.
    touch_row_group : int
        Rows per Parquet row group (and per written chunk) of ``touchpoints``.
    """

    scale: str
    n_accounts: int
    expected_people: int
    expected_touchpoints: int
    campaigns_per_channel_quarter: int
    touch_row_group: int


def _mean_people_per_account() -> float:
    """Expected people per account: sum over segments of P(segment) E[min(lo + X, cap)]."""
    total = 0.0
    for share, (low, mean, cap) in zip(SEGMENT_P, PEOPLE_PER_ACCOUNT, strict=True):
        pmf = [math.exp(-mean) * mean**k / math.factorial(k) for k in range(cap - low + 1)]
        head = sum(p * (low + k) for k, p in enumerate(pmf))
        total += share * (head + (1.0 - sum(pmf)) * cap)
    return total


def scale_sizes(scale: str) -> ScaleSizes:
    """Planned sizes of a demo scale.

    Parameters
    ----------
    scale : str
        One of ``small`` (~3,000 people, ~25k touchpoints, builds in about a second),
        ``medium`` (10x small) or ``large`` (>= 10 million touchpoints).

    Returns
    -------
    ScaleSizes
        Accounts (exact), expected people and touchpoints.

    Raises
    ------
    ValueError
        If ``scale`` is not a known scale.

    Examples
    --------
    >>> scale_sizes("large").expected_touchpoints >= 10_000_000
    True
    """
    if scale not in ACCOUNTS_PER_SCALE:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, not {scale!r}")
    scale = SCALES[SCALES.index(scale)]  # a plain str, even when given a str Enum member
    n_accounts = ACCOUNTS_PER_SCALE[scale]
    people = n_accounts * _mean_people_per_account()
    return ScaleSizes(
        scale=scale,
        n_accounts=n_accounts,
        expected_people=round(people),
        expected_touchpoints=round(people * TOUCHES_PER_PERSON),
        campaigns_per_channel_quarter=CAMPAIGNS_PER_CHANNEL_QUARTER[scale],
        touch_row_group=TOUCH_ROW_GROUP,
    )


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What `generate_demo` wrote.

    Attributes
    ----------
    out_dir : Path
        The published demo folder.
    seed : int
        Seed of the random generator.
    scale : str
        ``small``, ``medium`` or ``large``.
    rows : Mapping[str, int]
        Rows written per table (every name of `TABLES`).
    seconds : float
        Wall-clock seconds the build took (not part of the data).
    """

    out_dir: Path
    seed: int
    scale: str
    rows: Mapping[str, int]
    seconds: float


Progress = Callable[[str, float], None]


def generate_demo(
    out_dir: Path,
    seed: int = 7,
    scale: str = "small",
    progress: Progress | None = None,
) -> DemoSummary:
    """Write a synthetic B2B data folder and its ``ground_truth.json`` to ``out_dir``.

    Parameters
    ----------
    out_dir : Path
        Folder to create or replace. An existing folder is replaced only after the new one
        is complete, and only if it is empty or a previous demo (holds
        ``ground_truth.json``).
    seed : int, default 7
        Seed (>= 0). Same seed and scale give byte-identical files.
    scale : str, default "small"
        ``small``, ``medium`` or ``large`` (see `scale_sizes`).
    progress : callable, optional
        Called as ``progress(step_name, fraction_done)`` between steps, fraction in [0, 1].

    Returns
    -------
    DemoSummary
        Folder, seed, scale, rows per table and seconds taken.

    Raises
    ------
    ValueError
        On an unknown scale, a negative seed, or an ``out_dir`` that is a file or a
        non-empty folder that is not a demo folder.

    Notes
    -----
    The folder is built in a temporary sibling folder and renamed into place, so a failed
    or interrupted build never leaves a half-written folder behind. See the module
    docstring for the generative model and ``ground_truth.json`` for what was planted.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     summary = generate_demo(pathlib.Path(tmp) / "demo", seed=3)
    >>> summary.rows["touchpoints"] > 20_000
    True
    """
    sizes = scale_sizes(scale)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    report = progress if progress is not None else _no_progress
    started = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the published folder is an ordinary one
        rows = _build(tmp, int(seed), sizes, report)
        report("publishing", 0.98)
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.perf_counter() - started
    report("done", 1.0)
    log.info("demo %s (seed %d) written to %s in %.1f s", scale, seed, out_dir, seconds)
    return DemoSummary(out_dir, int(seed), sizes.scale, rows, seconds)


def _no_progress(step: str, fraction: float) -> None:
    """Default progress callback: log only."""
    log.debug("demo: %s (%.0f %%)", step, 100 * fraction)


def _check_out_dir(out_dir: Path) -> None:
    """Refuse to replace a file or a folder that is not a previous demo."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir {out_dir} is a file; give a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / "ground_truth.json").is_file():
            raise ValueError(
                f"out_dir {out_dir} is a non-empty folder that is not a demo folder "
                "(no ground_truth.json); give a new or empty folder"
            )


def _publish(tmp: Path, out_dir: Path) -> None:
    """Rename the finished ``tmp`` folder to ``out_dir``, replacing an old demo last."""
    if not out_dir.exists():
        tmp.rename(out_dir)
        return
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    out_dir.rename(old)
    try:
        tmp.rename(out_dir)
    except BaseException:
        old.rename(out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _rng(seed: int, step: str) -> np.random.Generator:
    """An independent, reproducible random stream per step (crc32, not ``hash``)."""
    return np.random.default_rng([seed, zlib.crc32(step.encode())])


def _build(folder: Path, seed: int, sizes: ScaleSizes, report: Progress) -> dict[str, int]:
    """Run the generative story and write every table and the ground truth to ``folder``."""
    report("accounts and people", 0.0)
    accounts = _make_accounts(_rng(seed, "accounts"), sizes.n_accounts)
    people = _make_people(_rng(seed, "people"), accounts)
    report("marketing touches", 0.08)
    plan = _plan_marketing_touches(_rng(seed, "plan"), people)
    history = _qualify_leads(plan, people, np.ones(plan.person.size, dtype=bool))
    report("sales follow-up", 0.2)
    users = _make_users(_rng(seed, "users"), people, plan, history)
    followup = _draw_followup(_rng(seed, "followup"), people, history, users)
    arms = _assign_arms(_rng(seed, "arms"), people, history, followup, accounts)
    funnel = _resolve_funnel(_rng(seed, "funnel"), people, plan, history, followup, arms)
    report("opportunities and content", 0.3)
    assets = _make_assets(_rng(seed, "assets"))
    opps = _open_opportunities(
        _rng(seed, "opportunities"), accounts, people, funnel, followup, arms
    )
    shares = _share_assets(
        _rng(seed, "shares"), people, accounts, funnel, followup, users, opps, assets
    )
    buyer_events = _buyer_events(_rng(seed, "buyer events"), shares, assets)
    _decide_wins(_rng(seed, "wins"), opps, buyer_events, assets)
    touches = _assemble_touches(
        _rng(seed, "touches"), people, plan, history, followup, funnel, opps, assets, sizes
    )
    events = _assemble_asset_events(
        _rng(seed, "asset events"), people, users, opps, assets, shares, buyer_events, touches
    )
    del shares, buyer_events
    stages, quirks = _assemble_stage_events(
        _rng(seed, "stage events"), people, history, followup, funnel, opps
    )
    n_campaigns = N_MKT * len(QUARTERS) * sizes.campaigns_per_channel_quarter
    ids = _Ids(accounts.n, people.n, users.team.size, n_campaigns, assets.n, opps.n)
    report("ground truth", 0.45)
    truth = _ground_truth(
        seed,
        sizes,
        people,
        users,
        plan,
        history,
        followup,
        arms,
        funnel,
        opps,
        assets,
        events,
        touches,
        stages,
        quirks,
        ids,
    )
    del plan
    builders: dict[str, Callable[[], pa.Table]] = {
        "accounts": lambda: _accounts_table(accounts, ids),
        "people": lambda: _people_table(people, ids),
        "users": lambda: _users_table(users, ids),
        "campaigns": lambda: _campaigns_table(_rng(seed, "campaigns"), sizes, people.n, ids),
        "stage_events": lambda: _stage_events_table(stages, ids),
        "opportunities": lambda: _opportunities_table(opps, ids),
        "opportunity_people": lambda: _opportunity_people_table(opps, ids),
        "assets": lambda: _assets_table(assets, ids),
        "asset_events": lambda: _asset_events_table(events, ids),
        "assignments": lambda: _assignments_table(arms, history, followup, accounts.n, ids),
    }
    rows: dict[str, int] = {}
    for i, name in enumerate(TABLES):
        report(f"writing {name}", 0.5 + 0.45 * i / len(TABLES))
        path = folder / f"{name}.parquet"
        if name == "touchpoints":
            rows[name] = _write_touchpoints(path, touches, people, ids, sizes.touch_row_group)
            continue
        table = builders[name]()
        pq.write_table(table, path, row_group_size=TOUCH_ROW_GROUP)
        rows[name] = table.num_rows
    truth["rows"] = rows
    text = json.dumps(_plain(truth), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    (folder / "ground_truth.json").write_text(text, encoding="utf-8")
    return rows


# --------------------------------------------------------------------------- helpers


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, elementwise."""
    return 1.0 / (1.0 + np.exp(-x))


def _draw_by_group(rng: np.random.Generator, group: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row, from the probability row ``probs[group[i]]``.

    Vectorised: the rows' cumulative probabilities are laid end to end, shifted by the
    group number, and a single ``searchsorted`` finds every draw.
    """
    probs = np.asarray(probs, dtype=float)
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    cum[:, -1] = 1.0
    n_groups, k = cum.shape
    flat = (cum + np.arange(n_groups)[:, None]).ravel()
    group = np.asarray(group, dtype=np.int64)
    found = np.searchsorted(flat, rng.random(group.size) + group, side="right")
    return (found - group * k).astype(np.int8)


def _pick(rng: np.random.Generator, first: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Uniform choice of ``first + j``, ``0 <= j < count``, row by row (count >= 1)."""
    return first + np.minimum((rng.random(first.size) * count).astype(np.int64), count - 1)


def _quarter_index(ts: np.ndarray) -> np.ndarray:
    """Index into `QUARTERS` of each timestamp (clipped to the five quarters)."""
    return np.clip(np.searchsorted(QUARTER_STARTS, ts, side="right") - 1, 0, len(QUARTERS) - 1)


def _some(rng: np.random.Generator, candidates: np.ndarray, share: float) -> np.ndarray:
    """``max(1, round(share * n))`` of the ``n`` candidates, sorted (a quirk always shows)."""
    k = min(candidates.size, max(1, round(share * candidates.size)))
    return np.sort(rng.choice(candidates, k, replace=False))


def _concat(blocks: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate column dicts with the same keys."""
    return {key: np.concatenate([b[key] for b in blocks]) for key in blocks[0]}


def _take(columns: Mapping[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    """Rows ``index`` (positions or a boolean mask) of every column."""
    return {key: value[index] for key, value in columns.items()}


# --------------------------------------------------------------------------- 1-2 accounts, people


@dataclass(slots=True)
class _Accounts:
    segment: np.ndarray  # int8 codes into SEGMENTS
    region: np.ndarray  # int8 codes into REGIONS
    industry: np.ndarray  # int8 codes into INDUSTRIES
    created_at: np.ndarray  # int64 seconds
    n_people: np.ndarray  # people per account
    first_person: np.ndarray  # index of the account's first person (people are contiguous)
    name_words: np.ndarray  # (n, 3) codes into ACCOUNT_WORDS
    quirky: np.ndarray  # indices of the accounts named QUIRKY_ACCOUNT_NAMES

    @property
    def n(self) -> int:
        return int(self.segment.size)


def _make_accounts(rng: np.random.Generator, n_accounts: int) -> _Accounts:
    """Accounts: segment, region, industry, creation date (2018 to mid 2025) and headcount."""
    segment = rng.choice(len(SEGMENTS), n_accounts, p=SEGMENT_P).astype(np.int8)
    region = rng.choice(len(REGIONS), n_accounts, p=REGION_P).astype(np.int8)
    industry = rng.choice(len(INDUSTRIES), n_accounts, p=INDUSTRY_P).astype(np.int8)
    created_at = rng.integers(ACCOUNTS_FROM, ACTIVITY_START - 30 * DAY, n_accounts)
    low, mean, cap = (np.array(column) for column in zip(*PEOPLE_PER_ACCOUNT, strict=True))
    n_people = np.minimum(low[segment] + rng.poisson(mean[segment]), cap[segment])
    words = np.column_stack([rng.integers(len(w), size=n_accounts) for w in ACCOUNT_WORDS])
    quirky = rng.choice(n_accounts, size=len(QUIRKY_ACCOUNT_NAMES), replace=False)
    return _Accounts(
        segment,
        region,
        industry,
        created_at.astype(np.int64),
        n_people,
        np.cumsum(n_people) - n_people,
        words,
        quirky,
    )


@dataclass(slots=True)
class _People:
    account: np.ndarray  # int64 account index
    persona: np.ndarray  # int8 codes into PERSONAS
    created_at: np.ndarray  # int64 seconds: the lead's first touch
    segment: np.ndarray  # of the account
    region: np.ndarray
    industry: np.ndarray
    first_name: np.ndarray  # codes into FIRST_NAMES
    last_name: np.ndarray

    @property
    def n(self) -> int:
        return int(self.account.size)


def _make_people(rng: np.random.Generator, accounts: _Accounts) -> _People:
    """People (leads) of each account: persona and lead creation time (mild growth)."""
    account = np.repeat(np.arange(accounts.n, dtype=np.int64), accounts.n_people)
    n = account.size
    persona = rng.choice(len(PERSONAS), n, p=PERSONA_P).astype(np.int8)
    span = ACTIVITY_END - ACTIVITY_START - DAY
    created_at = ACTIVITY_START + (rng.random(n) ** LEAD_GROWTH_POWER * span).astype(np.int64)
    return _People(
        account=account,
        persona=persona,
        created_at=created_at,
        segment=accounts.segment[account],
        region=accounts.region[account],
        industry=accounts.industry[account],
        first_name=rng.integers(len(FIRST_NAMES), size=n),
        last_name=rng.integers(len(LAST_NAMES), size=n),
    )


# --------------------------------------------------------------------------- 3 marketing touches


@dataclass(slots=True)
class _Plan:
    """Planned marketing touches, ordered by person then time (recorded or not)."""

    person: np.ndarray  # int64
    ts: np.ndarray  # int64 seconds
    channel: np.ndarray  # int8 codes into MARKETING_CHANNELS
    touch_type: np.ndarray  # int8 codes into TOUCH_TYPES
    is_first: np.ndarray  # the lead-creating touch (exactly one per person)

    def source(self) -> np.ndarray:
        """Lead-source channel per person: the channel of the first touch."""
        return self.channel[self.is_first].astype(np.int64)


def _touch_type_probabilities() -> np.ndarray:
    """Rows (one per marketing channel) of touch-type probabilities."""
    table = np.zeros((N_MKT, len(TOUCH_TYPES)))
    for c, mix in enumerate(CHANNEL_TOUCH_TYPES):
        for name, p in mix.items():
            table[c, _T[name]] = p
    return table


def _plan_marketing_touches(rng: np.random.Generator, people: _People) -> _Plan:
    """Plan each lead's marketing touches: the lead-creating touch, then each channel's.

    The first touch is at ``created_at``, its channel from `SOURCE_WEIGHTS`. Each channel
    reaches the lead with probability ``CHANNEL_REACH * persona multiplier`` (<= .95) and
    then touches it ``1 + Poisson(CHANNEL_EXTRA_TOUCHES * segment multiplier)`` times,
    uniformly over a journey window of U(30, 180) days after the first touch. Channels act
    independently, so removing one leaves the others' touches unchanged. Planned touches at
    or after the end of 2026Q3 are dropped.
    """
    n = people.n
    mult = np.array(PERSONA_CHANNEL_MULT)[people.persona]
    reached = rng.random((n, N_MKT)) < np.minimum(np.multiply(CHANNEL_REACH, mult), 0.95)
    extra = np.multiply(CHANNEL_EXTRA_TOUCHES, SEGMENT_TOUCH_MULT[people.segment][:, None])
    count = np.where(reached, 1 + rng.poisson(extra), 0).ravel()
    person = np.repeat(np.repeat(np.arange(n, dtype=np.int64), N_MKT), count)
    channel = np.repeat(np.tile(np.arange(N_MKT, dtype=np.int8), n), count)
    del reached, extra, count
    window = rng.uniform(JOURNEY_DAYS[0] * DAY, JOURNEY_DAYS[1] * DAY, n)
    offset = 60 + (rng.random(person.size) * window[person]).astype(np.int64)
    source_p = np.array([np.multiply(SOURCE_WEIGHTS, m) for m in PERSONA_CHANNEL_MULT])
    source = _draw_by_group(rng, people.persona, source_p)
    person = np.r_[np.arange(n, dtype=np.int64), person]
    channel = np.r_[source, channel]
    offset = np.r_[np.zeros(n, dtype=np.int64), offset]
    order = np.argsort(person * (1 << 26) + offset, kind="stable")  # offsets < 2**26 s
    person, channel, offset = person[order], channel[order], offset[order]
    ts = people.created_at[person] + offset
    is_first = offset == 0
    touch_type = _draw_by_group(rng, channel, _touch_type_probabilities())
    keep = ts < ACTIVITY_END
    return _Plan(person[keep], ts[keep], channel[keep], touch_type[keep], is_first[keep])


# --------------------------------------------------------------------------- 4-5 MQL rule, eta


@dataclass(slots=True)
class _History:
    """What the MQL rule and the model see of each lead's marketing touches."""

    trigger: np.ndarray  # plan index of the touch at which the MQL rule fires; -1: never
    recorded: np.ndarray  # bool over the plan: touch happened (up to and incl. the MQL)
    exposed: np.ndarray  # (n_people, N_MKT) bool: channel touched the lead by its MQL
    n_engagement: np.ndarray  # engagement touches strictly before the MQL touch
    eta: np.ndarray  # latent log-odds of qualifying
    mql_at: np.ndarray  # int64 seconds; -1 for non-MQLs

    @property
    def is_mql(self) -> np.ndarray:
        return self.trigger >= 0


def _first_trigger(plan: _Plan, mask: np.ndarray, n_people: int) -> np.ndarray:
    """Plan index at which the current MQL rule first fires per person, -1 if never.

    Only touches in ``mask`` count (a counterfactual removes a channel through the mask).
    """
    idx = np.flatnonzero(mask)
    trigger = np.full(n_people, -1, dtype=np.int64)
    if idx.size == 0:
        return trigger
    person = plan.person[idx]
    ttype = plan.touch_type[idx]
    engaged = IS_ENGAGEMENT[ttype].astype(np.int32)
    running = np.cumsum(engaged)
    head = np.flatnonzero(np.r_[True, person[1:] != person[:-1]])
    before = (running - engaged)[head]
    running -= np.repeat(before, np.diff(np.r_[head, person.size]))
    fires = IS_TRIGGER[ttype] | (running >= MQL_MIN_ENGAGEMENT)
    fire_idx, fire_person = idx[fires], person[fires]
    first = np.r_[True, fire_person[1:] != fire_person[:-1]] if fire_idx.size else fires[:0]
    trigger[fire_person[first]] = fire_idx[first]
    return trigger


def _qualify_leads(plan: _Plan, people: _People, mask: np.ndarray) -> _History:
    """Apply the MQL rule to the touches in ``mask`` and compute each lead's ``eta``."""
    trigger = _first_trigger(plan, mask, people.n)
    limit = trigger[plan.person]
    position = np.arange(plan.person.size)
    recorded = mask & ((limit < 0) | (position <= limit))
    # eta sees the touches strictly before the MQL touch: what a score known at the MQL
    # instant can see (the firing touch carries the MQL's own timestamp); ``exposed`` keeps
    # every channel that touched the lead by its MQL (the channel ground truth's exposed)
    before = mask & ((limit < 0) | (position < limit))

    def channels_of(touches: np.ndarray) -> np.ndarray:
        cell = plan.person[touches] * N_MKT + plan.channel[touches]
        return np.bincount(cell, minlength=people.n * N_MKT).reshape(people.n, N_MKT) > 0

    n_engagement = np.bincount(
        plan.person[before], weights=IS_ENGAGEMENT[plan.touch_type[before]], minlength=people.n
    )
    eta = _latent_log_odds(people, channels_of(before), n_engagement)
    exposed = channels_of(recorded)
    mql_at = np.where(trigger >= 0, plan.ts[np.maximum(trigger, 0)], -1)
    return _History(trigger, recorded, exposed, n_engagement, eta, mql_at)


def _latent_log_odds(people: _People, exposed: np.ndarray, n_engagement: np.ndarray) -> np.ndarray:
    """``eta``: intercept + fit + capped engagement + marketing channel effects (log-odds)."""
    return (
        INTERCEPT
        + SEGMENT_LOG_ODDS[people.segment]
        + INDUSTRY_LOG_ODDS[people.industry]
        + PERSONA_LOG_ODDS[people.persona]
        + ENGAGEMENT_LOG_ODDS * np.minimum(n_engagement, ENGAGEMENT_CAP)
        + exposed @ MARKETING_LOG_ODDS
    )


# --------------------------------------------------------------------------- 6 sales model


def _sal_probability(eta: np.ndarray, m_nurture: np.ndarray | float) -> np.ndarray:
    """``a = P(SAL | worked)``; ``m_nurture`` is the nurture experiment's multiplier."""
    return SAL_CEILING * _sigmoid(eta + SAL_SHIFT) * m_nurture


def _meeting_probability(m_script: np.ndarray | float) -> np.ndarray | float:
    """``g = P(meeting | SAL)``; ``m_script`` is the outreach experiment's multiplier."""
    return MEETING_BASE * m_script


def _sql_probability(
    eta: np.ndarray,
    meeting: np.ndarray | float,
    call: np.ndarray | float,
    email: np.ndarray | float,
    mql_at: np.ndarray,
    region: np.ndarray,
) -> np.ndarray:
    """``b = P(SQL | SAL)``: sales touches, common quarter trend and the planted SLA effect."""
    logit = (
        eta
        + SQL_SHIFT
        + SALES_LOG_ODDS["sales_meeting"] * meeting
        + SALES_LOG_ODDS["sales_call"] * call
        + SALES_LOG_ODDS["sales_email"] * email
    )
    sla = IS_SLA_REGION[region] & (mql_at >= SLA_START)
    return SQL_CEILING * _sigmoid(logit) + SQL_TREND[_quarter_index(mql_at)] + SLA_EFFECT * sla


def _bad_timing_probability(people: _People, source: np.ndarray) -> np.ndarray:
    """P(reason = "Bad timing" | disqualified), by lead source and student persona."""
    group = source * 2 + (people.persona == STUDENT)
    return _reason_probabilities()[group, BAD_TIMING]


def _eventual_sql_probability(
    people: _People,
    history: _History,
    has_call: np.ndarray,
    has_email: np.ndarray,
    m_nurture: np.ndarray,
    m_script: np.ndarray,
    p_bad_timing: np.ndarray,
) -> np.ndarray:
    """P(the lead ever reaches SQL) under the model, ignoring the export cut-off."""
    w = 1.0 - UNWORKED_SHARE[people.region]
    a = _sal_probability(history.eta, m_nurture)
    g = _meeting_probability(m_script)
    b = g * _sql_probability(history.eta, 1, has_call, has_email, history.mql_at, people.region)
    b += (1 - g) * _sql_probability(
        history.eta, 0, has_call, has_email, history.mql_at, people.region
    )
    recycled = (1.0 - a) * p_bad_timing * P_RECYCLE * P_REENGAGE
    return np.where(history.is_mql, w * (a * b + recycled), 0.0)


def _reason_probabilities() -> np.ndarray:
    """Rows ``2 * source_channel + is_student`` of disqualification-reason probabilities."""
    rows = []
    student = np.zeros(len(DQ_REASONS))
    student[DQ_REASONS.index("Student / job seeker")] = 1.0
    for name in MARKETING_CHANNELS:
        mix = np.array(DQ_CHANNEL_MIX.get(name, DQ_BASE_MIX), dtype=float)
        mix /= mix.sum()
        rows.append(mix)
        rows.append(STUDENT_REASON_P * student + (1 - STUDENT_REASON_P) * mix)
    return np.array(rows)


# --------------------------------------------------------------------------- users


@dataclass(slots=True)
class _Users:
    team: np.ndarray  # int8 codes into TEAMS
    region: np.ndarray  # int8 codes into REGIONS
    capacity: np.ndarray  # leads per week; NaN for marketing
    first: np.ndarray  # (3, 4): first user index of (team, region)
    count: np.ndarray  # (3, 4): users of (team, region)

    def pick(self, rng: np.random.Generator, team: int, region: np.ndarray) -> np.ndarray:
        """A uniformly chosen user of ``team`` in each row's region."""
        return _pick(rng, self.first[team, region], self.count[team, region])


def _make_users(
    rng: np.random.Generator, people: _People, plan: _Plan, history: _History
) -> _Users:
    """Marketing users, SDRs and AEs per region, sized to the expected inflow.

    SDRs: one per `SDR_TARGET_LOAD` MQLs a week; capacity such that inflow is
    `SDR_UTILISATION` of it, except in `OVER_CAPACITY_REGIONS`, which get
    `OVERLOAD` times fewer SDRs and an inflow `OVERLOAD` times their capacity. AEs likewise
    from the expected SQLs (model probabilities, no experiments).
    """
    ones = np.ones(people.n)
    p_sql = _eventual_sql_probability(
        people,
        history,
        ones * CALL_P,
        ones * 0.5,
        ones,
        ones,
        _bad_timing_probability(people, plan.source()),
    )
    mql_week = np.bincount(people.region[history.is_mql], minlength=len(REGIONS)) / N_WEEKS
    sql_week = np.bincount(people.region, weights=p_sql, minlength=len(REGIONS)) / N_WEEKS
    team, region, capacity = [], [], []
    count = np.zeros((len(TEAMS), len(REGIONS)), dtype=np.int64)
    for t, name in enumerate(TEAMS):
        for r, region_name in enumerate(REGIONS):
            if name == "marketing":
                n, cap = MARKETING_USERS_PER_REGION, math.nan
            elif name == "sdr" and region_name in OVER_CAPACITY_REGIONS:
                n = max(1, round(mql_week[r] / SDR_TARGET_LOAD / OVERLOAD))
                cap = mql_week[r] / (n * OVERLOAD)
            elif name == "sdr":
                n = max(2, round(mql_week[r] / SDR_TARGET_LOAD))
                cap = mql_week[r] / (n * SDR_UTILISATION)
            else:
                n = max(2, round(sql_week[r] / AE_TARGET_LOAD))
                cap = sql_week[r] / (n * AE_UTILISATION)
            jitter = rng.uniform(0.9, 1.1, n)
            team += [t] * n
            region += [r] * n
            if math.isnan(cap):
                capacity += [math.nan] * n
            else:  # leads per week, to the half lead, at least 0.5
                capacity += np.maximum(np.round(cap * jitter * 2) / 2, 0.5).tolist()
            count[t, r] = n
    first = (np.cumsum(count.ravel()) - count.ravel()).reshape(count.shape)
    return _Users(
        np.array(team, np.int8), np.array(region, np.int8), np.array(capacity), first, count
    )


# --------------------------------------------------------------------------- 6 follow-up draws


@dataclass(slots=True)
class _Followup:
    """Potential sales follow-up of every lead (used only where the funnel reaches it)."""

    worked: np.ndarray  # MQL and worked by an SDR
    sdr_at: np.ndarray  # (n, MAX_SDR_TOUCHES) int64 seconds of the SDR touches
    sdr_is_call: np.ndarray  # (n, MAX_SDR_TOUCHES) call, else e-mail
    n_sdr: np.ndarray  # SDR touches (1..MAX_SDR_TOUCHES)
    has_call: np.ndarray
    has_email: np.ndarray
    decision_at: np.ndarray  # SAL or Disqualified
    meeting_at: np.ndarray
    sql_at_meeting: np.ndarray  # SQL time if there was a meeting
    sql_at_plain: np.ndarray  # SQL time without a meeting
    recycle_at: np.ndarray
    remql_at: np.ndarray  # re-engagement of a recycled lead: MQL, call, SAL, SQL
    recall_at: np.ndarray
    resal_at: np.ndarray
    resql_at: np.ndarray
    u_sal: np.ndarray
    u_meeting: np.ndarray
    u_sql: np.ndarray
    u_recycle: np.ndarray
    u_reengage: np.ndarray
    sdr_user: np.ndarray
    ae_user: np.ndarray
    marketing_user: np.ndarray

    @property
    def first_touch_at(self) -> np.ndarray:
        return self.sdr_at[:, 0]


def _response_seconds(rng: np.random.Generator, people: _People, history: _History) -> np.ndarray:
    """Delay from MQL to the first sales touch: log-normal around the region's median."""
    sla = IS_SLA_REGION[people.region] & (history.mql_at >= SLA_START)
    median_h = np.where(sla, SLA_RESPONSE_MEDIAN_HOURS, RESPONSE_MEDIAN_HOURS[people.region])
    delay = np.exp(np.log(median_h * HOUR) + RESPONSE_SIGMA * rng.standard_normal(people.n))
    return np.minimum(delay, RESPONSE_CAP_DAYS * DAY).astype(np.int64) + 60


def _draw_followup(
    rng: np.random.Generator, people: _People, history: _History, users: _Users
) -> _Followup:
    """Draw, for every lead, whether and how sales would work it (times, touches, uniforms).

    Everything is drawn for everyone so that the experiments' arms cannot change the draws
    of other steps (their potential outcomes are fixed before assignment).
    """
    n = people.n
    worked = history.is_mql & (rng.random(n) < 1.0 - UNWORKED_SHARE[people.region])
    start = history.mql_at + _response_seconds(rng, people, history)
    k = np.arange(MAX_SDR_TOUCHES)
    n_sdr = 1 + rng.binomial(MAX_SDR_TOUCHES - 1, 0.5, n)
    is_call = rng.random((n, MAX_SDR_TOUCHES)) < np.where(k == 0, FIRST_CALL_P, CALL_P)
    gaps = rng.exponential(SDR_GAP_DAYS * DAY, (n, MAX_SDR_TOUCHES))
    gaps[:, 0] = 0.0
    sdr_at = start[:, None] + np.cumsum(gaps, axis=1).astype(np.int64) + 600 * k
    valid = k[None, :] < n_sdr[:, None]
    last = sdr_at[np.arange(n), n_sdr - 1]

    def later(at: np.ndarray, mean_days: float) -> np.ndarray:
        return at + HOUR + rng.exponential(mean_days * DAY, n).astype(np.int64)

    decision_at = later(last, 1.0)
    meeting_at = later(decision_at, 4.0)
    remql_at = decision_at + rng.integers(100 * DAY, 200 * DAY, n)
    recall_at = later(remql_at, 1.0)
    resal_at = later(recall_at, 1.0)
    return _Followup(
        worked=worked,
        sdr_at=sdr_at,
        sdr_is_call=is_call,
        n_sdr=n_sdr,
        has_call=(is_call & valid).any(axis=1),
        has_email=(~is_call & valid).any(axis=1),
        decision_at=decision_at,
        meeting_at=meeting_at,
        sql_at_meeting=later(meeting_at, 3.0),
        sql_at_plain=later(decision_at, 6.0),
        recycle_at=decision_at + rng.integers(30 * DAY, 60 * DAY, n),
        remql_at=remql_at,
        recall_at=recall_at,
        resal_at=resal_at,
        resql_at=later(resal_at, 3.0),
        u_sal=rng.random(n),
        u_meeting=rng.random(n),
        u_sql=rng.random(n),
        u_recycle=rng.random(n),
        u_reengage=rng.random(n),
        sdr_user=users.pick(rng, TEAMS.index("sdr"), people.region),
        ae_user=users.pick(rng, TEAMS.index("sales"), people.region),
        marketing_user=users.pick(rng, TEAMS.index("marketing"), people.region),
    )


# --------------------------------------------------------------------------- experiments


@dataclass(slots=True)
class _Arms:
    nurture: np.ndarray  # per person: arm index into NURTURE_ARMS, -1 not a unit
    outreach: np.ndarray  # per person: arm index into OUTREACH_ARMS, -1 not a unit
    joint: np.ndarray  # per account: arm index into JOINT_ARMS

    def multiplier(self, which: str) -> np.ndarray:
        """Per-person outcome multiplier ``1 + rel_lift`` of the person's arm (1 if none)."""
        arms = {
            "nurture": (self.nurture, NURTURE_ARMS),
            "outreach": (self.outreach, OUTREACH_ARMS),
        }
        codes, spec = arms[which]
        lifts = np.array([1.0 + lift for _, lift in spec.values()] + [1.0])
        return lifts[codes]  # code -1 picks the trailing 1.0


def _draw_arms(
    rng: np.random.Generator, n: int, spec: Mapping[str, tuple[float, float]]
) -> np.ndarray:
    """Independent arm draws with the planned shares of ``spec``."""
    shares = np.array([share for share, _ in spec.values()])
    return rng.choice(len(spec), n, p=shares / shares.sum()).astype(np.int8)


def _assign_arms(
    rng: np.random.Generator,
    people: _People,
    history: _History,
    followup: _Followup,
    accounts: _Accounts,
) -> _Arms:
    """Randomise the three experiments (arms drawn for everyone, kept for the units).

    ``exp_nurture_cadence``: MQLs of [2025-10-01, 2026-09-01), assigned at the MQL.
    ``exp_sdr_outreach_script``: worked MQLs whose first sales touch is in
    [2026-01-01, 2026-09-15), assigned at that touch. ``exp_joint_account_meetings``:
    every account, assigned 2026-01-05 (cluster randomised).
    """
    nurture = _draw_arms(rng, people.n, NURTURE_ARMS)
    outreach = _draw_arms(rng, people.n, OUTREACH_ARMS)
    joint = _draw_arms(rng, accounts.n, JOINT_ARMS)
    in_nurture = history.is_mql & (history.mql_at >= NURTURE_FROM) & (history.mql_at < NURTURE_TO)
    first = followup.first_touch_at
    in_outreach = followup.worked & (first >= OUTREACH_FROM) & (first < OUTREACH_TO)
    return _Arms(
        np.where(in_nurture, nurture, -1).astype(np.int8),
        np.where(in_outreach, outreach, -1).astype(np.int8),
        joint,
    )


# --------------------------------------------------------------------------- funnel


@dataclass(slots=True)
class _Funnel:
    sal: np.ndarray
    disqualified: np.ndarray
    meeting: np.ndarray
    sql: np.ndarray
    sql_at: np.ndarray
    reason: np.ndarray  # codes into DQ_REASONS, -1 if not disqualified
    recycled: np.ndarray
    reengaged: np.ndarray  # recycled and later MQL, SAL, SQL again
    source: np.ndarray  # lead-source channel per person


def _resolve_funnel(
    rng: np.random.Generator,
    people: _People,
    plan: _Plan,
    history: _History,
    followup: _Followup,
    arms: _Arms,
) -> _Funnel:
    """Decide SAL / Disqualified, meeting, SQL, reasons and recycling from the model."""
    eta, region, mql_at = history.eta, people.region, history.mql_at
    a = _sal_probability(eta, arms.multiplier("nurture"))
    g = _meeting_probability(arms.multiplier("outreach"))
    sal = followup.worked & (followup.u_sal < a)
    disqualified = followup.worked & ~sal
    meeting = sal & (followup.u_meeting < g)
    b = _sql_probability(eta, meeting, followup.has_call, followup.has_email, mql_at, region)
    sql = sal & (followup.u_sql < b)
    source = plan.source()
    reason = _draw_by_group(rng, source * 2 + (people.persona == STUDENT), _reason_probabilities())
    reason = np.where(disqualified, reason, -1).astype(np.int8)
    recycled = (reason == BAD_TIMING) & (followup.u_recycle < P_RECYCLE)
    return _Funnel(
        sal=sal,
        disqualified=disqualified,
        meeting=meeting,
        sql=sql,
        sql_at=np.where(meeting, followup.sql_at_meeting, followup.sql_at_plain),
        reason=reason,
        recycled=recycled,
        reengaged=recycled & (followup.u_reengage < P_REENGAGE),
        source=source,
    )


# --------------------------------------------------------------------------- 7 opportunities


@dataclass(slots=True)
class _Opps:
    account: np.ndarray
    created_at: np.ndarray
    closes_at: np.ndarray  # planned close (may be after the export: then still open)
    owner: np.ndarray  # AE user index
    segment: np.ndarray
    amount: np.ndarray
    won: np.ndarray  # decided by _decide_wins
    person_opp: np.ndarray  # opportunity_people: opp index (sorted)
    person: np.ndarray  # opportunity_people: person index
    role: np.ndarray  # codes into ROLES
    is_sql_member: np.ndarray  # the person's SQL started or joined the cycle
    joined_at: np.ndarray  # when the person joined the buying group (their SQL, or creation)
    joint_control_rate: float
    joint_treatment_rate: float
    viewed_effective: np.ndarray  # buying group viewed an effective asset before the close

    @property
    def n(self) -> int:
        return int(self.account.size)

    def member_rows(self, rng: np.random.Generator, opp: np.ndarray) -> np.ndarray:
        """Row (into the buying-group arrays) of a uniformly chosen member of each ``opp``."""
        first = np.searchsorted(self.person_opp, opp, side="left")
        count = np.searchsorted(self.person_opp, opp, side="right") - first
        return _pick(rng, first, count)


def _sql_rows(funnel: _Funnel, followup: _Followup) -> tuple[np.ndarray, np.ndarray]:
    """(person, SQL time) of every SQL: first-round and re-engaged recycled leads."""
    first, again = np.flatnonzero(funnel.sql), np.flatnonzero(funnel.reengaged)
    return np.r_[first, again], np.r_[funnel.sql_at[first], followup.resql_at[again]]


@dataclass(slots=True)
class _Cycles:
    """SQLs sorted by account and time, grouped into buying cycles."""

    person: np.ndarray  # per SQL
    at: np.ndarray  # per SQL: SQL time
    starts: np.ndarray  # per SQL: starts a cycle
    cycle: np.ndarray  # per SQL: cycle index
    head: np.ndarray  # per cycle: row of its first SQL
    account: np.ndarray  # per cycle


def _buying_cycles(people: _People, funnel: _Funnel, followup: _Followup) -> _Cycles:
    """Group each account's SQLs: a cycle starts more than `CYCLE_GAP_DAYS` after the
    account's previous SQL (first-round and re-engaged SQLs alike)."""
    person, at = _sql_rows(funnel, followup)
    account = people.account[person]
    order = np.lexsort((person, at, account))
    person, at, account = person[order], at[order], account[order]
    starts = np.r_[True, (account[1:] != account[:-1]) | (np.diff(at) > CYCLE_GAP_DAYS * DAY)]
    head = np.flatnonzero(starts)
    return _Cycles(person, at, starts, np.cumsum(starts) - 1, head, account[head])


def _open_opportunities(
    rng: np.random.Generator,
    accounts: _Accounts,
    people: _People,
    funnel: _Funnel,
    followup: _Followup,
    arms: _Arms,
) -> _Opps:
    """Group each account's SQLs into buying cycles and open opportunities from them.

    A cycle starts at an account's SQL more than `CYCLE_GAP_DAYS` after its previous SQL;
    the opportunity would be created 1 h + Exp(3 days) after the cycle's first SQL and is
    opened with probability ``OPP_CREATE_P[segment]``, times 1.2 for treated accounts of
    ``exp_joint_account_meetings`` when that creation time falls in the 90-day window.
    """
    cycles = _buying_cycles(people, funnel, followup)
    person, at, new, head = cycles.person, cycles.at, cycles.starts, cycles.head
    c_account = cycles.account
    c_created = at[head] + HOUR + rng.exponential(3 * DAY, head.size).astype(np.int64)
    c_segment = accounts.segment[c_account]
    window_end = JOINT_ASSIGNED_AT + JOINT_WINDOW_DAYS * DAY
    in_window = (c_created >= JOINT_ASSIGNED_AT) & (c_created < window_end)
    lift = 1.0 + JOINT_ARMS["treatment"][1]
    treated = arms.joint[c_account] == list(JOINT_ARMS).index("treatment")
    p_base = OPP_CREATE_P[c_segment]
    opened = rng.random(head.size) < p_base * np.where(treated & in_window, lift, 1.0)

    def outcome_rate(multiplier: float) -> float:
        """Expected share of accounts with an opportunity created in the window."""
        log_none = np.log1p(-p_base * multiplier * in_window)
        return float(1.0 - np.exp(np.bincount(c_account, log_none, accounts.n)).mean())

    opened_cycle = np.flatnonzero(opened)
    opened_cycle = opened_cycle[np.argsort(c_created[opened_cycle], kind="stable")]  # ids by time
    opp_of_cycle = np.full(head.size, -1, dtype=np.int64)
    opp_of_cycle[opened_cycle] = np.arange(opened_cycle.size)
    o_account, o_created = c_account[opened_cycle], c_created[opened_cycle]
    o_segment = c_segment[opened_cycle]
    n_opps = o_account.size
    duration = np.exp(np.log(OPP_DAYS_MEDIAN[o_segment] * DAY) + 0.5 * rng.standard_normal(n_opps))
    amount = np.round(
        np.exp(np.log(AMOUNT_MEDIAN[o_segment]) + 0.5 * rng.standard_normal(n_opps)), -2
    )
    closes_at = o_created + duration.astype(np.int64)
    member_opp = opp_of_cycle[cycles.cycle]
    is_member = member_opp >= 0
    is_member[is_member] = at[is_member] < closes_at[member_opp[is_member]]  # SQL before close
    m_opp = member_opp[is_member]
    person_opp, person_idx, sql_member, role, joined_at = _buying_groups(
        rng,
        accounts,
        people,
        m_opp,
        person[is_member],
        new[is_member],
        np.maximum(at[is_member], o_created[m_opp]),
        o_account,
        o_created,
        o_segment,
    )
    return _Opps(
        account=o_account,
        created_at=o_created,
        closes_at=closes_at,
        owner=followup.ae_user[person[head[opened_cycle]]],
        segment=o_segment,
        amount=amount,
        won=np.zeros(n_opps, dtype=bool),
        person_opp=person_opp,
        person=person_idx,
        role=role,
        is_sql_member=sql_member,
        joined_at=joined_at,
        joint_control_rate=outcome_rate(1.0),
        joint_treatment_rate=outcome_rate(lift),
        viewed_effective=np.zeros(n_opps, dtype=bool),
    )


def _buying_groups(
    rng: np.random.Generator,
    accounts: _Accounts,
    people: _People,
    member_opp: np.ndarray,
    member_person: np.ndarray,
    member_first: np.ndarray,
    member_joined: np.ndarray,
    o_account: np.ndarray,
    o_created: np.ndarray,
    o_segment: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Opportunity people: the cycle's SQL people plus other people of the account.

    Members are the cycle's people whose SQL came before the planned close; they join at
    ``max(SQL, opportunity created)``. Extras: Poisson(`BUYING_GROUP_EXTRA` by segment)
    draws among the account's people created by the opportunity's creation, joining at
    its creation. Roles from the persona; the person whose SQL opened the cycle is the
    Champion unless an Executive (Decision Maker). Returns (opp, person, is_sql_member,
    role, joined_at), sorted by opportunity then person.
    """
    n_extra = rng.poisson(BUYING_GROUP_EXTRA[o_segment])
    extra_opp = np.repeat(np.arange(o_account.size), n_extra)
    extra_account = o_account[extra_opp]
    extra_person = _pick(
        rng, accounts.first_person[extra_account], accounts.n_people[extra_account]
    )
    ok = people.created_at[extra_person] <= o_created[extra_opp]
    opp = np.r_[member_opp, extra_opp[ok]]
    person = np.r_[member_person, extra_person[ok]]
    first = np.r_[member_first, np.zeros(int(ok.sum()), dtype=bool)]
    sql_member = np.r_[np.ones(member_opp.size, bool), np.zeros(int(ok.sum()), bool)]
    joined = np.r_[member_joined, o_created[extra_opp[ok]]]
    _, keep = np.unique(opp * people.n + person, return_index=True)  # first occurrence wins
    opp, person, first, sql_member = opp[keep], person[keep], first[keep], sql_member[keep]
    role = PERSONA_ROLE[people.persona[person]]
    role = np.where(first & (role != ROLES.index("Decision Maker")), ROLES.index("Champion"), role)
    return opp, person, sql_member, role.astype(np.int8), joined[keep]


# --------------------------------------------------------------------------- 9 assets


@dataclass(slots=True)
class _Assets:
    title: list[str]
    type: np.ndarray  # codes into ASSET_TYPES
    persona: np.ndarray  # codes into PERSONAS, -1 none
    created_at: np.ndarray
    updated_at: np.ndarray
    expires_at: np.ndarray  # -1 none
    pages_total: np.ndarray  # NaN for videos
    never_used: np.ndarray  # indices
    stale_planted: np.ndarray
    effective: np.ndarray
    popularity: np.ndarray  # relative share weight (0 for never-used)

    @property
    def n(self) -> int:
        return int(self.type.size)

    @property
    def stale_since(self) -> np.ndarray:
        """Seconds from which each asset is stale: the earlier of ``updated_at +
        STALE_DAYS`` and ``expires_at`` (the rule of ``alignment.assets``)."""
        by_age = self.updated_at + STALE_DAYS * DAY
        return np.where(self.expires_at >= 0, np.minimum(by_age, self.expires_at), by_age)

    def usable(self, types: Sequence[str]) -> np.ndarray:
        """Indices of assets of ``types`` that are not planted as never used."""
        ok = np.isin(self.type, [ASSET_TYPES.index(t) for t in types])
        ok[self.never_used] = False
        return np.flatnonzero(ok)


def _asset_titles(rng: np.random.Generator, types: np.ndarray) -> list[str]:
    """Plausible titles by type, plus the two hostile titles that exercise escaping."""
    titles = []
    for t in types:  # 60 assets: a loop over the asset list, not over people or touches
        kind = ASSET_TYPES[t]
        product = PRODUCTS[rng.integers(len(PRODUCTS))]
        topic = TOPICS[rng.integers(len(TOPICS))]
        if kind == "case_study":
            company = " ".join(w[rng.integers(len(w))] for w in ACCOUNT_WORDS[:2])
            title = f"{INDUSTRIES[rng.integers(len(INDUSTRIES))]} case study: {company}"
        elif kind == "whitepaper":
            title = f"The 2026 guide to {topic}"
        elif kind == "deck":
            flavour = ("first-call", "QBR", "executive", "technical")[rng.integers(4)]
            title = f"{product} {flavour} deck"
        elif kind == "one_pager":
            title = f"{product} one-pager for {PERSONAS[rng.integers(4)].lower()}s"
        elif kind == "video":
            title = f"{product} demo video ({rng.integers(2, 15)} min)"
        elif kind == "pricing":
            title = f"{product} pricing sheet 2026"
        else:
            title = f"Battlecard: {product} vs {COMPETITORS[rng.integers(len(COMPETITORS))]}"
        titles.append(title)
    titles[int(np.flatnonzero(types == ASSET_TYPES.index("pricing"))[0])] = HOSTILE_TITLES[0]
    titles[int(np.flatnonzero(types == ASSET_TYPES.index("one_pager"))[0])] = HOSTILE_TITLES[1]
    seen: dict[str, int] = {}
    for i, title in enumerate(titles):  # keep titles unique: "(2)", "(3)" on repeats
        seen[title] = seen.get(title, 0) + 1
        if seen[title] > 1:
            titles[i] = f"{title} ({seen[title]})"
    return titles


def _make_assets(rng: np.random.Generator) -> _Assets:
    """Sixty content assets with planted roles: never used, stale, effective.

    Stale (planted): three not updated for more than `STALE_DAYS` before the report
    quarter's end, two expired during it (one of them the hostile ``<script>`` pricing
    sheet); all five are re-shared in the report quarter after they became stale
    (`_share_assets`). Every other asset was updated after ``REPORT_QUARTER_END -
    STALE_DAYS`` and expires after the report quarter, so it is not stale by its end.
    Never used (planted): seven assets with popularity 0, left out of every pool that
    draws assets; every other asset gets an internal view (`_assemble_asset_events`).
    Effective: five assets whose viewing by a buying group adds
    `EFFECTIVE_ASSET_WIN_LOG_ODDS` to the win log-odds.
    """
    types = np.repeat(np.arange(len(ASSET_TYPES)), ASSET_TYPE_COUNTS).astype(np.int8)
    n = types.size
    titles = _asset_titles(rng, types)
    hostile = np.array([titles.index(t) for t in HOSTILE_TITLES])
    sales_types = ("case_study", "deck", "one_pager", "video", "pricing", "battlecard")
    shareable = np.flatnonzero(np.isin(types, [ASSET_TYPES.index(t) for t in sales_types]))
    effective_pool = np.flatnonzero(
        np.isin(types, [ASSET_TYPES.index("case_study"), ASSET_TYPES.index("video")])
    )
    effective = np.sort(rng.choice(effective_pool, N_EFFECTIVE, replace=False))
    taken = set(effective) | set(hostile)
    pool = np.array([i for i in shareable if i not in taken])
    stale_old = rng.choice(pool, N_STALE_OLD, replace=False)
    pool = np.array([i for i in pool if i not in set(stale_old)])
    stale_expired = np.r_[hostile[0], rng.choice(pool, N_STALE_EXPIRED - 1, replace=False)]
    taken |= set(stale_old) | set(stale_expired)
    never_used = np.sort(
        rng.choice([i for i in range(n) if i not in taken], N_NEVER_USED, replace=False)
    )
    created_at = rng.integers(_epoch("2023-01-01"), _epoch("2025-06-01"), n)
    created_at[stale_old] = rng.integers(_epoch("2023-01-01"), _epoch("2024-06-01"), N_STALE_OLD)
    updated_at = rng.integers(_epoch("2025-10-15"), _epoch("2026-06-30"), n)
    updated_at[stale_old] = created_at[stale_old] + rng.integers(0, 120 * DAY, N_STALE_OLD)
    expires_at = np.full(n, -1, dtype=np.int64)
    timed = np.isin(types, [ASSET_TYPES.index("pricing"), ASSET_TYPES.index("battlecard")])
    expires_at[timed] = rng.integers(_epoch("2027-01-01"), _epoch("2027-12-31"), int(timed.sum()))
    expires_at[stale_expired] = rng.integers(
        _epoch("2026-07-15"), _epoch("2026-09-15"), stale_expired.size
    )
    pages = np.full(n, np.nan)
    for t, bounds in enumerate(ASSET_PAGES):
        if bounds is not None:
            pages[types == t] = rng.integers(bounds[0], bounds[1] + 1, int((types == t).sum()))
    persona = np.where(rng.random(n) < 0.7, rng.integers(0, STUDENT, n), -1).astype(np.int8)
    popularity = rng.gamma(1.5, 1.0, n)
    popularity[effective] = np.maximum(popularity[effective], np.median(popularity))
    popularity[never_used] = 0.0
    return _Assets(
        titles,
        types,
        persona,
        created_at,
        updated_at,
        expires_at,
        pages,
        never_used,
        np.sort(np.r_[stale_old, stale_expired]),
        effective,
        popularity,
    )


@dataclass(slots=True)
class _Shares:
    asset: np.ndarray
    ts: np.ndarray
    user: np.ndarray
    recipient: np.ndarray  # person who receives the link
    colleague: np.ndarray  # person a forward would reach
    colleague_from: np.ndarray  # earliest time the colleague can view (joined or created)
    opp: np.ndarray  # -1: not on an opportunity
    account: np.ndarray


def _share_assets(
    rng: np.random.Generator,
    people: _People,
    accounts: _Accounts,
    funnel: _Funnel,
    followup: _Followup,
    users: _Users,
    opps: _Opps,
    assets: _Assets,
) -> _Shares:
    """Reps share assets: AEs during opportunities, SDRs with accepted leads, and the
    planted stale assets re-sent in the report quarter."""
    weights = np.zeros(assets.n)
    shareable = assets.usable(
        ("case_study", "deck", "one_pager", "video", "pricing", "battlecard")
    )
    weights[shareable] = assets.popularity[shareable]
    weights /= weights.sum()
    # during opportunities, in the first 70 % of what is left of the cycle for the recipient
    n_per_opp = rng.poisson(SHARES_PER_OPP[opps.segment])
    s_opp = np.repeat(np.arange(opps.n), n_per_opp)
    to, other = opps.member_rows(rng, s_opp), opps.member_rows(rng, s_opp)
    start = opps.joined_at[to]
    span = np.maximum(opps.closes_at[s_opp] - start, DAY)
    opp_block = {
        "asset": rng.choice(assets.n, s_opp.size, p=weights),
        "ts": start + 60 + (0.7 * rng.random(s_opp.size) * span).astype(np.int64),
        "user": opps.owner[s_opp],
        "recipient": opps.person[to],
        "colleague": opps.person[other],
        "colleague_from": opps.joined_at[other],
        "opp": s_opp,
        "account": opps.account[s_opp],
    }
    # SDRs with accepted leads
    lead = np.flatnonzero(funnel.sal & (rng.random(people.n) < 0.3))
    lead_account = people.account[lead]
    lead_colleague = _pick(
        rng, accounts.first_person[lead_account], accounts.n_people[lead_account]
    )
    sdr_block = {
        "asset": rng.choice(assets.n, lead.size, p=weights),
        "ts": followup.decision_at[lead] + HOUR + rng.exponential(DAY, lead.size).astype(np.int64),
        "user": followup.sdr_user[lead],
        "recipient": lead,
        "colleague": lead_colleague,
        "colleague_from": people.created_at[lead_colleague],
        "opp": np.full(lead.size, -1, dtype=np.int64),
        "account": lead_account,
    }
    # planted stale assets, re-sent in the report quarter, after they became stale, to leads
    # created before it
    n_again = 1 + rng.poisson(1.0, assets.stale_planted.size)
    stale_asset = np.repeat(assets.stale_planted, n_again)
    stale_from = np.maximum(assets.stale_since[stale_asset], REPORT_QUARTER_START)
    candidates = np.flatnonzero(people.created_at < REPORT_QUARTER_START)
    to = rng.choice(candidates, stale_asset.size)
    to_account = people.account[to]
    to_colleague = _pick(rng, accounts.first_person[to_account], accounts.n_people[to_account])
    stale_block = {
        "asset": stale_asset,
        "ts": rng.integers(stale_from, REPORT_QUARTER_END - DAY),
        "user": users.pick(rng, TEAMS.index("sales"), people.region[to]),
        "recipient": to,
        "colleague": to_colleague,
        "colleague_from": people.created_at[to_colleague],
        "opp": np.full(to.size, -1, dtype=np.int64),
        "account": to_account,
    }
    return _Shares(**_concat([opp_block, sdr_block, stale_block]))


def _buyer_events(
    rng: np.random.Generator, shares: _Shares, assets: _Assets
) -> dict[str, np.ndarray]:
    """Buyers' events on each share: visits with gaps, downloads, prints, forwards.

    A share is opened with probability .75: ``1 + Poisson(0.8)`` external views, the first
    Exp(6 h) after the share, then Exp(2 days) apart; after the first view, download (.25),
    print (.06) and forward (.12, to a colleague who then views it once).
    """
    n = shares.asset.size
    share = np.arange(n)
    opened = rng.random(n) < 0.75
    n_views = np.where(opened, 1 + rng.poisson(0.8, n), 0)
    v_share = np.repeat(share, n_views)
    head = np.cumsum(n_views) - n_views
    gaps = rng.exponential(2 * DAY, v_share.size)
    gaps[head[opened]] = rng.exponential(6 * HOUR, int(opened.sum()))
    elapsed = np.cumsum(gaps)
    before = np.zeros(n)  # elapsed time before each opened share's first view
    before[opened] = elapsed[head[opened]] - gaps[head[opened]]
    elapsed -= np.repeat(before, n_views)
    v_ts = shares.ts[v_share] + 60 + elapsed.astype(np.int64)
    first_view = np.full(n, -1, dtype=np.int64)
    first_view[opened] = v_ts[head[opened]]
    blocks = [_buyer_block(shares, v_share, v_ts, "external_view", shares.recipient[v_share])]
    for kind, p, mean_s in (
        ("download", 0.25, 600),
        ("print", 0.06, 1800),
        ("forward", 0.12, DAY),
    ):
        hit = np.flatnonzero(opened & (rng.random(n) < p))
        ts = first_view[hit] + 30 + rng.exponential(mean_s, hit.size).astype(np.int64)
        blocks.append(_buyer_block(shares, hit, ts, kind, shares.recipient[hit]))
        if kind == "forward":  # the colleague views it once, not before they can
            seen = ts + 60 + rng.exponential(DAY, hit.size).astype(np.int64)
            seen = np.maximum(seen, shares.colleague_from[hit] + HOUR)
            blocks.append(_buyer_block(shares, hit, seen, "external_view", shares.colleague[hit]))
    return _concat(blocks)


def _buyer_block(
    shares: _Shares, share: np.ndarray, ts: np.ndarray, kind: str, person: np.ndarray
) -> dict[str, np.ndarray]:
    """Columns of buyer events (``kind``) on ``share`` by ``person`` at ``ts``."""
    return {
        "share": share,
        "asset": shares.asset[share],
        "ts": ts,
        "event_type": np.full(share.size, _E[kind], dtype=np.int8),
        "person": person,
        "opp": shares.opp[share],
        "account": shares.account[share],
    }


def _decide_wins(
    rng: np.random.Generator, opps: _Opps, buyer_events: Mapping[str, np.ndarray], assets: _Assets
) -> None:
    """Win each opportunity with ``sigmoid(w_segment + 1.0 * viewed_effective)``.

    ``viewed_effective``: someone of the buying group viewed an effective asset shared on
    the opportunity before its planned close. Sets ``opps.won`` and ``opps.viewed_effective``.
    """
    is_view = (
        (buyer_events["event_type"] == _E["external_view"])
        & (buyer_events["opp"] >= 0)
        & np.isin(buyer_events["asset"], assets.effective)
    )
    opp = buyer_events["opp"][is_view]
    in_time = buyer_events["ts"][is_view] < opps.closes_at[opp]
    opps.viewed_effective[opp[in_time]] = True
    logit = WIN_LOG_ODDS[opps.segment] + EFFECTIVE_ASSET_WIN_LOG_ODDS * opps.viewed_effective
    opps.won[:] = rng.random(opps.n) < _sigmoid(logit)


# --------------------------------------------------------------------------- touches


def _touch_block(
    person: np.ndarray,
    ts: np.ndarray,
    channel: np.ndarray,
    *,
    touch_type: np.ndarray | None = None,
    campaign: np.ndarray | None = None,
    user: np.ndarray | None = None,
    asset: np.ndarray | None = None,
    opp: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Columns of a block of touches (compact dtypes; -1 marks a missing id)."""
    none = np.full(person.size, -1, dtype=np.int32)
    if touch_type is None:  # sales touches: the type follows the channel
        lookup = np.zeros(len(CHANNELS), dtype=np.int8)
        for c, t in SALES_TOUCH_TYPE.items():
            lookup[c] = t
        touch_type = lookup[channel]
    return {
        "person": person.astype(np.int32),
        "ts": ts.astype(np.int64),
        "channel": channel.astype(np.int8),
        "touch_type": touch_type.astype(np.int8),
        "campaign": none if campaign is None else campaign.astype(np.int32),
        "user": none if user is None else user.astype(np.int32),
        "asset": none if asset is None else asset.astype(np.int32),
        "opp": none if opp is None else opp.astype(np.int32),
    }


def _marketing_touch_rows(
    rng: np.random.Generator, plan: _Plan, history: _History, assets: _Assets, sizes: ScaleSizes
) -> dict[str, np.ndarray]:
    """Recorded marketing touches with their campaign (channel, quarter) and content asset."""
    rec = history.recorded
    ts, channel, touch_type = plan.ts[rec], plan.channel[rec], plan.touch_type[rec]
    k = sizes.campaigns_per_channel_quarter
    campaign = (channel.astype(np.int64) * len(QUARTERS) + _quarter_index(ts)) * k
    campaign += rng.integers(k, size=ts.size)
    u = rng.random(ts.size)
    content = np.isin(touch_type, [_T["content_download"], _T["webinar_attend"]])
    carries = (content & (u < 0.8)) | ((touch_type == _T["email_click"]) & (u < 0.3))
    asset = np.full(ts.size, -1, dtype=np.int64)
    asset[carries] = rng.choice(assets.usable(MARKETING_ASSET_TYPES), int(carries.sum()))
    return _touch_block(
        plan.person[rec], ts, channel, touch_type=touch_type, campaign=campaign, asset=asset
    )


def _sdr_touch_rows(followup: _Followup) -> dict[str, np.ndarray]:
    """SDR calls and e-mails of worked MQLs (1-6 each, before the SAL decision)."""
    worked = np.flatnonzero(followup.worked)
    valid = np.arange(MAX_SDR_TOUCHES)[None, :] < followup.n_sdr[worked][:, None]
    row, _ = np.nonzero(valid)
    person = worked[row]
    channel = np.where(followup.sdr_is_call[worked][valid], SALES_CALL, SALES_EMAIL)
    return _touch_block(
        person, followup.sdr_at[worked][valid], channel, user=followup.sdr_user[person]
    )


def _opportunity_touch_rows(rng: np.random.Generator, opps: _Opps) -> dict[str, np.ndarray]:
    """AE touches on buying-group members between their joining and the planned close."""
    n_per_opp = rng.poisson(AE_TOUCHES_PER_OPP[opps.segment])
    opp = np.repeat(np.arange(opps.n), n_per_opp)
    row = opps.member_rows(rng, opp)
    start = opps.joined_at[row]  # never before the person joined the buying group
    span = np.maximum(opps.closes_at[opp] - start, DAY)
    ts = start + 60 + (rng.random(opp.size) * span).astype(np.int64)
    kind = _draw_by_group(rng, np.zeros(opp.size, np.int64), np.array([[0.20, 0.35, 0.45]]))
    channel = np.array([SALES_CALL, SALES_EMAIL, SALES_MEETING])[kind]
    return _touch_block(opps.person[row], ts, channel, user=opps.owner[opp], opp=opp)


def _assemble_touches(
    rng: np.random.Generator,
    people: _People,
    plan: _Plan,
    history: _History,
    followup: _Followup,
    funnel: _Funnel,
    opps: _Opps,
    assets: _Assets,
    sizes: ScaleSizes,
) -> dict[str, np.ndarray]:
    """All touchpoints before the export, sorted by time (then person, channel).

    Meetings present an asset with probability .35 (a ``present`` asset event follows);
    ~1 % of sales touches lose their user (a quirk of real exports). Column ``rep`` keeps
    the user for the present events.
    """
    meeting = np.flatnonzero(funnel.meeting)
    again = np.flatnonzero(funnel.reengaged)
    touches = _concat(
        [
            _marketing_touch_rows(rng, plan, history, assets, sizes),
            _sdr_touch_rows(followup),
            _touch_block(
                meeting,
                followup.meeting_at[meeting],
                np.full(meeting.size, SALES_MEETING),
                user=followup.ae_user[meeting],
            ),
            _touch_block(
                again,
                followup.recall_at[again],
                np.full(again.size, SALES_CALL),
                user=followup.sdr_user[again],
            ),
            _opportunity_touch_rows(rng, opps),
        ]
    )
    n = touches["ts"].size
    presents = (touches["channel"] == SALES_MEETING) & (rng.random(n) < 0.35)
    pool = assets.usable(("deck", "case_study", "one_pager", "video"))
    touches["asset"][presents] = rng.choice(pool, int(presents.sum()))
    touches["rep"] = touches["user"].copy()
    is_sales = np.flatnonzero(touches["channel"] >= N_MKT)
    touches["user"][_some(rng, is_sales, SALES_TOUCH_WITHOUT_USER_SHARE)] = -1
    touches = _take(touches, touches["ts"] < EXPORTED_AT)
    order = np.lexsort(
        (touches["touch_type"], touches["channel"], touches["person"], touches["ts"])
    )
    return _take(touches, order)


# --------------------------------------------------------------------------- asset events


def _event_block(
    asset: np.ndarray,
    ts: np.ndarray,
    kind: str | np.ndarray,
    *,
    user: np.ndarray | None = None,
    person: np.ndarray | None = None,
    account: np.ndarray | None = None,
    opp: np.ndarray | None = None,
    share: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Columns of a block of asset events (-1 marks a missing id)."""
    n = asset.size
    none = np.full(n, -1, dtype=np.int64)
    event_type = np.full(n, _E[kind], np.int8) if isinstance(kind, str) else kind.astype(np.int8)
    return {
        "asset": asset.astype(np.int64),
        "ts": ts.astype(np.int64),
        "event_type": event_type,
        "user": none if user is None else user.astype(np.int64),
        "person": none if person is None else person.astype(np.int64),
        "account": none if account is None else account.astype(np.int64),
        "opp": none if opp is None else opp.astype(np.int64),
        "share": none if share is None else share.astype(np.int64),
    }


def _assemble_asset_events(
    rng: np.random.Generator,
    people: _People,
    users: _Users,
    opps: _Opps,
    assets: _Assets,
    shares: _Shares,
    buyer_events: Mapping[str, np.ndarray],
    touches: Mapping[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Every asset event before the export: shares, buyers' events, presentations in
    meetings and reps' internal views, with device, duration and pages.

    ``pages_viewed <= pages_total`` always; videos have no pages. Share numbers follow the
    shares' times.
    """
    n_shares = shares.asset.size
    present = (touches["asset"] >= 0) & (touches["channel"] == SALES_MEETING)
    n_internal = max(50, round(0.8 * opps.n + 0.01 * people.n))
    weights = assets.popularity / assets.popularity.sum()
    opened = assets.usable(ASSET_TYPES)  # every asset not planted as never used
    events = _concat(
        [
            _event_block(
                shares.asset,
                shares.ts,
                "share",
                user=shares.user,
                account=shares.account,
                opp=shares.opp,
                share=np.arange(n_shares),
            ),
            _event_block(
                buyer_events["asset"],
                buyer_events["ts"],
                buyer_events["event_type"],
                person=buyer_events["person"],
                account=buyer_events["account"],
                opp=buyer_events["opp"],
                share=buyer_events["share"],
            ),
            _event_block(
                touches["asset"][present],
                touches["ts"][present],
                "present",
                user=touches["rep"][present],
                account=people.account[touches["person"][present]],
                opp=touches["opp"][present],
            ),
            _event_block(
                rng.choice(assets.n, n_internal, p=weights),
                rng.integers(ACTIVITY_START, EXPORTED_AT - DAY, n_internal),
                "internal_view",
                user=rng.choice(np.flatnonzero(users.team != 0), n_internal),
            ),
            # one more internal view of each asset not planted as never used, so that the
            # planted ones are exactly the assets with no event
            _event_block(
                opened,
                rng.integers(ACTIVITY_START, EXPORTED_AT - DAY, opened.size),
                "internal_view",
                user=rng.choice(np.flatnonzero(users.team != 0), opened.size),
            ),
        ]
    )
    events = _take(events, events["ts"] < EXPORTED_AT)
    share_rank = np.empty(n_shares, dtype=np.int64)
    share_rank[np.argsort(shares.ts, kind="stable")] = np.arange(n_shares)
    has_share = events["share"] >= 0
    events["share"][has_share] = share_rank[events["share"][has_share]]
    events.update(_event_measures(rng, events["event_type"], assets.pages_total[events["asset"]]))
    order = np.lexsort((events["share"], events["person"], events["event_type"], events["ts"]))
    return _take(events, order)


def _event_measures(
    rng: np.random.Generator, kind: np.ndarray, pages_total: np.ndarray
) -> dict[str, np.ndarray]:
    """Device, duration (s) and pages viewed of each event, by event type.

    Views last LogNormal(log 75 s, .9) (videos log 150 s), presentations LogNormal(log 900 s,
    .4); a document view reads ``1 + Binomial(pages_total - 1, U(.3, .9))`` pages.
    """
    n = kind.size
    device = _draw_by_group(rng, np.zeros(n, np.int64), np.array([DEVICE_P]))
    device[np.isin(kind, [_E["share"], _E["present"]])] = 0  # sent / presented from a desktop
    is_video = np.isnan(pages_total)
    viewing = np.isin(kind, [_E["external_view"], _E["internal_view"]])
    median = np.where(is_video, 150.0, 75.0)
    duration = np.where(viewing, np.exp(np.log(median) + 0.9 * rng.standard_normal(n)), np.nan)
    is_present = kind == _E["present"]
    duration[is_present] = np.exp(np.log(900.0) + 0.4 * rng.standard_normal(int(is_present.sum())))
    whole = np.nan_to_num(pages_total, nan=1.0).astype(np.int64)
    read = 1 + rng.binomial(whole - 1, rng.uniform(0.3, 0.9, n))
    pages_viewed = np.where(viewing & ~is_video, read, np.nan)
    pages_viewed[is_present] = pages_total[is_present]
    return {
        "device": device,
        "duration_s": np.round(duration, 1),
        "pages_viewed": pages_viewed,
        "pages_total": pages_total,
    }


# --------------------------------------------------------------------------- stage events


def _stage_block(
    person: np.ndarray,
    stage: str,
    at: np.ndarray,
    owner: np.ndarray | None,
    reason: np.ndarray | int | None = None,
) -> dict[str, np.ndarray]:
    """Columns of a block of stage events (-1 marks a missing owner or reason)."""
    n = person.size
    reasons = np.full(n, -1 if reason is None else 0, dtype=np.int8)
    if reason is not None:
        reasons[:] = reason
    return {
        "person": person.astype(np.int64),
        "stage": np.full(n, _S[stage], dtype=np.int8),
        "at": at.astype(np.int64),
        "owner": np.full(n, -1, np.int64) if owner is None else owner.astype(np.int64),
        "reason": reasons,
        "first_sal": np.full(n, stage == "SAL", dtype=bool),
    }


def _assemble_stage_events(
    rng: np.random.Generator,
    people: _People,
    history: _History,
    followup: _Followup,
    funnel: _Funnel,
    opps: _Opps,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Stage events as recorded by the CRM, with the planted quirks, before the export.

    Returns the columns (``recorded`` is the written ``entered_at``; ``duplicate`` marks
    the planted exact copies) and the count of each quirk.
    """
    f, h = followup, history
    mql = np.flatnonzero(h.is_mql)
    sal, dq = np.flatnonzero(funnel.sal), np.flatnonzero(funnel.disqualified)
    sql, rec = np.flatnonzero(funnel.sql), np.flatnonzero(funnel.recycled)
    again = np.flatnonzero(funnel.reengaged)
    member = opps.is_sql_member
    won = member & opps.won[opps.person_opp]
    m_opp, w_opp = opps.person_opp[member], opps.person_opp[won]
    stages = _concat(
        [
            _stage_block(np.arange(people.n), "Lead", people.created_at, None),
            _stage_block(mql, "MQL", h.mql_at[mql], f.marketing_user[mql]),
            _stage_block(sal, "SAL", f.decision_at[sal], f.sdr_user[sal]),
            _stage_block(dq, "Disqualified", f.decision_at[dq], f.sdr_user[dq], funnel.reason[dq]),
            _stage_block(sql, "SQL", funnel.sql_at[sql], f.ae_user[sql]),
            _stage_block(rec, "Recycled", f.recycle_at[rec], f.marketing_user[rec], BAD_TIMING),
            _stage_block(again, "MQL", f.remql_at[again], f.marketing_user[again]),
            _stage_block(again, "SAL", f.resal_at[again], f.sdr_user[again]),
            _stage_block(again, "SQL", f.resql_at[again], f.ae_user[again]),
            _stage_block(
                opps.person[member], "Opportunity", opps.joined_at[member], opps.owner[m_opp]
            ),
            _stage_block(opps.person[won], "Customer", opps.closes_at[w_opp], opps.owner[w_opp]),
        ]
    )
    stages["first_sal"][np.flatnonzero(stages["stage"] == _S["SAL"])[sal.size :]] = False
    stages["recorded"] = stages["at"].copy()
    candidates = np.flatnonzero(stages["first_sal"] & (stages["at"] < EXPORTED_AT))
    quirky = rng.permutation(_some(rng, candidates, TIED_SAL_SHARE + EARLY_SAL_SHARE))
    n_tied = max(1, round(quirky.size * TIED_SAL_SHARE / (TIED_SAL_SHARE + EARLY_SAL_SHARE)))
    tied, early = quirky[:n_tied], quirky[n_tied:]
    stages["recorded"][tied] = h.mql_at[stages["person"][tied]]
    minutes = rng.integers(60, 1800, early.size)
    stages["recorded"][early] = h.mql_at[stages["person"][early]] - minutes
    stages = _take(stages, stages["recorded"] < EXPORTED_AT)
    copies = _take(stages, _some(rng, np.arange(stages["at"].size), DUPLICATE_STAGE_EVENT_SHARE))
    stages["duplicate"] = np.zeros(stages["at"].size, dtype=bool)
    copies["duplicate"] = np.ones(copies["at"].size, dtype=bool)
    stages = _concat([stages, copies])
    order = np.lexsort(
        (stages["duplicate"], stages["stage"], stages["recorded"], stages["person"])
    )
    quirks = {
        "duplicate_stage_events": int(copies["at"].size),
        "sal_tied_with_mql": int(tied.size),
        "sal_recorded_before_mql": int(early.size),
    }
    return _take(stages, order), quirks


# --------------------------------------------------------------------------- ground truth


def _iso(ts: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` of a UTC timestamp in seconds."""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(ts: int) -> str:
    """``YYYY-MM-DD`` of a UTC timestamp in seconds."""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%d")


def _channel_truth(
    people: _People,
    plan: _Plan,
    history: _History,
    followup: _Followup,
    arms: _Arms,
    funnel: _Funnel,
) -> dict[str, dict[str, Any]]:
    """Per channel: the true incremental effect on P(SQL) among the exposed, and its share.

    Marketing channel ``c``: mean over people exposed to ``c`` (by their MQL) of
    ``P(SQL | history) - P(SQL | history without c's touches)``, with the MQL rule, ``eta``
    and MQL date recomputed on the planned touches without ``c`` (person, lead source and
    experiment arms held fixed). Sales channels act on ``b`` only: call and e-mail among
    worked leads (times ``a``), meeting among accepted leads. ``true_credit_share``: the
    channel's caused conversions (effect times exposed) over all channels' caused
    conversions.
    """
    m_nurture, m_script = arms.multiplier("nurture"), arms.multiplier("outreach")
    p_bad_timing = _bad_timing_probability(people, funnel.source)
    call, email = followup.has_call, followup.has_email

    def p_sql(h: _History) -> np.ndarray:
        return _eventual_sql_probability(people, h, call, email, m_nurture, m_script, p_bad_timing)

    actual = p_sql(history)
    caused: dict[str, tuple[int, float]] = {}
    for c, name in enumerate(MARKETING_CHANNELS):
        without = _qualify_leads(plan, people, plan.channel != c)
        exposed = history.exposed[:, c]
        caused[name] = (int(exposed.sum()), float((actual - p_sql(without))[exposed].sum()))
    eta, mql_at, region = history.eta, history.mql_at, people.region
    a = _sal_probability(eta, m_nurture)
    g = _meeting_probability(m_script)

    def b_mean(c: np.ndarray | float, e: np.ndarray | float) -> np.ndarray:
        met = _sql_probability(eta, 1, c, e, mql_at, region)
        return g * met + (1 - g) * _sql_probability(eta, 0, c, e, mql_at, region)

    lift_call = a * (b_mean(1, email) - b_mean(0, email))
    lift_email = a * (b_mean(call, 1) - b_mean(call, 0))
    lift_meeting = _sql_probability(eta, 1, call, email, mql_at, region) - _sql_probability(
        eta, 0, call, email, mql_at, region
    )
    for name, exposed, lift in (
        ("sales_call", followup.worked & call, lift_call),
        ("sales_email", followup.worked & email, lift_email),
        ("sales_meeting", funnel.meeting, lift_meeting),
    ):
        caused[name] = (int(exposed.sum()), float(lift[exposed].sum()))
    total = sum(value for _, value in caused.values())
    counts = {
        c: any(IS_ENGAGEMENT[_T[t]] for t in mix)
        for c, mix in zip(MARKETING_CHANNELS, CHANNEL_TOUCH_TYPES, strict=True)
    }
    log_odds = dict(zip(MARKETING_CHANNELS, MARKETING_LOG_ODDS.tolist(), strict=True))
    log_odds.update(SALES_LOG_ODDS)
    return {
        name: {
            "incremental_effect": value / n if n else 0.0,
            "log_odds_effect": log_odds[name],
            "is_sales": name in SALES_CHANNELS,
            "true_credit_share": value / total,
            "n_exposed": n,
            "caused_conversions": value,
            "counts_toward_mql_rule": counts.get(name, False),
        }
        for name, (n, value) in caused.items()
    }


def _arm_truth(
    spec: Mapping[str, tuple[float, float]], control_rate: float, codes: np.ndarray
) -> dict[str, Any]:
    """Arms block of an experiment: planned share, true lift, expected rate, units."""
    return {
        arm: {
            "share": share,
            "true_rel_lift": lift,
            "expected_rate": control_rate * (1.0 + lift),
            "n_units": int((codes == i).sum()),
        }
        for i, (arm, (share, lift)) in enumerate(spec.items())
    }


def _experiment_truth(
    people: _People, history: _History, followup: _Followup, arms: _Arms, opps: _Opps
) -> dict[str, dict[str, Any]]:
    """The three planted experiments with their expected control rates.

    ``control_rate`` is the mean over units of the model probability of the outcome under
    control, given each unit's touches, work status draw and delays (none of which depends
    on the arm); a treated arm's expected rate is ``control_rate * (1 + true_rel_lift)``.
    """
    eta, region, mql_at = history.eta, people.region, history.mql_at
    f = followup
    g = _meeting_probability(arms.multiplier("outreach"))
    end = mql_at + NURTURE_WINDOW_DAYS * DAY
    p_nurture = (
        (1.0 - UNWORKED_SHARE[region])
        * _sal_probability(eta, 1.0)
        * (
            g
            * _sql_probability(eta, 1, f.has_call, f.has_email, mql_at, region)
            * (f.sql_at_meeting <= end)
            + (1 - g)
            * _sql_probability(eta, 0, f.has_call, f.has_email, mql_at, region)
            * (f.sql_at_plain <= end)
        )
    )
    nurture_units = arms.nurture >= 0
    nurture_rate = float(p_nurture[nurture_units].mean())
    met_in_time = f.meeting_at <= f.first_touch_at + OUTREACH_WINDOW_DAYS * DAY
    p_outreach = _sal_probability(eta, arms.multiplier("nurture")) * MEETING_BASE * met_in_time
    outreach_rate = float(p_outreach[arms.outreach >= 0].mean())
    return {
        NURTURE: {
            "unit_type": "person",
            "outcome": f"SQL within {NURTURE_WINDOW_DAYS} days of assigned_at",
            "outcome_window_days": NURTURE_WINDOW_DAYS,
            "assigned_at": "the MQL (entered_at of the person's first MQL stage event)",
            "control_rate": nurture_rate,
            "true_rel_lift": NURTURE_ARMS["treatment"][1],
            "control_arm": "control",
            "arms": _arm_truth(NURTURE_ARMS, nurture_rate, arms.nurture),
            "start_date": _day(NURTURE_FROM),
            "end_date": _day(NURTURE_TO - DAY),
            "mechanism": "multiplies P(SAL | worked)",
        },
        JOINT: {
            "unit_type": "account",
            "outcome": f"opportunity created within {JOINT_WINDOW_DAYS} days of assigned_at",
            "outcome_window_days": JOINT_WINDOW_DAYS,
            "assigned_at": _iso(JOINT_ASSIGNED_AT),
            "control_rate": opps.joint_control_rate,
            "true_rel_lift": JOINT_ARMS["treatment"][1],
            "expected_treatment_rate": opps.joint_treatment_rate,
            "control_arm": "control",
            "arms": _arm_truth(JOINT_ARMS, opps.joint_control_rate, arms.joint),
            "start_date": _day(JOINT_ASSIGNED_AT),
            "mechanism": "multiplies P(buying cycle opens an opportunity) in the window; "
            "cluster-randomised by account",
        },
        OUTREACH: {
            "unit_type": "person",
            "outcome": f"sales meeting within {OUTREACH_WINDOW_DAYS} days of assigned_at",
            "outcome_window_days": OUTREACH_WINDOW_DAYS,
            "assigned_at": "the first sales touch",
            "control_rate": outreach_rate,
            "true_rel_lift": OUTREACH_ARMS["script_a"][1],
            "primary_arm": "script_a",
            "null_arms": ["script_b"],
            "control_arm": "control",
            "arms": _arm_truth(OUTREACH_ARMS, outreach_rate, arms.outreach),
            "start_date": _day(OUTREACH_FROM),
            "end_date": _day(OUTREACH_TO - DAY),
            "mechanism": "multiplies P(meeting | SAL)",
        },
    }


def _sla_truth() -> dict[str, Any]:
    """The SLA rollout: regions, start, and its absolute effect on P(SQL | SAL)."""
    return {
        "regions": list(SLA_REGIONS),
        "control_regions": [r for r in REGIONS if r not in SLA_REGIONS],
        "start_date": _day(SLA_START),
        "true_effect": SLA_EFFECT,
        "outcome": "SQL given SAL (P(SQL | SAL), cohorts by MQL date)",
        "applies_to": "leads of the SLA regions whose MQL is on or after start_date",
        "response_median_hours": {
            "before": dict(zip(REGIONS, RESPONSE_MEDIAN_HOURS.tolist(), strict=True)),
            "after_in_sla_regions": SLA_RESPONSE_MEDIAN_HOURS,
        },
        "common_trend_by_mql_quarter": dict(zip(QUARTERS, SQL_TREND.tolist(), strict=True)),
    }


def _shares(codes: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """Share of each label among ``codes`` (labels with no rows omitted)."""
    counts = np.bincount(codes, minlength=len(labels))
    total = counts.sum()
    return {labels[i]: float(counts[i] / total) for i in range(len(labels)) if counts[i]}


def _funnel_truth(
    people: _People,
    users: _Users,
    funnel: _Funnel,
    touches: Mapping[str, np.ndarray],
    stages: Mapping[str, np.ndarray],
    ids: _Ids,
) -> dict[str, Any]:
    """Funnel facts as they appear in the written tables (after the export cut-off).

    ``unworked_leads``: people with an MQL stage event and no sales touch at all.
    Disqualification shares count each Disqualified event once (planted duplicates
    dropped), by the lead-source channel (the person's first touch).
    """
    real = ~stages["duplicate"]
    is_mql = real & (stages["stage"] == _S["MQL"])
    mql_people = np.unique(stages["person"][is_mql])
    is_sales = touches["channel"] >= N_MKT
    unworked = np.setdiff1d(mql_people, np.unique(touches["person"][is_sales]))
    first_mql = np.full(people.n, np.iinfo(np.int64).max)
    np.minimum.at(first_mql, stages["person"][is_mql], stages["recorded"][is_mql])
    first_sales = np.full(people.n, np.iinfo(np.int64).max)
    np.minimum.at(first_sales, touches["person"][is_sales], touches["ts"][is_sales])
    answered = (first_mql < EXPORTED_AT) & (first_sales < EXPORTED_AT) & (first_sales >= first_mql)
    hours = (first_sales - first_mql)[answered] / HOUR
    answered_region = people.region[answered]
    in_period = (
        is_mql & (stages["recorded"] >= ACTIVITY_START) & (stages["recorded"] < ACTIVITY_END)
    )
    mql_week = np.bincount(people.region[stages["person"][in_period]], minlength=len(REGIONS))
    sdr = TEAMS.index("sdr")
    per_sdr = mql_week / N_WEEKS / users.count[sdr]
    capacity = (
        np.bincount(
            users.region[users.team == sdr], users.capacity[users.team == sdr], len(REGIONS)
        )
        / users.count[sdr]
    )
    dq = real & (stages["stage"] == _S["Disqualified"])
    reason, source = stages["reason"][dq], funnel.source[stages["person"][dq]]
    return {
        "over_capacity_regions": list(OVER_CAPACITY_REGIONS),
        "unworked_leads": ids.person(unworked).to_pylist(),
        "unworked_share_planned": dict(zip(REGIONS, UNWORKED_SHARE.tolist(), strict=True)),
        "sla_hours": SLA_HOURS,
        "median_response_hours": {
            REGIONS[r]: float(np.median(hours[answered_region == r]))
            for r in range(len(REGIONS))
            if (answered_region == r).any()
        },
        "mqls_per_sdr_per_week": dict(zip(REGIONS, per_sdr.tolist(), strict=True)),
        "sdr_capacity_leads_per_week": dict(zip(REGIONS, capacity.tolist(), strict=True)),
        "disqualification_reasons": _shares(reason, DQ_REASONS),
        "disqualification_reasons_by_channel": {
            MARKETING_CHANNELS[c]: _shares(reason[source == c], DQ_REASONS)
            for c in range(N_MKT)
            if (source == c).any()
        },
        "disqualification_reason_mix_planned": {
            MARKETING_CHANNELS[c]: dict(
                zip(DQ_REASONS, _reason_probabilities()[2 * c].tolist(), strict=True)
            )
            for c in range(N_MKT)
        },
        "channel_of_record": "lead source: the channel of the person's first touch",
        "recycled_then_sql": ids.person(np.flatnonzero(funnel.reengaged)).to_pylist(),
    }


def _asset_truth(assets: _Assets, ids: _Ids) -> dict[str, Any]:
    """Never used, stale and effective assets: the ids planted by `_make_assets`, chosen
    before any event was drawn (not recomputed from the events, so tests that find them are
    not circular)."""
    return {
        "never_used": ids.asset(np.sort(assets.never_used)).to_pylist(),
        "stale": ids.asset(np.sort(assets.stale_planted)).to_pylist(),
        "effective": ids.asset(assets.effective).to_pylist(),
        "stale_days": STALE_DAYS,
        "stale_rule": "updated_at more than stale_days before the report quarter's end, or "
        "expires_at before it, and shared (event_type share) in the report quarter at or "
        "after it became stale; no other asset is stale by the report quarter's end",
        "never_used_rule": "no asset event of any kind; every other asset has at least one",
        "report_quarter_end": _iso(REPORT_QUARTER_END),
        "effective_win_log_odds_effect": EFFECTIVE_ASSET_WIN_LOG_ODDS,
        "hostile_titles": list(HOSTILE_TITLES),
    }


def _scoring_truth(history: _History, followup: _Followup, funnel: _Funnel) -> dict[str, Any]:
    """The current MQL rule (text and spec) and the true log-odds effects of ``eta``."""
    effects: dict[str, float] = {}
    for prefix, labels, values, reference in (
        ("segment", SEGMENTS, SEGMENT_LOG_ODDS, "SMB"),
        ("industry", INDUSTRIES, INDUSTRY_LOG_ODDS, "Healthcare"),
        ("persona", PERSONAS, PERSONA_LOG_ODDS, "Practitioner"),
    ):
        for label, value in zip(labels, values.tolist(), strict=True):
            if label != reference:
                effects[f"{prefix}={label}"] = value
    effects["n_engagement_touches"] = ENGAGEMENT_LOG_ODDS
    for name, value in zip(MARKETING_CHANNELS, MARKETING_LOG_ODDS.tolist(), strict=True):
        effects[f"exposed_{name}"] = value
    mql = history.is_mql
    in_90 = (
        funnel.sql & (funnel.sql_at <= history.mql_at + 90 * DAY) & (funnel.sql_at < EXPORTED_AT)
    )
    return {
        "current_mql_rule": CURRENT_MQL_RULE,
        "current_mql_rule_spec": {
            "min_engagement_touches": MQL_MIN_ENGAGEMENT,
            "engagement_touch_types": list(ENGAGEMENT_TYPES),
            "or_any_touch_type": list(TRIGGER_TYPES),
            "counts": "marketing touches since the lead was created (no window)",
            "fires_at": "the touch that meets the rule; that touch's ts is the MQL time",
        },
        "outcome": "SQL within 90 days of MQL",
        "intercept": INTERCEPT,
        "effects": effects,
        "reference_levels": {
            "segment": "SMB",
            "industry": "Healthcare",
            "persona": "Practitioner",
        },
        "engagement_cap": ENGAGEMENT_CAP,
        "features_as_of": "the MQL: touches strictly before the one that fired the rule",
        "stage_model": {
            "p_sal_given_worked": f"{SAL_CEILING} * sigmoid(eta + {SAL_SHIFT}) * m_nurture",
            "p_meeting_given_sal": f"{MEETING_BASE} * m_script",
            "p_sql_given_sal": f"{SQL_CEILING} * sigmoid(eta + {SQL_SHIFT} + "
            f"{SALES_LOG_ODDS['sales_meeting']}*meeting + {SALES_LOG_ODDS['sales_call']}*call + "
            f"{SALES_LOG_ODDS['sales_email']}*email) + trend_quarter + {SLA_EFFECT}*sla",
        },
        "n_mql": int(mql.sum()),
        "n_sql_within_90_days_of_mql": int(in_90.sum()),
    }


def _ground_truth(
    seed: int,
    sizes: ScaleSizes,
    people: _People,
    users: _Users,
    plan: _Plan,
    history: _History,
    followup: _Followup,
    arms: _Arms,
    funnel: _Funnel,
    opps: _Opps,
    assets: _Assets,
    events: Mapping[str, np.ndarray],
    touches: Mapping[str, np.ndarray],
    stages: Mapping[str, np.ndarray],
    quirks: Mapping[str, int],
    ids: _Ids,
) -> dict[str, Any]:
    """Everything planted, under the key names of DESIGN.md ("Demo ground truth")."""
    closed = opps.closes_at < EXPORTED_AT
    created = opps.created_at < EXPORTED_AT
    return {
        "seed": seed,
        "scale": sizes.scale,
        "quarters": list(QUARTERS),
        "report_quarter": REPORT_QUARTER,
        "exported_at": _iso(EXPORTED_AT),
        "activity_start": _iso(ACTIVITY_START),
        "activity_end": _iso(ACTIVITY_END),
        "channels": _channel_truth(people, plan, history, followup, arms, funnel),
        "experiments": _experiment_truth(people, history, followup, arms, opps),
        "sla_rollout": _sla_truth(),
        "funnel": _funnel_truth(people, users, funnel, touches, stages, ids),
        "assets": _asset_truth(assets, ids),
        "scoring": _scoring_truth(history, followup, funnel),
        "opportunities": {
            "cycle_gap_days": CYCLE_GAP_DAYS,
            "create_probability": dict(zip(SEGMENTS, OPP_CREATE_P.tolist(), strict=True)),
            "win_log_odds": dict(zip(SEGMENTS, WIN_LOG_ODDS.tolist(), strict=True)),
            "effective_asset_win_log_odds_effect": EFFECTIVE_ASSET_WIN_LOG_ODDS,
            "n_won": int((created & closed & opps.won).sum()),
            "n_lost": int((created & closed & ~opps.won).sum()),
            "n_open": int((created & ~closed).sum()),
        },
        "quirks": {
            **quirks,
            "sales_touches_without_user": int(
                ((touches["channel"] >= N_MKT) & (touches["user"] < 0)).sum()
            ),
        },
    }


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars to Python, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------- tables


def _width(digits: int, count: int) -> int:
    """Id width: ``digits``, or more if ``count`` ids need more."""
    return max(digits, len(str(max(count, 1))))


def _ids(prefix: str, index: np.ndarray, width: int) -> pa.Array:
    """String ids ``prefix`` + zero-padded ``index + 1``; null where ``index < 0``."""
    index = np.asarray(index, dtype=np.int64)
    numbers = pa.array(index + 1, mask=index < 0)
    digits = pc.utf8_lpad(pc.cast(numbers, pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


@dataclass(frozen=True, slots=True)
class _Ids:
    """Id formats of the entities (widths grow only if a scale needs more digits)."""

    n_accounts: int
    n_people: int
    n_users: int
    n_campaigns: int
    n_assets: int
    n_opps: int

    def account(self, index: np.ndarray) -> pa.Array:
        return _ids("A", index, _width(6, self.n_accounts))

    def person(self, index: np.ndarray) -> pa.Array:
        return _ids("P", index, _width(7, self.n_people))

    def user(self, index: np.ndarray) -> pa.Array:
        return _ids("U", index, _width(3, self.n_users))

    def campaign(self, index: np.ndarray) -> pa.Array:
        return _ids("CMP", index, _width(4, self.n_campaigns))

    def asset(self, index: np.ndarray) -> pa.Array:
        return _ids("AS", index, _width(4, self.n_assets))

    def opp(self, index: np.ndarray) -> pa.Array:
        return _ids("O", index, _width(6, self.n_opps))


def _labels(labels: Sequence[str], codes: np.ndarray) -> pa.Array:
    """String column from integer codes into ``labels``; null where the code is negative."""
    codes = np.asarray(codes)
    return pa.array(list(labels), pa.string()).take(
        pa.array(codes.astype(np.int32), mask=codes < 0)
    )


def _timestamps(seconds: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """UTC timestamp column (microseconds) from whole seconds; null where ``mask``."""
    micros = np.asarray(seconds, dtype=np.int64) * 1_000_000
    return pa.array(micros, type=pa.timestamp("us", tz="UTC"), mask=mask)


def _floats(values: np.ndarray) -> pa.Array:
    """Float column; NaN becomes null."""
    return pa.array(np.asarray(values, dtype=float), type=pa.float64(), from_pandas=True)


def _sha256_hex(texts: pa.Array) -> pa.Array:
    """Lower-case hex sha256 of each string, computed in DuckDB (vectorised)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("texts", pa.table({"i": np.arange(len(texts)), "t": texts}))
        table = con.sql("SELECT sha256(t) AS h FROM texts ORDER BY i").to_arrow_table()
    finally:
        con.close()
    return table.column("h").combine_chunks().cast(pa.string())


def _accounts_table(accounts: _Accounts, ids: _Ids) -> pa.Table:
    """Table ``accounts``; two names carry markup / formula characters on purpose."""
    words = [_labels(w, accounts.name_words[:, i]) for i, w in enumerate(ACCOUNT_WORDS)]
    name = pc.binary_join_element_wise(*words, " ")
    for index, quirky in zip(accounts.quirky, QUIRKY_ACCOUNT_NAMES, strict=True):
        mask = np.zeros(accounts.n, dtype=bool)
        mask[index] = True
        name = pc.if_else(pa.array(mask), pa.scalar(quirky), name)
    return pa.table(
        {
            "account_id": ids.account(np.arange(accounts.n)),
            "name": name,
            "industry": _labels(INDUSTRIES, accounts.industry),
            "segment": _labels(SEGMENTS, accounts.segment),
            "region": _labels(REGIONS, accounts.region),
            "created_at": _timestamps(accounts.created_at),
        }
    )


def _people_table(people: _People, ids: _Ids) -> pa.Table:
    """Table ``people``; e-mails exist only as sha256 hashes."""
    number = pc.cast(pa.array(np.arange(1, people.n + 1)), pa.string())
    domain = pc.binary_join_element_wise(
        "a", pc.cast(pa.array(people.account + 1), pa.string()), ".example.com", ""
    )
    email = pc.binary_join_element_wise(
        _labels(FIRST_NAMES, people.first_name),
        ".",
        _labels(LAST_NAMES, people.last_name),
        ".",
        number,
        "@",
        domain,
        "",
    )
    return pa.table(
        {
            "person_id": ids.person(np.arange(people.n)),
            "account_id": ids.account(people.account),
            "persona": _labels(PERSONAS, people.persona),
            "created_at": _timestamps(people.created_at),
            "email_hash": _sha256_hex(email),
        }
    )


def _users_table(users: _Users, ids: _Ids) -> pa.Table:
    """Table ``users``: capacity in leads per week (null for marketing)."""
    return pa.table(
        {
            "user_id": ids.user(np.arange(users.team.size)),
            "team": _labels(TEAMS, users.team),
            "region": _labels(REGIONS, users.region),
            "capacity_leads_per_week": _floats(users.capacity),
        }
    )


def _campaigns_table(
    rng: np.random.Generator, sizes: ScaleSizes, n_people: int, ids: _Ids
) -> pa.Table:
    """Table ``campaigns``: ``k`` per marketing channel and quarter, cost scaled to volume.

    Campaign index ``(channel * 5 + quarter) * k + j`` is what touches refer to.
    """
    k = sizes.campaigns_per_channel_quarter
    channel, quarter, j = (
        a.ravel()
        for a in np.meshgrid(
            np.arange(N_MKT), np.arange(len(QUARTERS)), np.arange(k), indexing="ij"
        )
    )
    names = [
        f"{QUARTERS[q]} {CHANNEL_LABELS[c]} – {CAMPAIGN_THEMES[(c + i) % len(CAMPAIGN_THEMES)]}"
        for c, q, i in zip(channel.tolist(), quarter.tolist(), j.tolist(), strict=True)
    ]
    cost = CAMPAIGN_BASE_COST[channel] * (n_people / 3_000) / k * rng.uniform(0.85, 1.15, j.size)
    start = QUARTER_STARTS[quarter] // DAY
    end = QUARTER_STARTS[quarter + 1] // DAY - 1
    return pa.table(
        {
            "campaign_id": ids.campaign(np.arange(j.size)),
            "channel": _labels(MARKETING_CHANNELS, channel),
            "name": pa.array(names, pa.string()),
            "start_date": pa.array(start.astype(np.int32), pa.date32()),
            "end_date": pa.array(end.astype(np.int32), pa.date32()),
            "cost": _floats(np.round(cost, 2)),
        }
    )


TOUCH_SCHEMA = pa.schema(
    [
        ("touch_id", pa.string()),
        ("person_id", pa.string()),
        ("account_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("channel", pa.string()),
        ("campaign_id", pa.string()),
        ("touch_type", pa.string()),
        ("is_sales_touch", pa.bool_()),
        ("user_id", pa.string()),
        ("asset_id", pa.string()),
    ]
)


def _write_touchpoints(
    path: Path, touches: Mapping[str, np.ndarray], people: _People, ids: _Ids, rows_per_group: int
) -> int:
    """Write ``touchpoints`` chunk by chunk (one row group each) with ``ParquetWriter``.

    Only one chunk of string columns exists at a time, which keeps ``large`` in memory.
    """
    n = touches["ts"].size
    width = _width(8, n)
    with pq.ParquetWriter(path, TOUCH_SCHEMA) as writer:
        for lo in range(0, n, rows_per_group):
            part = {key: value[lo : lo + rows_per_group] for key, value in touches.items()}
            person = part["person"].astype(np.int64)
            table = pa.table(
                {
                    "touch_id": _ids("T", np.arange(lo, lo + person.size), width),
                    "person_id": ids.person(person),
                    "account_id": ids.account(people.account[person]),
                    "ts": _timestamps(part["ts"]),
                    "channel": _labels(CHANNELS, part["channel"]),
                    "campaign_id": ids.campaign(part["campaign"]),
                    "touch_type": _labels(TOUCH_TYPES, part["touch_type"]),
                    "is_sales_touch": pa.array(part["channel"] >= N_MKT),
                    "user_id": ids.user(part["user"]),
                    "asset_id": ids.asset(part["asset"]),
                },
                schema=TOUCH_SCHEMA,
            )
            writer.write_table(table, row_group_size=rows_per_group)
    return n


def _stage_events_table(stages: Mapping[str, np.ndarray], ids: _Ids) -> pa.Table:
    """Table ``stage_events`` (``entered_at`` as recorded, quirks included)."""
    return pa.table(
        {
            "person_id": ids.person(stages["person"]),
            "stage": _labels(STAGES, stages["stage"]),
            "entered_at": _timestamps(stages["recorded"]),
            "owner_user_id": ids.user(stages["owner"]),
            "reason": _labels(DQ_REASONS, stages["reason"]),
        }
    )


def _opportunities_table(opps: _Opps, ids: _Ids) -> pa.Table:
    """Table ``opportunities`` as of the export: open ones have no close, stage by progress.

    ``is_won`` is written with pandas metadata (a pandas round trip) so that pandas reads it
    as the nullable ``boolean`` dtype.
    """
    keep = opps.created_at < EXPORTED_AT
    created, closes = opps.created_at[keep], opps.closes_at[keep]
    won, is_open = opps.won[keep], closes >= EXPORTED_AT
    progress = (EXPORTED_AT - created) / np.maximum(closes - created, 1)
    stage = np.where(won, 3, 4)
    stage = np.where(is_open, np.minimum((progress * 3).astype(np.int64), 2), stage)
    table = pa.table(
        {
            "opp_id": ids.opp(np.flatnonzero(keep)),
            "account_id": ids.account(opps.account[keep]),
            "created_at": _timestamps(created),
            "closed_at": _timestamps(closes, mask=is_open),
            "stage": _labels(OPEN_STAGES + ("Closed Won", "Closed Lost"), stage),
            "is_won": pa.array(won, mask=is_open),
            "amount": _floats(opps.amount[keep]),
            "owner_user_id": ids.user(opps.owner[keep]),
        }
    )
    frame = table.to_pandas()
    frame["is_won"] = frame["is_won"].astype("boolean")
    return pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False)


def _opportunity_people_table(opps: _Opps, ids: _Ids) -> pa.Table:
    """Table ``opportunity_people`` (opportunities created before the export)."""
    keep = opps.created_at[opps.person_opp] < EXPORTED_AT
    return pa.table(
        {
            "opp_id": ids.opp(opps.person_opp[keep]),
            "person_id": ids.person(opps.person[keep]),
            "role": _labels(ROLES, opps.role[keep]),
        }
    )


def _assets_table(assets: _Assets, ids: _Ids) -> pa.Table:
    """Table ``assets`` (titles are free text: two are hostile on purpose)."""
    stage = np.array([ASSET_STAGE[t] for t in range(len(ASSET_TYPES))])[assets.type]
    team = np.array([ASSET_TEAM[t] for t in range(len(ASSET_TYPES))])[assets.type]
    return pa.table(
        {
            "asset_id": ids.asset(np.arange(assets.n)),
            "title": pa.array(assets.title, pa.string()),
            "type": _labels(ASSET_TYPES, assets.type),
            "funnel_stage": pa.array(stage.tolist(), pa.string()),
            "persona": _labels(PERSONAS, assets.persona),
            "owner_team": pa.array(team.tolist(), pa.string()),
            "created_at": _timestamps(assets.created_at),
            "updated_at": _timestamps(assets.updated_at),
            "expires_at": _timestamps(assets.expires_at, mask=assets.expires_at < 0),
        }
    )


def _asset_events_table(events: Mapping[str, np.ndarray], ids: _Ids) -> pa.Table:
    """Table ``asset_events``."""
    n = events["ts"].size
    return pa.table(
        {
            "event_id": _ids("AE", np.arange(n), _width(7, n)),
            "asset_id": ids.asset(events["asset"]),
            "ts": _timestamps(events["ts"]),
            "event_type": _labels(EVENT_TYPES, events["event_type"]),
            "user_id": ids.user(events["user"]),
            "person_id": ids.person(events["person"]),
            "account_id": ids.account(events["account"]),
            "opp_id": ids.opp(events["opp"]),
            "share_id": _ids(
                "SH", events["share"], _width(7, int(events["share"].max(initial=0)) + 1)
            ),
            "device": _labels(DEVICES, events["device"]),
            "duration_s": _floats(events["duration_s"]),
            "pages_viewed": _floats(events["pages_viewed"]),
            "pages_total": _floats(events["pages_total"]),
        }
    )


def _assignments_table(
    arms: _Arms, history: _History, followup: _Followup, n_accounts: int, ids: _Ids
) -> pa.Table:
    """Table ``assignments``: one row per unit of each experiment."""
    nurture = np.flatnonzero(arms.nurture >= 0)
    outreach = np.flatnonzero(arms.outreach >= 0)
    blocks = [
        (
            NURTURE,
            "person",
            ids.person(nurture),
            list(NURTURE_ARMS),
            arms.nurture[nurture],
            history.mql_at[nurture],
        ),
        (
            JOINT,
            "account",
            ids.account(np.arange(n_accounts)),
            list(JOINT_ARMS),
            arms.joint,
            np.full(n_accounts, JOINT_ASSIGNED_AT),
        ),
        (
            OUTREACH,
            "person",
            ids.person(outreach),
            list(OUTREACH_ARMS),
            arms.outreach[outreach],
            followup.first_touch_at[outreach],
        ),
    ]
    tables = [
        pa.table(
            {
                "experiment_id": pa.array([experiment] * len(unit_id), pa.string()),
                "unit_type": pa.array([unit_type] * len(unit_id), pa.string()),
                "unit_id": unit_id,
                "arm": _labels(arm_names, codes),
                "assigned_at": _timestamps(assigned_at),
            }
        )
        for experiment, unit_type, unit_id, arm_names, codes, assigned_at in blocks
    ]
    return pa.concat_tables(tables).combine_chunks()
