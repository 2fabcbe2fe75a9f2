import numpy as np
import pandas as pd

BLQ = None  # marks a BLQ sample in profile()


def profile(subject, points, analyte="qpcr", lloq=20.0):
    """Observation rows from (time, value-or-BLQ[, pre_infusion]) tuples."""
    rows = []
    for i, pt in enumerate(points):
        t, v = pt[0], pt[1]
        pre = pt[2] if len(pt) > 2 else False
        rows.append({"subject": subject, "time": float(t), "analyte": analyte,
                     "value": np.nan if v is None else float(v), "unit": "copies/ug",
                     "lloq": lloq, "blq": v is None, "pre_infusion": pre,
                     "source_file": "obs.csv", "source_row": i + 2})
    return pd.DataFrame(rows)
