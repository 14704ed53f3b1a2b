"""Waiting for a server a test started (test support)."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests


def wait_http(
    url: str, timeout: float, alive: Callable[[], bool] = lambda: True, what: str = ""
) -> None:
    """Until `url` answers below 500; RuntimeError after `timeout` s or once `alive()` is false
    (the process died: no point waiting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).status_code < 500:
                return
        except requests.RequestException:
            pass
        if not alive():
            break
        time.sleep(0.3)
    raise RuntimeError(f"{what or url} did not answer within {timeout:g} s")
