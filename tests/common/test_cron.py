"""Cron expressions: the project's 5/6-field spellings, KFP's seconds-first form, robfig's rules."""

from __future__ import annotations

import pytest
import yaml

from components.common.config import DEFAULT_PIPELINE_CONFIG, ConfigError, load_pipeline_config
from components.common.cron import CronError, robfig_parse_errors, to_kfp_cron, validate_cron


@pytest.mark.parametrize(
    ("expr", "kfp"),
    [
        ("0 3 * * 1", "0 0 3 * * 1"),  # Mondays 03:00: KFP would read "0 3" as second 0, minute 3
        ("*/15  *  * * *", "0 */15 * * * *"),
        ("30 2 1 JAN,jul mon-fri", "0 30 2 1 JAN,jul mon-fri"),
        ("0 0 3 * * 1", "0 0 3 * * 1"),  # already KFP's form
        ("0 0 3 ? * *", "0 0 3 ? * *"),
    ],
)
def test_to_kfp_cron_puts_seconds_first(expr, kfp):
    assert to_kfp_cron(expr) == kfp
    assert robfig_parse_errors(kfp) == []


@pytest.mark.parametrize(
    ("expr", "why"),
    [
        ("0 3 *", "has 3 fields"),
        ("0 3 * * * * *", "has 7 fields"),
        ("61 3 * * *", "minute: 61 is outside 0-59"),
        ("0 24 * * *", "hour: 24 is outside 0-23"),
        ("0 3 0 * *", "day of month: 0 is outside 1-31"),
        ("0 3 * 13 *", "month: 13 is outside 1-12"),
        ("0 3 * * 7", "day of week: 7 is outside 0-6"),
        ("*/0 3 * * *", "step '0' must be a positive number"),
        ("0 5-2 * * *", "runs backwards"),
        ("0 x * * *", "'x' is not a number"),
    ],
)
def test_invalid_cron_names_the_field(expr, why):
    with pytest.raises(CronError, match=why.replace("*", r"\*")):
        validate_cron(expr)


def test_robfig_accepts_descriptors_and_refuses_field_count():
    assert robfig_parse_errors("@daily") == []
    assert robfig_parse_errors("@every 1h30m") == []
    assert robfig_parse_errors("@sometimes") != []
    assert "expected 5 to 6 fields" in robfig_parse_errors("1 * * ")[0]


def _config_with(tmp_path, schedule):
    data = yaml.safe_load(DEFAULT_PIPELINE_CONFIG.read_text())
    data["data_ingestion"]["schedule"] = schedule
    path = tmp_path / "pipeline_config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_config_schedule_is_validated_cron(tmp_path):
    cfg = load_pipeline_config(_config_with(tmp_path, "0  3 * * 1"))
    assert cfg.data_ingestion.schedule == "0 3 * * 1"
    with pytest.raises(ConfigError, match=r"data_ingestion.schedule.*has 3 fields"):
        load_pipeline_config(_config_with(tmp_path, "0 3 *"))
