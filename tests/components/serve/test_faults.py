"""Unit tests of components/serve/faults.py: parsing fault specs, describing them, their seeded
randomness, and the explicit switch (`--allow-faults` / MLPIPE_ALLOW_FAULTS=1) without which a
configured fault is refused. (test_fault_switch.py checks both CLIs refuse at startup.)"""

from __future__ import annotations

import pytest

from components.serve.faults import (
    ALLOW_ENV,
    FAULT_ENV,
    Faults,
    FaultsNotAllowed,
    faults_allowed,
    faults_from_env,
    parse_faults,
    require_allowed,
)

SEED_ENV = "MLPIPE_SERVE_FAULT_SEED"


@pytest.fixture(autouse=True)
def no_switch(monkeypatch):
    for name in (ALLOW_ENV, FAULT_ENV, SEED_ENV):
        monkeypatch.delenv(name, raising=False)


def test_a_fault_without_the_switch_is_refused(monkeypatch):
    with pytest.raises(FaultsNotAllowed, match="--allow-faults"):
        faults_from_env(["invert"])
    monkeypatch.setenv(FAULT_ENV, "error:0.5")
    with pytest.raises(FaultsNotAllowed, match=ALLOW_ENV):
        faults_from_env()
    monkeypatch.setenv(ALLOW_ENV, "0")
    with pytest.raises(FaultsNotAllowed):
        faults_from_env()


def test_the_switch_lets_faults_through(monkeypatch):
    assert faults_from_env(["invert"], allow=True).invert
    monkeypatch.setenv(ALLOW_ENV, "1")
    assert faults_from_env(["latency:5"]).latency_ms == 5
    assert not faults_from_env().active  # no fault configured: nothing to allow


@pytest.mark.parametrize("specs", [None, "", [], ["none"], "none, ,", [" , "]])
def test_no_fault_configured(specs):
    faults = parse_faults(specs)
    assert faults == Faults() and not faults.active and faults.describe() == "none"


def test_a_list_and_comma_separated_specs_are_the_same():
    want = Faults(invert=True, error_rate=0.3, latency_ms=20.0, seed=None)
    assert parse_faults(["invert", "error:0.3", "latency:20"]) == want
    assert parse_faults("invert,error:0.3,latency:20") == want
    assert parse_faults([" invert , error:0.3", "latency:20 "]) == want
    assert parse_faults("latency:5,latency:7").latency_ms == 7  # the last one counts


def test_bounds_are_inclusive_and_zero_is_no_fault():
    assert parse_faults("error:1").error_rate == 1.0
    assert parse_faults("error:0.0") == Faults() and parse_faults("latency:0") == Faults()
    assert parse_faults("latency:0.5").active


@pytest.mark.parametrize(
    "spec",
    [
        "invert:1",
        "error",
        "error:",
        "error:x",
        "error:1.01",
        "error:-0.1",
        "latency:-1",
        "latency:fast",
        "slow:5",
        "INVERT",
    ],
)
def test_a_bad_spec_is_refused_naming_it_and_the_forms(spec):
    with pytest.raises(ValueError, match="use invert, error:<rate 0..1> or latency:<ms>") as err:
        parse_faults(["invert", spec])
    assert repr(spec) in str(err.value)
    assert not isinstance(err.value, FaultsNotAllowed)


def test_describe_round_trips_through_parse():
    faults = Faults(invert=True, error_rate=0.25, latency_ms=12.5)
    assert faults.describe() == "invert,error:0.25,latency:12.5"
    assert parse_faults(faults.describe()) == faults
    assert Faults(error_rate=1.0, latency_ms=3.0).describe() == "error:1,latency:3"


def test_the_seed_makes_the_random_draws_repeatable():
    seeded = parse_faults("error:0.5", seed=11)
    assert seeded.seed == 11
    draws = [seeded.rng().random() for _ in range(2)]
    assert draws[0] == draws[1]  # each rng() starts the same sequence
    assert seeded.rng().random() != parse_faults("error:0.5", seed=12).rng().random()


@pytest.mark.parametrize(
    ("value", "allowed"),
    [("1", True), (" 1 ", True), ("true", False), ("yes", False), ("", False), ("0", False)],
)
def test_only_1_in_the_environment_allows_faults(monkeypatch, value, allowed):
    monkeypatch.setenv(ALLOW_ENV, value)
    assert faults_allowed() is allowed
    assert faults_allowed(True) is True  # the CLI flag always does


def test_require_allowed_passes_inactive_faults_and_names_active_ones():
    quiet = Faults()
    assert require_allowed(quiet) is quiet
    with pytest.raises(FaultsNotAllowed) as err:
        require_allowed(Faults(invert=True, latency_ms=20))
    assert "(invert,latency:20)" in str(err.value) and isinstance(err.value, ValueError)
    active = Faults(error_rate=0.1)
    assert require_allowed(active, allow=True) is active


def test_the_cli_wins_over_the_environment_and_the_seed_comes_from_it(monkeypatch):
    monkeypatch.setenv(ALLOW_ENV, "1")
    monkeypatch.setenv(FAULT_ENV, "error:0.2")
    monkeypatch.setenv(SEED_ENV, "5")
    assert faults_from_env(["invert"]) == Faults(invert=True, seed=5)
    assert faults_from_env([]) == Faults(error_rate=0.2, seed=5)  # no CLI faults: the env's
    monkeypatch.setenv(SEED_ENV, "five")
    with pytest.raises(ValueError):
        faults_from_env()
    monkeypatch.setenv(SEED_ENV, "")
    assert faults_from_env().seed is None


def test_a_bad_spec_in_the_environment_is_refused_before_the_switch(monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "error:2")
    with pytest.raises(ValueError, match="bad fault 'error:2'") as err:
        faults_from_env()
    assert not isinstance(err.value, FaultsNotAllowed)
