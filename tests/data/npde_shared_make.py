"""Make the data sets shared with R's npde package (tests/population/test_npde.py).

R's Theoph (tests/data/theoph.csv) fitted by FOCE-I with onecpt_oral (random effects on ka
and CL, additive error), twice: as it is, and with an LLOQ of 1 mg/L (BLQ by M3; 14 of the
132 samples). From each fit 100 replicates are simulated at the observed design
(ctkinetics.estimation.population.predictive.simulate, seed 11). Written with 12
significant digits (R and Python then read the same doubles), the simulations gzipped:

- npde_theoph_obs.csv      id,time,y,cens  (a BLQ sample: y = its LLOQ, cens = 1)
- npde_theoph_sim.csv.gz   id,time,ysim    (replicate after replicate, rows as in obs)
- npde_theoph_blq_obs.csv / npde_theoph_blq_sim.csv.gz   the same with the LLOQ of 1 mg/L

Run from the repository root:  python tests/data/npde_shared_make.py
then:                          Rscript tests/data/npde_reference.R
"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from population.theoph import dataset, onecpt_model  # noqa: E402

from ctkinetics.estimation.population import fit_population  # noqa: E402
from ctkinetics.estimation.population.npde import observation_arrays  # noqa: E402
from ctkinetics.estimation.population.predictive import rebuild, simulate  # noqa: E402

K = 100


def write(name, lloq):
    ds, m = dataset(lloq=lloq), onecpt_model()
    res = fit_population(ds, m, random_effects="ka,CL", error="additive")
    fitted = rebuild(res, ds, m)
    sim = simulate(fitted, K, np.random.default_rng(11))
    o = observation_arrays(fitted, sim)
    ids = np.array([int(s) for s in o["subject"]])
    obs = pd.DataFrame({"id": ids, "time": o["time"], "y": o["y"],
                        "cens": o["censored"].astype(int)})
    sims = pd.DataFrame({"id": np.tile(ids, K), "time": np.tile(o["time"], K),
                         "ysim": o["ysim"].T.ravel()})
    obs.to_csv(ROOT / "tests" / "data" / f"{name}_obs.csv", index=False, float_format="%.12g")
    sims.to_csv(ROOT / "tests" / "data" / f"{name}_sim.csv.gz", index=False,
                float_format="%.12g", compression={"method": "gzip", "mtime": 0})
    print(name, len(obs), "observations,", int(obs["cens"].sum()), "censored")


if __name__ == "__main__":
    write("npde_theoph", np.nan)
    write("npde_theoph_blq", 1.0)
