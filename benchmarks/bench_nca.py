"""NCA speed: the library on 10,000 participants, and `ctk nca` as a command against PKNCA.

Run: python benchmarks/bench_nca.py [--participants 10000] [--command-participants 1000]
                                     [--no-r] [--repeats 3]

Goals: the NCA itself under 0.2 ms per participant (issue 4); ``ctk nca`` as a command at least
100x faster than PKNCA on 1,000 participants (issue 15), both timed in this one run on the same
study: ``ctk nca STUDY --out DIR`` against ``Rscript benchmarks/r/nca_pknca.R STUDY DIR``
(PKNCA 0.12 doing the same work: lin-up/log-down, the default parameters, AUC0-28 and AUC0-84,
the three quality exclusions, long results and a summary written as CSV). Wall-clock and CPU
seconds of each command are printed (a shared 2-core machine: wall-clock depends on the load,
CPU seconds less so; ctk nca's best, median and worst of ``--repeats`` runs, and the ratio to
PKNCA's one run for each), with the time ctk nca spends in each step, and a check that both
tools computed the same numbers. ctk nca is timed with its bytecode cached (as a package
installed by pip has it; written by one untimed warm-up run) and compiled from source at
every start (PYTHONDONTWRITEBYTECODE=1, which this machine sets): both are printed.

Profiles (seeded): Stein-like expansion to a day-7-14 peak and biexponential decline,
log-normal residual error, an LLOQ of 20 copies/µg (late samples often BLQ), one
pre-infusion structural zero per participant, 16 samples each.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ctkinetics.nca import run_nca

TIMES = np.array([-1, 1, 4, 7, 10, 14, 21, 28, 35, 42, 56, 84, 112, 168, 252, 365], float)
R_SCRIPT = Path(__file__).resolve().parent / "r" / "nca_pknca.R"


def simulate(n: int, seed: int = 20240601) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    cmax = 24000 * np.exp(rng.normal(0, 0.8, n))
    tmax = np.clip(9.3 * np.exp(rng.normal(0, 0.3, n)), 3, 20)
    rho = np.log(3900) / tmax
    alpha, beta, fb = 0.16 * np.exp(rng.normal(0, 0.3, n)), 0.0032, 0.0079
    t = TIMES[None, :]
    dt = t - tmax[:, None]
    up = cmax[:, None] * np.exp(rho[:, None] * np.minimum(dt, 0))
    down = cmax[:, None] * ((1 - fb) * np.exp(-alpha[:, None] * np.maximum(dt, 0))
                            + fb * np.exp(-beta * np.maximum(dt, 0)))
    c = np.where(t < tmax[:, None], up, down) * np.exp(rng.normal(0, 0.3, (n, TIMES.size)))
    blq = c < 20
    pre = np.broadcast_to(t < 0, c.shape)
    blq |= pre
    dose = rng.choice([3.0e8, 4.5e8, 6.0e8], n)
    subj = np.char.add("P", np.arange(n).astype(str))
    obs = pd.DataFrame({
        "subject": np.repeat(subj, TIMES.size), "time": np.tile(TIMES, n), "analyte": "transgene",
        "value": np.where(blq, np.nan, c).ravel(), "unit": "copies/ug", "lloq": 20.0,
        "blq": blq.ravel(), "pre_infusion": pre.ravel(), "source_file": "sim.csv",
        "source_row": np.arange(n * TIMES.size) + 2,
    })
    subjects = pd.DataFrame({"subject": subj, "dose": dose,
                             "dose_level": pd.Series(dose).map({3.0e8: "DL1", 4.5e8: "DL2", 6.0e8: "DL3"})})
    return obs, subjects


def write_study(folder: Path, n: int) -> None:
    """The simulated cohort as a tidy study folder (what `ctk nca` and the R script read)."""
    obs, subjects = simulate(n)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.toml").write_text(
        '[study]\nname = "bench_nca"\n\n[dose_levels]\nDL1 = 3.0e8\nDL2 = 4.5e8\nDL3 = 6.0e8\n\n'
        '[design]\ntarget_dlt_rate = 0.30\ndlt_window_days = 28\nstagger_days = 14\n'
        f'cohort_size = 3\nmax_subjects = {max(n, 12)}\n\n'
        '[analytes.transgene]\nunit = "copies/ug"\nlloq = 20\nkind = "qpcr"\n')
    subjects[["subject", "dose_level", "dose"]].to_csv(folder / "subjects.csv", index=False)
    value = np.where(obs["blq"], "BLQ", np.char.mod("%.6g", obs["value"].fillna(0).to_numpy()))
    pd.DataFrame({"subject": obs["subject"], "time": obs["time"].map("{:g}".format),
                  "analyte": "transgene", "value": value, "unit": "copies/ug"}).to_csv(
        folder / "observations.csv", index=False)


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, stdout) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout


def python_envs(work: Path) -> dict:
    """The child environments: bytecode cached (what an installed package has: pip compiles
    it at install, and an editable install writes it on first import), kept in ``work``; and
    compiled from source at every start (``PYTHONDONTWRITEBYTECODE=1``, which some machines
    set, this one included)."""
    cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cached["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return {"bytecode cached": cached,
            "no bytecode": {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}}


STEPS = r"""
import sys, time
from ctkinetics.cli.startup import imports_without_gc   # as the command imports (no GC passes)
C = time.process_time
with imports_without_gc():
    t = C(); import numpy, pandas; imp = C() - t
    t = C(); from ctkinetics.cli.commands import nca as cmd; from ctkinetics.data import load_study
    import ctkinetics.nca, ctkinetics.outputs; imp2 = C() - t
    t = C(); import ctkinetics.data.study_schema; schema = C() - t
