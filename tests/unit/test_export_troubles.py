"""What an export warning says of a receiver that did not answer in time."""

from __future__ import annotations

import pytest
import requests

from neatlogs_web._export.health import trouble_of


@pytest.mark.parametrize(
    ("applied_s", "said"),
    [
        # export_timeout_s=0.5: the attempt started a few milliseconds into its
        # export's budget, and had what was left of it.
        (0.49, "within 0.5 s"),
        (0.5, "within 0.5 s"),
        (30.0, "within 30 s"),
        (2.25, "within 2.2 s"),
        (0.04, "within 0.04 s"),  # a deadline nearly spent says so
    ],
)
def test_a_timeout_is_said_in_the_tenths_of_a_second_an_operator_sets(
    applied_s: float, said: str
) -> None:
    trouble = trouble_of(requests.ReadTimeout(), applied_s)
    assert trouble.kind == "timeout"
    assert (
        trouble.what == f"no answer {said}: the receiver accepted the connection but did not reply"
    )
