"""Function minimisation: find the global minimum of
f(x, y) = sin(x) * cos(y) + sin(x * y) + (x**2 + y**2) / 20 on [-5, 5]^2."""

import math
import random


# EVOLVE-BLOCK-START
def search_algorithm(iterations=100, bounds=(-5, 5)):
    """Plain random search: sample points uniformly inside the bounds and
    keep the best one seen.  Returns (x, y, value)."""
    low, high = bounds
    best_x = random.uniform(low, high)
    best_y = random.uniform(low, high)
    best_value = evaluate_function(best_x, best_y)

    for _ in range(iterations):
        x = random.uniform(low, high)
        y = random.uniform(low, high)
        value = evaluate_function(x, y)
        if value < best_value:
            best_x, best_y, best_value = x, y, value

    return best_x, best_y, best_value
# EVOLVE-BLOCK-END


def evaluate_function(x, y):
    """The function to minimise."""
    return math.sin(x) * math.cos(y) + math.sin(x * y) + (x ** 2 + y ** 2) / 20


def run_search():
    """Run the evolved search and return (x, y, value)."""
    x, y, value = search_algorithm()
    return x, y, value


if __name__ == "__main__":
    x, y, value = run_search()
    print(f"f({x:.6f}, {y:.6f}) = {value:.6f}")
