"""The baseline for benchmarks/serving_latency.py: the same TabularModel under stock
`kserve.ModelServer` (1 worker, gRPC off, KServe's own uvicorn setup, TimingMiddleware, latency
logging off). Note: ModelServer binds 0.0.0.0 (components/serve/README.md, "How the server is
built") — a benchmark-only script.

    python benchmarks/stock_kserve_server.py MODEL_DIR NAME PORT
"""

from __future__ import annotations

import sys


def main() -> None:
    model_dir, name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.argv = sys.argv[:1]  # KServe parses the command line when imported
    import kserve

    from components.serve.model_source import load_model_source
    from components.serve.tabular_model import TabularModel

    model = TabularModel(name, load_model_source(model_dir))
    model.load()
    kserve.ModelServer(
        http_port=port, enable_grpc=False, workers=1, enable_latency_logging=False
    ).start([model])


if __name__ == "__main__":
    main()
