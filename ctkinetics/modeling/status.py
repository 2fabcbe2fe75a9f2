"""Solver status codes of the compiled engine and their messages (no numba here: results
and messages are read without compiling anything)."""

OK = 0
TOO_MANY_STEPS = 1
STEP_TOO_SMALL = 2
NOT_FINITE = 3
STATUS_TEXT = {
    OK: "ok",
    TOO_MANY_STEPS: "ODE solver stopped: too many steps (stiff or chattering right-hand side)",
    STEP_TOO_SMALL: "ODE solver stopped: step size too small (singularity or blow-up)",
    NOT_FINITE: "ODE solver stopped: a state or its derivative is not finite (blow-up)",
}


def message(code) -> str:
    """The text of a status code."""
    return STATUS_TEXT.get(int(code), f"solver status {int(code)}")
