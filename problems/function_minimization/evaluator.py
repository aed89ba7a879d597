"""Evaluator for the function minimisation problem.

The candidate's ``run_search()`` is run for five trials, trial k after
``random.seed(k)``, so results are reproducible.  The returned point is
checked and f is recomputed here; the reported value is never trusted.
"""

import importlib.util
import itertools
import math
import os
import random
import sys

LOW, HIGH = -5.0, 5.0
OPTIMUM = (-1.704083, 0.677508)
OPTIMUM_VALUE = -1.5186858
TRIALS = 5
SUCCESS_DISTANCE = 0.05

_counter = itertools.count()


def f(x, y):
    return math.sin(x) * math.cos(y) + math.sin(x * y) + (x * x + y * y) / 20


def _load(program_path):
    name = f"function_min_candidate_{os.getpid()}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, program_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load program from {program_path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def _coordinate(value, what, trial):
    if isinstance(value, (str, bytes)):
        raise ValueError(f"trial {trial}: {what} is not a number: {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"trial {trial}: {what} is not a number: {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"trial {trial}: {what} is not finite: {value}")
    if not LOW <= value <= HIGH:
        raise ValueError(f"trial {trial}: {what} = {value!r} lies outside "
                         f"[{LOW:g}, {HIGH:g}]")
    return value


def evaluate(program_path):
    module = _load(program_path)
    if not hasattr(module, "run_search"):
        raise AttributeError("program does not define run_search()")

    values, distances, lines = [], [], []
    for trial in range(TRIALS):
        random.seed(trial)
        result = module.run_search()
        if not isinstance(result, (tuple, list)) or len(result) != 3:
            raise ValueError(f"trial {trial}: run_search() must return (x, y, value)")
        x = _coordinate(result[0], "x", trial)
        y = _coordinate(result[1], "y", trial)
        value = f(x, y)
        distance = math.hypot(x - OPTIMUM[0], y - OPTIMUM[1])
        values.append(value)
        distances.append(distance)
        lines.append(f"trial {trial}: f({x:.6f}, {y:.6f}) = {value:.7f}, "
                     f"distance to optimum {distance:.4f}")

    mean_value = sum(values) / TRIALS
    successes = sum(d <= SUCCESS_DISTANCE for d in distances)
    lines.append(f"mean f {mean_value:.7f} (known minimum {OPTIMUM_VALUE}); "
                 f"{successes}/{TRIALS} trials within {SUCCESS_DISTANCE} of the optimum")
    return {
        "mean_value": mean_value,
        "best_value": min(values),
        "mean_distance": sum(distances) / TRIALS,
        "success_rate": successes / TRIALS,
        "summary": "\n".join(lines),
    }
