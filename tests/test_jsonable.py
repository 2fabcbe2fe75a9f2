import json
import math

import numpy as np
import pandas as pd

from ctkinetics.jsonable import jsonable, records


def test_strict_json_for_numpy_and_non_finite_values():
    value = {"a": np.float32(1.5), "b": np.int16(-2), "c": [math.inf, -math.inf, math.nan],
             "d": (np.bool_(False),), 3: pd.NA, "e": np.arange(2)}
    out = jsonable(value)
    assert out == {"a": 1.5, "b": -2, "c": [None, None, None], "d": [False], "3": None, "e": [0, 1]}
    json.dumps(out, allow_nan=False)  # strict JSON: would raise on NaN/inf


def test_records_of_a_frame():
    df = pd.DataFrame({"x": [1.0, np.nan], "n": [1, 2]})
    assert records(df) == [{"x": 1.0, "n": 1}, {"x": None, "n": 2}]
