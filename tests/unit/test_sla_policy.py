"""The SLA policy: durations, overrides per channel and (channel, region), file errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.settings import REPO_ROOT, load_settings
from tables.sla import (
    DAY_MS,
    DEFAULT_DURATIONS,
    HOUR_MS,
    MINUTE_MS,
    Milestone,
    PolicyError,
    SlaPolicy,
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "ms"),
    [("4h", 4 * HOUR_MS), ("30m", 30 * MINUTE_MS), ("2d", 2 * DAY_MS), ("90s", 90_000),
     ("1h30m", 90 * MINUTE_MS), ("0s", 0), ("1d2h3m4s", DAY_MS + 2 * HOUR_MS + 3 * MINUTE_MS + 4000)],
)
def test_durations_parse(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("bad", ["4", "4 hours", "-1h", "1.5h", "h", "", "4H", 4, None, "1w"])
def test_bad_durations_are_named(bad: object) -> None:
    with pytest.raises(PolicyError, match=r"x\.y: expected a duration such as \"4h\""):
        parse_duration(bad, "x.y")


@given(st.integers(min_value=0, max_value=400 * DAY_MS // 1000).map(lambda s: s * 1000))
def test_format_duration_round_trips(ms: int) -> None:
    assert parse_duration(format_duration(ms)) == ms


def test_no_file_means_the_spec_defaults() -> None:
    policy = SlaPolicy.load(None)
    d = policy.durations("EDI", "EU")
    assert d[Milestone.ACCEPTANCE] == 4 * HOUR_MS
    assert d[Milestone.ALLOCATION] == 2 * HOUR_MS
    assert d[Milestone.SHIPMENT] == 48 * HOUR_MS
    assert d[Milestone.DELIVERY] == 5 * DAY_MS
    assert d[Milestone.INVOICE] == 24 * HOUR_MS
    assert d[Milestone.PAYMENT] == 0
    assert d[Milestone.ORPHAN] == HOUR_MS
    assert policy.durations(None, None) == d


def test_example_file_spells_out_the_defaults_and_demo_file_loads() -> None:
    example = SlaPolicy.load(REPO_ROOT / "docs" / "sla-policy.example.toml")
    assert example == SlaPolicy()
    demo = SlaPolicy.load(REPO_ROOT / "scripts" / "demo-sla-policy.toml")
    # the SPEC durations at the speedup of `make run` (o2c simulate --live 1440)
    spec = SlaPolicy().durations(None, None)
    for milestone, duration in demo.durations("SALES", "NA").items():
        assert duration == -(-spec[milestone] // 1440 // 1000) * 1000, milestone
    assert demo.durations("ECOM", "NA")[Milestone.ACCEPTANCE] == 5_000
    assert demo.durations("EDI", "EU")[Milestone.DELIVERY] == 3 * MINUTE_MS
    assert demo.durations("EDI", "NA")[Milestone.DELIVERY] == 5 * MINUTE_MS


def test_most_specific_setting_wins_per_milestone() -> None:
    policy = SlaPolicy.from_toml(
        """
        [default]
        acceptance = "3h"
        [channel.ECOM]
        ACCEPTANCE = "1h"
        shipment = "24h"
        [channel.ECOM.region.EU]
        shipment = "12h"
        """
    )
    eu = policy.durations("ECOM", "EU")
    assert eu[Milestone.ACCEPTANCE] == HOUR_MS  # channel
    assert eu[Milestone.SHIPMENT] == 12 * HOUR_MS  # channel + region
    assert eu[Milestone.INVOICE] == DEFAULT_DURATIONS[Milestone.INVOICE]  # SPEC default
    na = policy.durations("ECOM", "NA")
    assert (na[Milestone.ACCEPTANCE], na[Milestone.SHIPMENT]) == (HOUR_MS, 24 * HOUR_MS)
    edi = policy.durations("EDI", "EU")
    assert (edi[Milestone.ACCEPTANCE], edi[Milestone.SHIPMENT]) == (3 * HOUR_MS, 48 * HOUR_MS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[default]\nacceptence = '4h'", r"policy: default\.acceptence: unknown milestone; expected one of acceptance, "),
        ("[default]\nacceptance = 4", r"policy: default\.acceptance: expected a duration"),
        ("[channel.WEB]\nacceptance = '1h'", r"policy: channel\.WEB: unknown channel; expected one of EDI, ECOM"),
        ("[channel.EDI.region.EU]\nshipment = '2 days'", r"policy: channel\.EDI\.region\.EU\.shipment: expected a duration"),
        ("[defaults]\nacceptance = '1h'", r"policy: unknown section\(s\) defaults"),
        ("[default\n", r"policy: not valid TOML"),
        ("channel = 3", r"policy: channel must be a table"),
        ("[channel]\nEDI = '1h'", r"policy: channel\.EDI: expected a table"),
        ("[channel.EDI]\nregion = '1h'", r"policy: channel\.EDI\.region: expected"),
    ],
)
def test_invalid_policy_errors_name_the_place(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        SlaPolicy.from_toml(text)


def test_settings_load_and_validate_the_policy_file(tmp_path: Path) -> None:
    good = tmp_path / "sla.toml"
    good.write_text("[channel.SALES]\ninvoice = '2d'\n")
    settings = load_settings(sla_policy_path=good)
    assert settings.sla_policy.durations("SALES", "EU")[Milestone.INVOICE] == 2 * DAY_MS
    assert load_settings().sla_clock == "wall"
    assert load_settings(sla_policy_path=None).sla_policy == SlaPolicy()
    bad = tmp_path / "bad.toml"
    bad.write_text("[default]\npayment = 'soon'\n")
    with pytest.raises(PolicyError, match=rf"{bad}: default\.payment: expected a duration"):
        _ = load_settings(sla_policy_path=bad).sla_policy
    with pytest.raises(PolicyError, match="cannot read SLA policy"):
        _ = load_settings(sla_policy_path=tmp_path / "missing.toml").sla_policy
