"""Circle packing: place 26 disjoint circles in the unit square so that the
sum of their radii is as large as possible."""

import math

NUM_CIRCLES = 26


# EVOLVE-BLOCK-START
def construct_packing():
    """Place the circle centres: one in the middle, an inner ring and an
    outer ring that is pulled towards the shape of the square."""
    cx, cy = 0.5, 0.5
    centers = [(cx, cy)]

    inner_count = 8
    inner_radius = 0.22
    inner_phase = 0.3
    for i in range(inner_count):
        angle = inner_phase + 2 * math.pi * i / inner_count
        centers.append((cx + inner_radius * math.cos(angle),
                        cy + inner_radius * math.sin(angle)))

    outer_count = NUM_CIRCLES - len(centers)
    outer_radius = 0.4
    outer_phase = 0.1
    squareness = 0.5  # zero keeps a round ring, one stretches it onto a square
    for i in range(outer_count):
        angle = outer_phase + 2 * math.pi * i / outer_count
        dx, dy = math.cos(angle), math.sin(angle)
        stretch = (1.0 / max(abs(dx), abs(dy))) ** squareness
        centers.append((cx + outer_radius * stretch * dx,
                        cy + outer_radius * stretch * dy))

    # keep every centre strictly inside the square
    margin = 0.02
    return [(min(max(x, margin), 1 - margin), min(max(y, margin), 1 - margin))
            for x, y in centers]


def compute_max_radii(centers):
    """Largest radii found by a simple greedy scheme that are guaranteed to
    satisfy every constraint: start from the distance to the walls, shrink
    overlapping pairs, then let each circle grow into any free space."""
    n = len(centers)
    radii = [max(0.0, min(x, y, 1 - x, 1 - y)) for x, y in centers]
    dist = [[math.hypot(centers[i][0] - centers[j][0],
                        centers[i][1] - centers[j][1]) for j in range(n)]
            for i in range(n)]

    # shrink: after pair (i, j) is handled it stays disjoint, because radii
    # only ever decrease in this pass
    for i in range(n):
        for j in range(i + 1, n):
            if radii[i] + radii[j] > dist[i][j]:
                scale = dist[i][j] / (radii[i] + radii[j])
                radii[i] *= scale
                radii[j] *= scale

    # grow: each circle takes all the room its neighbours leave it
    for _ in range(3):
        for i in range(n):
            x, y = centers[i]
            room = min(x, y, 1 - x, 1 - y)
            for j in range(n):
                if j != i:
                    room = min(room, dist[i][j] - radii[j])
            radii[i] = max(0.0, room)

    # a relative safety margin so rounding can never create an overlap
    return [r * (1 - 1e-12) for r in radii]
# EVOLVE-BLOCK-END


def run_packing():
    """Return (centers, radii, sum_radii) for the evolved construction."""
    centers = construct_packing()
    radii = compute_max_radii(centers)
    return centers, radii, sum(radii)


if __name__ == "__main__":
    _, _, total = run_packing()
    print(f"sum of radii: {total:.6f}")
