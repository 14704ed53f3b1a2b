"""The watermark commit is a compare-and-set, on a local folder and on a real S3 API (moto in
server mode): of several runs that read the same watermark, exactly one advances it; the others
are told another run moved it; a run that crashed after claiming may commit its own batch again."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from components.ingest.state import StateStore, WatermarkMoved
from tests.common.test_keyed_store import s3_url  # noqa: F401  (moto's S3 API, module-wide)


@pytest.fixture(params=["local", "s3"])
def state(request, tmp_path, s3_url):  # noqa: F811  (s3_url eagerly: its credentials are set up with the module, not mid-test)
    if request.param == "local":
        return StateStore(tmp_path / "state")
    return StateStore(f"{s3_url}/{tmp_path.name}")


def batch(value: int, sha: str) -> dict:
    return {"value": value, "content_sha256": sha, "version": sha[:6], "column": "year"}


def test_one_of_two_runs_from_the_same_watermark_wins(state):
    state.advance_watermark("src", None, batch(2016, "a" * 64))
    with pytest.raises(WatermarkMoved, match="moved from None to 2016 by another run"):
        state.advance_watermark("src", None, batch(2017, "b" * 64))
    assert state.watermark("src")["value"] == 2016
    state.advance_watermark("src", None, batch(2016, "a" * 64))  # the same batch again: fine
    state.advance_watermark("src", 2016, batch(2017, "c" * 64))  # and on from there
    assert state.watermark("src")["value"] == 2017


def test_concurrent_commits_advance_the_watermark_once(state):
    def commit(i: int) -> bool:
        try:
            state.advance_watermark("src", 2015, batch(2016 + i, f"{i}" * 64))
        except WatermarkMoved:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(commit, range(8)))
    assert won.count(True) == 1
    assert state.watermark("src")["value"] == 2016 + won.index(True)
