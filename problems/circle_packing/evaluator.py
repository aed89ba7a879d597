"""Evaluator for the 26-circle packing problem.

The candidate's ``run_packing()`` returns ``(centers, radii, sum_radii)``.
Everything is re-checked here with zero tolerance and the sum of radii is
recomputed; the reported sum is never trusted.
"""

import importlib.util
import itertools
import math
import os
import sys

NUM_CIRCLES = 26
BEST_KNOWN = 2.6358628  # AlphaEvolve (2025)

_counter = itertools.count()


def _load(program_path):
    name = f"circle_packing_candidate_{os.getpid()}_{next(_counter)}"
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


def _finite(value, what):
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{what} is not a number: {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} is not a number: {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} is not finite: {value}")
    return value


def check_packing(centers, radii):
    """Validate a packing; return (centers, radii) as lists of floats."""
    if len(centers) != NUM_CIRCLES:
        raise ValueError(f"expected {NUM_CIRCLES} centers, got {len(centers)}")
    if len(radii) != NUM_CIRCLES:
        raise ValueError(f"expected {NUM_CIRCLES} radii, got {len(radii)}")
    pts, rs = [], []
    for i, (c, r) in enumerate(zip(centers, radii)):
        if len(c) != 2:
            raise ValueError(f"center of circle {i} must be an (x, y) pair")
        x = _finite(c[0], f"x of circle {i}")
        y = _finite(c[1], f"y of circle {i}")
        r = _finite(r, f"radius of circle {i}")
        if r < 0:
            raise ValueError(f"circle {i} has negative radius {r:.3g}")
        for side, excess in (("left", r - x), ("right", x + r - 1),
                             ("bottom", r - y), ("top", y + r - 1)):
            if excess > 0:
                raise ValueError(f"circle {i} leaves the square at the {side} "
                                 f"edge by {excess:.3g}")
        # the differences above are only for the message; these are the checks
        if not (x - r >= 0 and x + r <= 1 and y - r >= 0 and y + r <= 1):
            raise ValueError(f"circle {i} leaves the square")
        pts.append((x, y))
        rs.append(r)
    for i in range(NUM_CIRCLES):
        for j in range(i + 1, NUM_CIRCLES):
            d = math.hypot(pts[i][0] - pts[j][0], pts[i][1] - pts[j][1])
            if not d >= rs[i] + rs[j]:
                raise ValueError(f"circles {i} and {j} overlap by "
                                 f"{rs[i] + rs[j] - d:.3g}")
    return pts, rs


def evaluate(program_path):
    module = _load(program_path)
    if not hasattr(module, "run_packing"):
        raise AttributeError("program does not define run_packing()")
    result = module.run_packing()
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        raise ValueError("run_packing() must return (centers, radii, sum_radii)")
    centers, radii, reported = result
    pts, rs = check_packing(centers, radii)

    total = math.fsum(rs)
    lines = [
        f"valid packing of {NUM_CIRCLES} circles",
        f"sum of radii {total:.9f} = {100 * total / BEST_KNOWN:.2f}% of the "
        f"best known {BEST_KNOWN}",
        f"radius range {min(rs):.6f} .. {max(rs):.6f}",
    ]
    zero = sum(r == 0 for r in rs)
    if zero:
        lines.append(f"{zero} of the circles have radius zero")
    try:
        if abs(float(reported) - total) > 1e-9:
            lines.append(f"note: run_packing() reported sum {float(reported)!r}, "
                         f"recomputed {total!r}")
    except (TypeError, ValueError):
        lines.append(f"note: reported sum {reported!r} is not a number")
    return {
        "sum_radii": total,
        "target_ratio": total / BEST_KNOWN,
        "min_radius": min(rs),
        "summary": "\n".join(lines),
    }
