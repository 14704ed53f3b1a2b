"""The shared retry policy against a real HTTP server on 127.0.0.1: passing failures are retried
with doubling waits (or the server's Retry-After), a status that cannot improve is not, and when
the attempts run out the caller gets the last answer or error."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from components.common.retry import MAX_WAIT_S, retrying
from tests.support.servers import free_port


class Script:
    """A GET endpoint answering `answers` (status, headers) in turn, then 200."""

    def __init__(self, answers: list[tuple[int, dict[str, str]]]) -> None:
        self.answers, self.served = list(answers), 0
        script = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers = script.answers.pop(0) if script.answers else (200, {})
                script.served += 1
                self.send_response(status)
                for key, value in {**headers, "Content-Length": "2"}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"


@pytest.fixture
def serve() -> Iterator:
    started: list[Script] = []

    def start(*answers: tuple[int, dict[str, str]]) -> Script:
        script = Script(list(answers))
        threading.Thread(target=script.server.serve_forever, daemon=True).start()
        started.append(script)
        return script

    yield start
    for script in started:
        script.server.shutdown()
        script.server.server_close()


def _get(script: Script, attempts: int = 4, backoff_s: float = 0.5):
    waits: list[float] = []
    policy = retrying(attempts, backoff_s, (requests.RequestException,), waits.append)
    response = policy(requests.get, script.url, timeout=5)
    return response, waits, policy.statistics["attempt_number"]


def test_two_failures_then_an_answer_are_retried_with_doubling_waits(serve):
    script = serve((503, {}), (500, {}))
    response, waits, attempts = _get(script)
    assert response.status_code == 200 and script.served == attempts == 3
    assert waits == [0.5, 1.0]


@pytest.mark.parametrize("status", [400, 401, 404, 501])
def test_a_status_that_cannot_improve_is_not_retried(serve, status):
    script = serve((status, {}))
    response, waits, attempts = _get(script)
    assert response.status_code == status and script.served == attempts == 1 and waits == []


def test_retry_after_is_honoured_and_capped(serve):
    script = serve((429, {"Retry-After": "2"}), (503, {"Retry-After": "3600"}))
    response, waits, _ = _get(script)
    assert response.status_code == 200 and waits == [2.0, MAX_WAIT_S]


def test_when_attempts_run_out_the_last_answer_or_error_is_given(serve):
    script = serve(*[(502, {})] * 5)
    response, waits, attempts = _get(script, attempts=3)
    assert response.status_code == 502 and script.served == attempts == 3 and len(waits) == 2
    refused = retrying(2, 0.0, (requests.RequestException,), lambda s: None)
    with pytest.raises(requests.ConnectionError):
        refused(requests.get, f"http://127.0.0.1:{free_port()}/", timeout=5)
    assert refused.statistics["attempt_number"] == 2


def test_only_the_callers_error_types_are_retried():
    class Refused(Exception):
        status = 403  # an error carrying an HTTP status outside the retried ones

    calls: list[int] = []

    def fail(error: Exception) -> None:
        calls.append(1)
        raise error

    for error in (ValueError("bad input"), Refused()):
        calls.clear()
        with pytest.raises(type(error)):
            retrying(5, 0.0, (Refused, OSError), lambda s: None)(fail, error)
        assert len(calls) == 1
    calls.clear()
    with pytest.raises(OSError):
        retrying(5, 0.0, (Refused, OSError), lambda s: None)(fail, OSError("reset"))
    assert len(calls) == 5
