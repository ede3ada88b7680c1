"""The CLI's number types: each option states its range here once, and click refuses a value
outside it in one sentence that names the option, before any work or output starts."""

from __future__ import annotations

import math

import click

# Seeds feed torch, numpy and scikit-learn (whose random_state stops at 2**32 - 1), also as
# seed * 1000 + step: 2**31 - 1 keeps every derived seed in range.
SEED = click.IntRange(0, 2**31 - 1)
COUNT = click.IntRange(min=1)
NON_NEGATIVE_INT = click.IntRange(min=0)
TRAINING_BATCH = click.IntRange(min=2)  # batch norm cannot train on one image


class FiniteFloat(click.ParamType):
    """A float that is finite (no nan, no inf) and inside the given bounds."""

    name = "number"

    def __init__(self, low: float | None = None, high: float | None = None, *, low_open: bool = False):
        self.low, self.high, self.low_open = low, high, low_open

    def convert(self, value, param, ctx) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        too_low = self.low is not None and (number <= self.low if self.low_open else number < self.low)
        if too_low or (self.high is not None and number > self.high):
            self.fail(f"{value!r} is not in {self._describe()}", param, ctx)
        return number

    def _describe(self) -> str:
        left = "(" if self.low_open else "["
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{left}{low}, {high}]"


POSITIVE = FiniteFloat(0.0, low_open=True)
NON_NEGATIVE = FiniteFloat(0.0)
FRACTION = FiniteFloat(0.0, 1.0)
