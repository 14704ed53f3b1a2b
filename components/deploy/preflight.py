"""Before any traffic: does the candidate answer the requests the champion answers?

A candidate trained on another feature set passes its own infra validation (its own spec, its own
rows) and then refuses every production row with 400.

- `probe` (the local router): the candidate's server gets the last requests stable answered 2xx
  (recorded by the router, exactly as clients sent them); one it refuses (4xx) or answers without
  a score per row refuses the candidate before any client request.
- `check_spec` (KServe: no router of ours records stable's requests): rows shaped as the
  champion's clients send them (the champion's feature spec) go through the candidate's request
  validation — the model server's own `SpecValidator`, built from the candidate's spec — in the
  deploy task; a row it refuses refuses the candidate before the InferenceService changes."""

from __future__ import annotations

import json
from typing import Any

import httpx

from components.deploy.router import scores_of


class Incompatible(RuntimeError):
    """The candidate refused (or could not score) a request the champion answered."""


def probe(url: str, requests: list[tuple[str, bytes]], timeout_s: float = 30.0) -> int:
    """Send each (path, body) to the candidate at `url`; the number probed, or `Incompatible`
    with the candidate's answer to the first request it refused (4xx) or answered without a
    score per row. 5xx pass here: failing now and then is the canary windows' error rate."""
    with httpx.Client(base_url=url, timeout=timeout_s) as client:
        for path, body in requests:
            resp = client.post(path, content=body, headers={"content-type": "application/json"})
            if resp.status_code >= 500:
                continue  # a server error is not an incompatibility: the canary windows judge it
            got = scores_of(resp.content) if resp.status_code < 300 else []
            want = _rows(body)
            if not got or (want is not None and len(got) != want):
                raise Incompatible(
                    f"it does not score a request the champion answered: HTTP "
                    f"{resp.status_code} {resp.text[:300]}"
                )
    return len(requests)


def _rows(body: bytes) -> int | None:
    """Rows of a V1 body (`instances`); None for another protocol (not counted)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    rows = doc.get("instances") if isinstance(doc, dict) else None
    return len(rows) if isinstance(rows, list) else None


def check_spec(candidate_spec: dict[str, Any], rows: list[dict[str, Any]]) -> int:
    """Validate `rows` (the champion's clients' rows) as the candidate's model server would; the
    number checked, or `Incompatible` with the validator's message for the first it refuses."""
    from components.serve.validation import RequestError, SpecValidator

    if not rows:  # no row to refuse (the validator refuses an empty batch as a request)
        return 0
    validator = SpecValidator(candidate_spec, max_batch=max(1, len(rows)))
    try:
        validator.v1({"instances": rows})
    except RequestError as exc:
        raise Incompatible(f"it refuses a request the champion answers: HTTP 400 {exc}") from exc
    return len(rows)