t = C(); ds = load_study(sys.argv[1]); load = C() - t
t = C(); res = ctkinetics.nca.run_nca(ds); nca = C() - t
t = C(); tabs = [res.results, res.wide(), res.summary(), res.dose_proportionality(), res.exclusions]
res.quality_overview(); tables = C() - t
from ctkinetics.outputs.spreadsheet import csv_text
m = res.options.method_label()
t = C(); [csv_text(x.assign(method=m)) for x in tabs]; csv = C() - t
print(imp, imp2, schema, load, nca, tables, csv)
"""


def library_table(n: int) -> pd.DataFrame:
    obs, subjects = simulate(n)
    run_nca(obs.iloc[: 16 * 20], subjects)  # warm-up (imports, caches)
    rows = []
    for label, kw in (("lin-up/log-down, auto lambda_z", {}),
                      ("linear, auto lambda_z", {"auc_method": "linear"}),
                      ("lin-up/log-down, lambda_z 14-84, aucint inf", {"lamz_window": (14, 84), "auc_type": "inf"})):
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            res = run_nca(obs, subjects, **kw)
            best = min(best, time.perf_counter() - t0)
        t0 = time.perf_counter()
        res.summary(), res.dose_proportionality()
        t_sum = time.perf_counter() - t0
        rows.append({"setting": label, "participants": n, "samples": len(obs),
                     "result_rows": len(res.results), "nca_s (best of 3)": round(best, 3),
                     "ms_per_participant": round(1e3 * best / n, 4),
                     "summary+dose_prop_s": round(t_sum, 3),
                     "goal_<0.2ms": "yes" if 1e3 * best / n < 0.2 else "no"})
    return pd.DataFrame(rows)


def same_numbers(ctk_dir: Path, r_dir: Path) -> str:
    """Agreement of ctk nca's and PKNCA's values (CMAX, AUCLST, AUC0-28, λz) and exclusions."""
    ours = pd.read_csv(ctk_dir / "nca.csv", keep_default_na=False)
    ours["value"] = pd.to_numeric(ours["value"], errors="coerce")
    theirs = pd.read_csv(r_dir / "pknca_long.csv")
    pairs = {"CMAX": ("cmax", np.inf), "AUCLST": ("auclast", np.inf),
             "AUCINT_LAST": ("aucint.last", 28.0), "LAMZ": ("lambda.z", np.inf)}
    parts = []
    for ck, (pk, end) in pairs.items():
        a = ours[(ours["parameter"] == ck) & (ours["end"] == end)].set_index("subject")["value"]
        b = theirs[(theirs["PPTESTCD"] == pk) & (theirs["end"] == end)].set_index("subject")["PPORRES"]
        both = a.index.intersection(b.index)
        a, b = a.loc[both].to_numpy(float), b.loc[both].to_numpy(float)
        ok = np.isfinite(a) & np.isfinite(b)
        same = np.isclose(a[ok], b[ok], rtol=1e-9).mean() if ok.any() else float("nan")
        parts.append(f"{ck} {100 * same:.1f} % of {ok.sum()} equal")
    return "; ".join(parts)


def command_table(n: int, repeats: int, with_r: bool) -> tuple[pd.DataFrame, str, list]:
    work = Path(tempfile.mkdtemp(prefix="bench_nca_"))
    try:
        study = work / "study"
        write_study(study, n)
        ctk = [sys.executable, "-m", "ctkinetics.cli.main", "nca", str(study), "--out"]
        envs = python_envs(work)
        timed(ctk + [str(work / "warm-up")], envs["bytecode cached"])   # writes the bytecode
        rows, spread = [], {}
        for label, env in envs.items():
            runs = [timed(ctk + [str(work / f"ctk{i}")], env) for i in range(repeats)]
            wall, cpu = np.array([r[0] for r in runs]), np.array([r[1] for r in runs])
            spread[label] = wall, cpu
            rows.append({"tool": f"ctk nca, {label} ({repeats} runs)", "participants": n,
                         "wall_s": round(wall.min(), 2), "wall_median": round(np.median(wall), 2),
                         "wall_worst": round(wall.max(), 2), "cpu_s": round(cpu.min(), 2),
                         "cpu_median": round(np.median(cpu), 2)})
        steps = [float(x) for x in timed([sys.executable, "-c", STEPS, str(study)],
                                         envs["bytecode cached"])[2].split()]
        check = "R not run"
        if with_r and shutil.which("Rscript"):
            r_wall, r_cpu, r_out = timed(["Rscript", str(R_SCRIPT), str(study), str(work / "r")])
            pk = float(r_out.split("pk.nca_seconds")[1].split("cpu")[1].split()[0])
            rows.append({"tool": "PKNCA via Rscript (once)", "participants": n,
                         "wall_s": round(r_wall, 1), "cpu_s": round(r_cpu, 1)})
            for label, (wall, cpu) in spread.items():   # PKNCA over ctk nca's best, median, worst
                rows.append({"tool": f"ratio PKNCA / ctk nca, {label}", "participants": n,
                             "wall_s": round(r_wall / wall.min(), 0),
                             "wall_median": round(r_wall / np.median(wall), 0),
                             "wall_worst": round(r_wall / wall.max(), 0),
                             "cpu_s": round(r_cpu / cpu.min(), 0),
                             "cpu_median": round(r_cpu / np.median(cpu), 0)})
            rows.append({"tool": "pk.nca() alone / run_nca() alone (CPU)", "participants": n,
                         "cpu_s": round(pk / steps[4], 0)})
            check = same_numbers(work / "ctk0", work / "r")
        return pd.DataFrame(rows), check, steps
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=10_000)
    ap.add_argument("--command-participants", type=int, default=1_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-r", action="store_true", help="skip PKNCA (R takes minutes)")
    a = ap.parse_args()
    print(f"Load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("The NCA itself (run_nca in process):")
    print(library_table(a.participants).to_string(index=False))
    table, check, steps = command_table(a.command_participants, a.repeats, not a.no_r)
    print(f"\n`ctk nca` as a command vs PKNCA, {a.command_participants} participants x 16 samples:")
    print(table.to_string(index=False))
    names = ("import numpy+pandas", "import ctkinetics", "import pydantic + study.toml schema",
             "load_study", "run_nca", "tables", "CSV text (spreadsheet-safe)")
    print("\nctk nca steps (CPU s, one process): "
          + ", ".join(f"{k} {v:.3f}" for k, v in zip(names, steps))
          + "; the rest is interpreter start-up and writing files (atomic folder, fsync)")
    print(f"Same numbers: {check}")


if __name__ == "__main__":
    main()
