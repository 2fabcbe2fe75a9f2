"""Numbers as text, for every table a person reads (the one home for it).

Layer 0: imports nothing from ctkinetics (numpy only). The report's tables, the NCA summary's
``display`` column and the CLI summaries all call these functions, so one quantity reads
the same everywhere.

Rules (3 significant digits, as committees and PKNCA/WinNonlin tables print them):

=====================  ==========================  =========================
value                  HTML (``html=True``)        plain text
=====================  ==========================  =========================
1486.3                 ``1490``                    ``1490``
0.016129               ``0.0161``                  ``0.0161``
48.0, 1.50             ``48``, ``1.5``             ``48``, ``1.5``
5217962.0              ``5.22×10⁶``                ``5.22e6``
2.0517e-33             ``2.05×10⁻³³``              ``2.05e-33``
3.0e8 (a dose)         ``3.0×10⁸``                 ``3.0e8``
0.0173 (probability)   ``0.017``                   ``0.017``
2.05e-33 (probability) ``<0.001``                  ``<0.001``
NaN / None             ``''``                      ``''``
=====================  ==========================  =========================

Never ``3e+08`` or ``1.486e+04``: Python's ``g`` format with its ``e+08`` is not used.
A quantity the data cannot determine (an estimate at its bound, a non-finite standard
error, an interval spanning more than :data:`MAX_INTERVAL_FOLD`) reads
:data:`NOT_ESTIMABLE` instead of a number such as 7.1e10 % or [3e-130, 2.6e133].
"""
from __future__ import annotations

import functools
import math

import numpy as np

#: Shown instead of a number the data do not determine.
NOT_ESTIMABLE = "not estimable"

#: A 95 % interval wider than this factor (high/low of a positive quantity) tells nothing:
#: shown as :data:`NOT_ESTIMABLE`. 10⁶ is 6 decades: no kinetic parameter is usefully known
#: to within a million-fold.
MAX_INTERVAL_FOLD = 1.0e6

#: Plain decimal notation is used for 10⁻³ ≤ |x| < 10⁵, powers of ten outside.
SMALL, LARGE = 1.0e-3, 1.0e5

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
MINUS = "−"


def _missing(x) -> bool:
    if x is None:
        return True
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return str(x) in ("<NA>", "NaT", "nan")


