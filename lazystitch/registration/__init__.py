"""Registration: pairwise shifts on the overlaps, then a global solve for every tile's position."""

from lazystitch.registration._global import LABELS, GlobalSolution, solve_positions
from lazystitch.registration._pairwise import (
    PairGeometry,
    PairShift,
    ncc,
    pair_geometry,
    register_strips,
)
from lazystitch.registration._plot import plot_registration
from lazystitch.registration._register import (
    Registration,
    check_max_shift,
    default_max_shift,
    neighbour_pairs,
    register,
)

__all__ = [
    "LABELS",
    "GlobalSolution",
    "PairGeometry",
    "PairShift",
    "Registration",
    "check_max_shift",
    "default_max_shift",
    "ncc",
    "neighbour_pairs",
    "pair_geometry",
    "plot_registration",
    "register",
    "register_strips",
    "solve_positions",
]
