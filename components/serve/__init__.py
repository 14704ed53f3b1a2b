"""The model server (a KServe custom predictor): shared runtime, not a pipeline stage.

The deploy stage and the CLI import `components.serve.launch` (start_server) and
`components.serve.infra_validation`; the serving image runs `python -m components.serve`.
Nothing here imports KServe at package import time.
"""