def _float(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _numeric(fn):
    """``fn(v: float, ...)`` as a formatter of any cell: '' for a missing value, a non-number
    as its text, else ``fn`` of its float."""
    @functools.wraps(fn)
    def wrapper(x, *args, **kwargs):
        if _missing(x):
            return ""
        v = _float(x)
        return str(x) if v is None else fn(v, *args, **kwargs)
    return wrapper


def _power(mantissa: str, exponent: int, html: bool) -> str:
    if html:
        return f"{mantissa}×10{str(exponent).translate(_SUPERSCRIPT)}"
    return f"{mantissa}e{exponent}"


def _strip(text: str, min_decimals: int = 0) -> str:
    """Trailing zeros of the decimals go (R's ``signif`` prints 1.5, not 1.50), keeping
    ``min_decimals``."""
    if "." not in text:
        return text
    head, tail = text.split(".")
    tail = tail.rstrip("0").ljust(min_decimals, "0")
    return head + ("." + tail if tail else "")


def _scientific(v: float, sig: int, html: bool, min_decimals: int = 0) -> str:
    exponent = math.floor(math.log10(abs(v)))
    mant = round(v / 10.0 ** exponent, sig - 1)
    if abs(mant) >= 10.0:  # 9.996e3 rounds to 10.0: carry into the exponent
        exponent += 1
        mant = round(v / 10.0 ** exponent, sig - 1)
    return _power(_strip(f"{mant:.{sig - 1}f}", min_decimals), exponent, html)


@_numeric
def number(v: float, sig: int = 3, *, html: bool = True) -> str:
    """A number to ``sig`` significant digits (see the module's table); '' when missing.

    Plain decimals for 10⁻³ ≤ |x| < 10⁵, ``m×10ⁿ`` (HTML) or ``men`` (plain) outside;
    trailing zeros dropped (as R's ``signif``); ``−`` is the minus sign in HTML, ``-`` in
    plain text. Integers (Python/numpy ``int``) are not rounded: use :func:`cell`.

    Examples
    --------
    >>> number(14863.2), number(0.000123, html=False), number(-2.5e-7), number(1.50)
    ('14900', '1.23e-4', '−2.5×10⁻⁷', '1.5')
    """
    minus = MINUS if html else "-"
    if math.isinf(v):
        return "∞" if v > 0 else f"{minus}∞"
    if v == 0:
        return "0"
    text = None
    if SMALL <= abs(v) < LARGE:
        exponent = math.floor(math.log10(abs(v)))
        decimals = sig - 1 - exponent
        r = round(v, decimals)
        if abs(r) < LARGE:
            text = _strip(f"{r:.{decimals}f}") if decimals > 0 else str(int(r))
    if text is None:
        text = _scientific(v, sig, html)
    return minus + text[1:] if text.startswith("-") else text


@_numeric
def dose(v: float, *, html: bool = True) -> str:
    """A dose in cells: ``3.0×10⁸`` (HTML) / ``3.0e8`` (plain), at least one decimal in the
    mantissa and at most 3 significant digits; doses below 10⁵ as :func:`number`.

    Examples
    --------
    >>> dose(3e8), dose(4.5e8, html=False), dose(3.25e8, html=False)
    ('3.0×10⁸', '4.5e8', '3.25e8')
    """
    if v == 0 or math.isinf(v) or abs(v) < LARGE:
        return number(v, html=html)
    return _scientific(v, 3, html, min_decimals=1)


@_numeric
def objective(v: float, *, html: bool = True) -> str:
    """An objective function value (−2LL, AIC, BIC) to one decimal: models are compared by
    differences of a few units, which 3 significant digits of 1720.3 would hide.

    Examples
    --------
    >>> objective(1720.3449), objective(-12.04, html=False)
    ('1720.3', '-12.0')
    """
    if math.isinf(v) or abs(v) >= 1.0e9:
        return number(v, html=html)
    text = f"{v:.1f}"
    return (MINUS if html else "-") + text[1:] if text.startswith("-") else text


@_numeric
def probability(v: float, *, html: bool = True) -> str:
    """A probability or fraction in [0, 1] to 3 decimals: ``<0.001`` / ``>0.999`` at the ends
    (never 2.05e-33). Text, not markup: the caller escapes it for HTML.

    Examples
    --------
    >>> probability(0.016129), probability(2.05e-33), probability(1.0)
    ('0.016', '<0.001', '1')
    """
    if v in (0.0, 1.0):
        return str(int(v))
    if 0 < v < 0.001:
        return "<0.001"
    if 0.999 < v < 1:
        return ">0.999"
    return f"{v:.3f}"


def interval(low, high, *, html: bool = True, sig: int = 3) -> str:
    """``[low, high]`` in :func:`number` format, or :data:`NOT_ESTIMABLE` when a bound is
    missing or not finite, or when a positive interval spans more than
    :data:`MAX_INTERVAL_FOLD`.

    Examples
    --------
    >>> interval(1.2, 3.456, html=False), interval(3e-130, 2.6e133)
    ('[1.2, 3.46]', 'not estimable')
    """
    if not interval_estimable(low, high):
        return NOT_ESTIMABLE
    return f"[{number(low, sig, html=html)}, {number(high, sig, html=html)}]"


def interval_estimable(low, high) -> bool:
    """Both bounds finite and, for positive bounds, high/low ≤ :data:`MAX_INTERVAL_FOLD`."""
    lo, hi = _float(low), _float(high)
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return False
    if lo > 0 and hi > 0 and hi / lo > MAX_INTERVAL_FOLD:
        return False
    return True


def geo_mean_cv(mean, cv_pct, *, html: bool = True, estimable: bool = True) -> str:
    """``gm (CV %)``: the geometric mean with its geometric CV, e.g. ``14900 (95 %)``.

    ``estimable=False`` (a parameter at a bound in some fit) or a CV ≥ 10⁴ % gives
    ``gm (CV not estimable)``.
    """
    if _missing(mean):
        return ""
    cv = _float(cv_pct)
    if not estimable or (cv is not None and math.isfinite(cv) and cv >= 1.0e4):
        return f"{number(mean, html=html)} (CV {NOT_ESTIMABLE})"
    if cv is None or not math.isfinite(cv):
        return number(mean, html=html)
    return f"{number(mean, html=html)} ({number(cv, html=html)} %)"


def median_range(median, low, high, *, html: bool = True) -> str:
    """``median [min, max]``, e.g. ``7 [7, 10]``."""
    if _missing(median):
        return ""
    return f"{number(median, html=html)} [{number(low, html=html)}, {number(high, html=html)}]"


def cell(value, *, html: bool = True, kind: str = "number") -> str:
    """Any table cell as text: yes/no for booleans, integers as they are, floats by ``kind``
    (``number`` | ``dose`` | ``probability`` | ``objective``), text unchanged (the caller escapes it)."""
    if value is None or _missing(value) and not isinstance(value, str):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if kind == "dose":
        return dose(value, html=html)
    if kind == "probability":
        return probability(value, html=html)
    if kind == "objective":
        return objective(value, html=html)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return number(value, html=html)


__all__ = ["NOT_ESTIMABLE", "MAX_INTERVAL_FOLD", "number", "dose", "probability", "objective", "interval",
           "interval_estimable", "geo_mean_cv", "median_range", "cell"]
