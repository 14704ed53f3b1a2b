"""KServe, imported without letting it read our command line.

`kserve.model_server` parses sys.argv at import (parse_known_args, which also accepts
abbreviations such as `--model` for its `--model_name` and exits on ambiguous ones): import it
with an empty argument list so the project's own CLI flags never reach KServe's parser.
"""

import sys

_argv, sys.argv = sys.argv, sys.argv[:1]
try:
    import kserve
    from kserve.errors import InvalidInput
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
finally:
    sys.argv = _argv

__all__ = ["InferOutput", "InferRequest", "InferResponse", "InvalidInput", "kserve"]
