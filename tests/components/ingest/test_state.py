"""Forgetting a watermark (`StateStore.reset_watermark`), on a local folder and on a real S3 API
(moto in server mode): the next incremental run loads from the start and commits, whatever batch
it reads, and other sources keep their watermarks. The command, `mlpipe data reset-watermark`:
tests/pipelines/test_data_cli.py."""

from tests.components.ingest import test_watermark_cas as cas

# the same stores (a local folder, moto's S3 API) and batches as the compare-and-set tests
s3_url, state, batch = cas.s3_url, cas.state, cas.batch


def test_after_a_reset_a_different_first_batch_commits(state):
    state.advance_watermark("src", None, batch(2016, "a" * 64))
    state.advance_watermark("other", None, batch(2016, "a" * 64))
    assert state.reset_watermark("src") is True
    assert state.watermark("src") is None
    # the source grew: its first batch from the start is not the one committed before the reset
    state.advance_watermark("src", None, batch(2017, "b" * 64))
    assert state.watermark("src")["value"] == 2017
    assert state.watermark("other")["value"] == 2016


def test_resetting_an_unknown_watermark_says_so_and_changes_nothing(state):
    state.advance_watermark("src", None, batch(2016, "a" * 64))
    assert state.reset_watermark("nope") is False
    assert state.reset_watermark("sr") is False  # a prefix of a key is not that key
    assert state.watermark("src")["value"] == 2016
