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

Worker mode (``python3 evolve_harness.py --worker <evaluator.py>``) imports
the evaluator once and then serves requests, one JSON object per line on
stdin, each naming a program, a function, a result file, a working directory,
an environment, a CPU limit and files for the child's stdout and stderr.  Per
request it forks a fresh child in its own process group, which applies the
limit, runs the function exactly as above and exits; the worker answers
``{"pid": N}`` at once and ``{"exit": code}`` or ``{"signal": n}`` (with
``"overflow": true`` if the output cap was hit) when the child is gone.  The
caller owns the timeout and kills the child's group.  Standard library only.
"""

import importlib.util
import json
import math
import numbers
import os
import resource
import selectors
import signal
import sys
import time
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


def load(evaluator_path):
    """Import the evaluator file by path, with its folder first on sys.path."""
    sys.dont_write_bytecode = True  # leave no __pycache__ next to candidates
    evaluator_path = os.path.abspath(evaluator_path)
    sys.path.insert(0, os.path.dirname(evaluator_path))
    spec = importlib.util.spec_from_file_location("evolve_evaluator", evaluator_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load evaluator from {evaluator_path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def call(module, evaluator_path, program_path, function_name):
    fn = getattr(module, function_name, None)
    if not callable(fn):
        raise AttributeError(f"evaluator {evaluator_path} has no function "
                             f"'{function_name}'")
    metrics, artifacts = normalise(fn(program_path))
    return {"metrics": metrics, "artifacts": artifacts}


def run(evaluator_path, program_path, function_name):
    module = load(evaluator_path)
    return call(module, evaluator_path, program_path, function_name)


def report(result_path, compute):
    """Write compute()'s payload, or the error it raised; return the exit status."""
    try:
        write_result(result_path, compute())
        return 0
    except BaseException as exc:  # report everything, SystemExit included
        tb = traceback.format_exc()
        sys.stderr.write(tb)
        write_result(result_path, {"error": f"{type(exc).__name__}: {exc}",
                                   "traceback": tb[-4000:]})
        return 1


def _host_pid():
    """This process's pid as the host sees it (differs inside a PID namespace,
    where /proc still belongs to the host)."""
    try:
        return int(os.readlink("/proc/self"))
    except (OSError, ValueError):
        return os.getpid()


def _child(module, evaluator_path, request, out_fd, err_fd, pid_fd):
    """In the forked child: set up, evaluate, and never return."""
    status = 1
    try:
        os.setpgid(0, 0)
        os.write(pid_fd, str(_host_pid()).encode())
        os.close(pid_fd)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        cpu = request.get("cpu_s")
        if cpu:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        status = report(request["result"], lambda: call(
            module, evaluator_path, request["program"], request["function"]))
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


def _relay(pid, sources, cap):
    """Copy the child's output pipes to files up to cap bytes each; after the
    child exits, kill what is left of its group. Returns (status, overflow)."""
    selector = selectors.DefaultSelector()
    written = {}
    for fd, path in sources:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ, open(path, "wb"))
        written[fd] = 0
    status, overflow, drain_until = None, False, None
    while selector.get_map():
        for key, _ in selector.select(timeout=0.05):
            try:
                chunk = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                selector.unregister(key.fd)
                key.data.close()
                os.close(key.fd)
                continue
            room = cap - written[key.fd]
            if room > 0:
                key.data.write(chunk[:room])
            written[key.fd] += len(chunk)
            if len(chunk) > room and not overflow:
                overflow = True
                _kill_group(pid)
        if status is None:
            done, waited = os.waitpid(pid, os.WNOHANG)
            if done:
                status = waited
                _kill_group(pid)  # no grandchild outlives its candidate
                drain_until = time.monotonic() + 1.0
        elif time.monotonic() > drain_until:
            break  # a process outside the group still holds a pipe
    for key in list(selector.get_map().values()):
        selector.unregister(key.fd)
        key.data.close()
        os.close(key.fd)
    if status is None:
        _, status = os.waitpid(pid, 0)
    return status, overflow


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def worker(evaluator_path):
    """Serve evaluation requests from stdin until it closes."""
    try:
        module = load(evaluator_path)
    except BaseException as exc:
        _send({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    _send({"ready": True})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid_r, pid_w = os.pipe()
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            os.close(out_r)
            os.close(err_r)
            os.close(pid_r)
            _child(module, evaluator_path, request, out_w, err_w, pid_w)
        os.close(out_w)
        os.close(err_w)
        os.close(pid_w)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the child already did it, or is gone
        # The caller signals the child's group by the host's numbering.
        with os.fdopen(pid_r, "rb") as pid_pipe:
            reported = pid_pipe.read().strip()
        _send({"pid": int(reported) if reported.isdigit() else pid})
        status, overflow = _relay(
            pid, [(out_r, request["stdout"]), (err_r, request["stderr"])],
            int(request["output_bytes"]))
        reply = {"overflow": overflow}
        if os.WIFSIGNALED(status):
            reply["signal"] = os.WTERMSIG(status)
        else:
            reply["exit"] = os.WEXITSTATUS(status)
        _send(reply)
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "--worker":
        return worker(argv[2])
    result_path = os.environ.get("EVOLVE_RESULT")
    if len(argv) not in (3, 4) or not result_path:
        if not result_path:
            print("evolve_harness: EVOLVE_RESULT is not set", file=sys.stderr)
        print(USAGE, file=sys.stderr)
        return 2
    function_name = argv[3] if len(argv) == 4 else "evaluate"
    return report(result_path, lambda: run(argv[1], argv[2], function_name))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
