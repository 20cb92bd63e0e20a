"""Range checks of the numbers a user gives (counts, sizes, money, limits): finite, in range, one-line errors.

Every option is checked where the library first takes it (Workload, `request`, Budget, the hardware catalog),
so the command line, job files and the Python API refuse the same values with the same message. Messages name
the option through `errors.opt` (`--batch-size` on the command line, `batch_size` from Python).
"""

from __future__ import annotations

import math
from typing import Any

from afford.errors import InputError, opt

# Upper bounds of counts: far beyond any real job, low enough that every product of them stays a finite float.
MAX_SAMPLES = 10**15  # training or inference samples (a trillion-image dataset x 1000)
MAX_TOKENS = 10**18  # training tokens (today's largest pretraining runs are ~4e13)
MAX_BATCH = 1_000_000  # samples per step on one device
MAX_SEQ = 10_000_000  # tokens per sample
MAX_IMAGE = 16384  # image side in pixels
MAX_DEVICES = 1_000_000  # devices in all
MAX_GPUS_PER_NODE = 1024
MAX_GRAD_ACCUM = 1_000_000
MAX_EPOCHS = 1e6
MAX_USD = 1e12  # budget (a trillion dollars)
MAX_KWH = 1e12
MAX_CO2_KG = 1e12
MAX_DEADLINE_S = 100 * 365.25 * 86400  # a century
MAX_PRICE_PER_HOUR = 10_000.0  # USD per device-hour
MAX_ELECTRICITY_USD_KWH = 10.0
MAX_GRID_GCO2_KWH = 2000.0  # coal is ~1000; nothing real exceeds twice that
PUE_RANGE = (1.0, 3.0)


def show(value: Any) -> str:
    """A value for a message: huge integers by their number of digits (never thousands of characters)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        sign = "negative " if value < 0 else ""
        try:
            return f"a {sign}{len(str(abs(value)))}-digit integer"
        except ValueError:  # past Python's int-to-str limit (4300 digits)
            return f"a {sign}{int(math.log10(abs(value))) + 1}-digit integer"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _num(x: float) -> str:
    """A bound for a message: 1,000,000 rather than 1e+06, 0.5 as is."""
    return f"{x:,.0f}" if float(x).is_integer() and abs(x) >= 1000 else f"{x:g}"


def within(value: Any, low: float, high: float, *, open_low: bool = False) -> float | None:
    """`value` as a float when it is a finite int or float (not a bool) in [low, high] ((low, high] with
    `open_low`), else None."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int past float's range
        return None
    if not math.isfinite(number) or number > high or (number <= low if open_low else number < low):
        return None
    return number


def real(value: Any, name: str, *, low: float = 0.0, high: float, open_low: bool = False,
         unit: str = "", error: type[InputError] = InputError) -> float:
    """`value` as a float when it is a finite number in [low, high] ((low, high] with `open_low`); otherwise
    `error` naming the option, its range and the value."""
    number = within(value, low, high, open_low=open_low)
    if number is None:
        bound = f"greater than {_num(low)}" if open_low else f"at least {_num(low)}"
        raise error(f"{opt(name)} must be a finite number {bound} and at most {_num(high)}{unit}, "
                    f"got {show(value)}")
    return number


def whole(value: Any, name: str, *, high: int, low: int = 1, error: type[InputError] = InputError) -> int:
    """`value` when it is an integer in [low, high]; otherwise `error` naming the option, its range, the value."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        what = f"a positive integer of at most {high:,}" if low == 1 else f"an integer from {low:,} to {high:,}"
        raise error(f"{opt(name)} must be {what}, got {show(value)}")
    return value
