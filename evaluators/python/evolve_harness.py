"""Run one Python evaluator for evolve and report its result as JSON.

Usage:
    EVOLVE_RESULT=/path/result.json \
        python3 evolve_harness.py <evaluator.py> <program_path> [function_name]

The harness puts the evaluator's directory at sys.path[0], imports the
evaluator file by path, and calls ``function_name(program_path)`` (default
``evaluate``).  The return value may be:

* a dict with a ``"metrics"`` dict and an optional ``"artifacts"`` dict;
* a flat dict: numbers (bools count as 0/1) become metrics, strings become
  artifacts, anything else becomes an artifact serialised as JSON;
* a 2-tuple/list ``(metrics, artifacts)``;
* any object with a ``.metrics`` attribute and an optional ``.artifacts``
  attribute (for example OpenEvolve's ``EvaluationResult``).

Exactly one JSON object is written to the file named by ``EVOLVE_RESULT``,
atomically (temporary file, then ``os.replace``):

* success: ``{"metrics": {name: number}, "artifacts": {name: string}}``, exit 0.
  Non-finite metric values are written as the strings ``"NaN"``,
  ``"Infinity"`` and ``"-Infinity"``; the file never holds bare NaN tokens.
* failure (import error, exception in the evaluator, unusable return value):
  ``{"error": "<ExcType>: <message>", "traceback": "<last 4000 chars>"}``;
  the traceback is also printed to stderr and the exit status is 1.

Bad arguments or a missing ``EVOLVE_RESULT`` print usage to stderr and exit
with status 2.  The harness never writes to stdout, which stays free for
whatever the evaluator or the candidate program prints.
"""

import importlib.util
import json
import math
import numbers
import os
import sys
import traceback

USAGE = ("usage: EVOLVE_RESULT=<result.json> python3 evolve_harness.py "
         "<evaluator.py> <program_path> [function_name]")


def _number(value):
    """Convert a real number to a JSON-safe value (non-finite -> string)."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _artifact(value):
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return json.dumps(value, default=str)


def _split_flat(mapping):
    """Split a flat dict into (metrics, artifacts) by value type."""
    metrics, artifacts = {}, {}
    for key, value in mapping.items():
        if isinstance(value, numbers.Real):
            metrics[str(key)] = _number(value)
        else:
            artifacts[str(key)] = _artifact(value)
    return metrics, artifacts


def normalise(result):
    """Turn an evaluator's return value into (metrics, artifacts)."""
    if isinstance(result, dict):
        if isinstance(result.get("metrics"), dict):
            metrics, artifacts = result["metrics"], result.get("artifacts") or {}
        else:
            return _split_flat(result)
    elif (isinstance(result, (tuple, list)) and len(result) == 2
          and isinstance(result[0], dict)):
        metrics, artifacts = result[0], result[1] or {}
    elif hasattr(result, "metrics") and isinstance(result.metrics, dict):
        metrics, artifacts = result.metrics, getattr(result, "artifacts", None) or {}
    else:
        raise TypeError(f"evaluate() returned {type(result).__name__}, "
                        "expected a dict of metrics")
    if not isinstance(artifacts, dict):
        raise TypeError(f"artifacts must be a dict, got {type(artifacts).__name__}")
    # Non-numeric entries in an explicit metrics dict are kept as artifacts.
    metric_part, extra = _split_flat(metrics)
    extra.update({str(k): _artifact(v) for k, v in artifacts.items()})
    return metric_part, extra


def write_result(path, payload):
    text = json.dumps(payload, allow_nan=False)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def run(evaluator_path, program_path, function_name):
    sys.dont_write_bytecode = True  # leave no __pycache__ next to candidates
    evaluator_path = os.path.abspath(evaluator_path)
    sys.path.insert(0, os.path.dirname(evaluator_path))
    spec = importlib.util.spec_from_file_location("evolve_evaluator", evaluator_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load evaluator from {evaluator_path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    fn = getattr(module, function_name, None)
    if not callable(fn):
        raise AttributeError(f"evaluator {evaluator_path} has no function "
                             f"'{function_name}'")
    metrics, artifacts = normalise(fn(program_path))
    return {"metrics": metrics, "artifacts": artifacts}


def main(argv):
    result_path = os.environ.get("EVOLVE_RESULT")
    if len(argv) not in (3, 4) or not result_path:
        if not result_path:
            print("evolve_harness: EVOLVE_RESULT is not set", file=sys.stderr)
        print(USAGE, file=sys.stderr)
        return 2
    function_name = argv[3] if len(argv) == 4 else "evaluate"
    try:
        payload = run(argv[1], argv[2], function_name)
        write_result(result_path, payload)
        return 0
    except BaseException as exc:  # report everything, SystemExit included
        tb = traceback.format_exc()
        sys.stderr.write(tb)
        write_result(result_path, {"error": f"{type(exc).__name__}: {exc}",
                                   "traceback": tb[-4000:]})
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
