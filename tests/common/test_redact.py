"""Redaction (components/common/redact.py): URLs in errors and logs keep scheme and host only;
params lose credential-like values, userinfo and query; registered secrets never pass."""

import logging

from components.common.redact import (
    REDACTED,
    install_log_filter,
    redact_params,
    redact_text,
    redact_url,
    register_secret,
)


def test_a_webhook_url_keeps_scheme_and_host_only():
    assert redact_url("https://hooks.slack.com/services/T0/B0/XXXX") == "https://hooks.slack.com/…"
    assert redact_url("https://user:pw@h.example:8443/") == "https://h.example:8443/…"
    assert redact_url("https://h.example") == "https://h.example"
    assert redact_url("not a url") == "not a url"


def test_keep_path_strips_userinfo_query_and_fragment_only():
    url = "https://u:p@h.example/data/b.parquet?sig=abc#x"
    assert redact_url(url, keep_path=True) == "https://h.example/data/b.parquet…"
    assert redact_url("s3://bucket/p/b.parquet", keep_path=True) == "s3://bucket/p/b.parquet"


def test_every_url_in_a_text_and_every_registered_secret_is_redacted():
    text = "POST https://hooks.slack.com/services/T1/B1/YYYY failed (see http://a.example/x?k=v)"
    assert redact_text(text) == ("POST https://hooks.slack.com/… failed (see http://a.example/…)")
    register_secret("http://127.0.0.1:9/services/T2/B2/ZZZZ?token=q")
    error = "Max retries exceeded with url: /services/T2/B2/ZZZZ?token=q (refused)"
    assert "ZZZZ" not in redact_text(error) and "token=q" not in redact_text(error)


def test_params_lose_credentials_userinfo_and_query():
    params = {
        "data_ingestion.api.token": "abc",
        "data_ingestion.sql.password_env": "PGPASSWORD",  # a variable's name: kept
        "data_ingestion.source": "https://u:p@h.example/b.parquet?sig=1",
        "model_training.n_estimators": 400,
    }
    assert redact_params(params) == {
        "data_ingestion.api.token": REDACTED,
        "data_ingestion.sql.password_env": "PGPASSWORD",
        "data_ingestion.source": "https://h.example/b.parquet…",
        "model_training.n_estimators": 400,
    }


def test_the_log_filter_rewrites_records(caplog):
    register_secret("http://127.0.0.1:9/services/T3/B3/WWWW")
    install_log_filter("mlpipe.test.redact")
    with caplog.at_level(logging.DEBUG, logger="mlpipe.test.redact"):
        logging.getLogger("mlpipe.test.redact").debug(
            '"POST %s HTTP/1.1" 500', "/services/T3/B3/WWWW"
        )
    assert "WWWW" not in caplog.text and "POST …" in caplog.text
