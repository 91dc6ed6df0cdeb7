"""The page arithmetic that result.js repeats: whole percent, half up (JavaScript's Math.round),
not Python's round() (half to even), or a reload could change a figure the live update drew."""

from __future__ import annotations

import pytest
from votingapp.result import share, tally_rows


@pytest.mark.parametrize(
    ("count", "total", "expected"),
    [(0, 0, 0), (1, 8, 13), (1, 200, 1), (5, 8, 63), (1, 3, 33), (2, 3, 67), (3, 3, 100)],
)
def test_share_rounds_half_up_like_math_round(count, total, expected):
    assert share(count, total) == expected


def test_rows_keep_the_ballot_order():
    rows = tally_rows({"options": {"Dogs": 1, "Cats": 3}, "total": 4})
    assert rows == [{"option": "Dogs", "count": 1, "share": 25}, {"option": "Cats", "count": 3, "share": 75}]
