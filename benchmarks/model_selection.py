"""Model selection between the SLE model variants on both sample cohorts (issue 17.5).

Each cohort is fitted with each model by ``ctk fit`` (individual fits: the cohort's AIC/BIC is
the sum over participants) and ``ctk popfit`` (FOCE-I: one AIC/BIC), with the same number of
estimated kinetic parameters per model so that the criteria compare fits, not sizes. The
table says which model each criterion picks and whether it is the one that generated the
cohort (``data/sample/generate.py``: cart_bcell_sle; ``generate_allogeneic.py``:
cart_bcell_sle_allo).

    python benchmarks/model_selection.py [--no-popfit] [--starts 2] [--out DIR] [--table CSV]

Run on demand; prints a table (also the wall and CPU seconds of each fit) and which model each
criterion picks per cohort, with how many participants' own AIC prefer each model. Last run:
benchmarks/results/model_selection.txt/.csv (~500 s CPU in all, 90 % of it the four FOCE-I fits;
--no-popfit ~45 s CPU).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
COHORTS = {"sle_cohort": "cart_bcell_sle", "sle_cohort_allo": "cart_bcell_sle_allo"}
#: estimated kinetic parameters (7 each) and the population random effects (3 each)
MODELS = {
    "cart_bcell_sle": ("fE,kexp,kfade,dM,Bbase,kkill,qpcr_per_cell", "fE,dM,Bbase"),
    "cart_bcell_sle_allo": ("fE,kexp,krej,Bbase,kkill,vcn,kH", "fE,krej,Bbase"),
}


def run_fit(cohort: str, model: str, out: Path, starts: int) -> dict:
    from ctkinetics.cli.main import main

    estimate, _ = MODELS[model]
    t0, w0 = time.process_time(), time.perf_counter()
    code = main(["fit", str(ROOT / "data" / "sample" / cohort), "--model", model, "--estimate", estimate,
                 "--starts", str(starts), "--seed", "1", "--out", str(out), "--allow-failures"])
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    f = pd.read_csv(out / "fits.csv", dtype={"flags": str})
    flags = f["flags"].fillna("")
    at_bound = pd.read_csv(out / "parameters.csv", dtype={"flags": str})
    at_bound = at_bound[at_bound["flags"].fillna("").str.contains("at_bound")]
    return {"n_obs": int(f["n_obs"].sum()), "fit_ok": f"{int(f['success'].sum())}/{len(f)}", "fit_flagged": int((flags != "").sum()),
            "fit_at_bound": ";".join(f"{k} {v}" for k, v in at_bound.groupby("parameter").size().items()),
            "fit_ofv": f["ofv"].sum(), "fit_aic": f["aic"].sum(), "fit_bic": f["bic"].sum(),
            "fit_k": int(f["n_params"].sum()), "fit_wall_s": wall, "fit_cpu_s": cpu, "fit_exit": code,
            "_aic_by_subject": f.set_index("subject")["aic"]}


def run_popfit(cohort: str, model: str, out: Path) -> dict:
    from ctkinetics.cli.main import main

    estimate, random = MODELS[model]
    t0, w0 = time.process_time(), time.perf_counter()
    code = main(["popfit", str(ROOT / "data" / "sample" / cohort), "--model", model, "--estimate", estimate,
                 "--random-effects", random, "--seed", "1", "--out", str(out), "--allow-failures",
                 "--no-covariance"])
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    d = json.loads((out / "fit.json").read_text())
    return {"pop_ofv": d.get("ofv"), "pop_aic": d.get("aic"), "pop_bic": d.get("bic"),
            "pop_converged": d.get("converged"), "pop_wall_s": wall, "pop_cpu_s": cpu, "pop_exit": code}


def choose(table: pd.DataFrame, column: str) -> dict:
    """cohort -> the model with the lowest ``column``."""
    return {c: g.loc[g[column].astype(float).idxmin(), "model"] for c, g in table.groupby("cohort") if g[column].notna().all()}


def votes(rows: list[dict]) -> None:
    """Per participant (individual fits): how many prefer each model by AIC (equal k: AIC, BIC and
    -2LL rank alike), so a cohort total carried by one or two participants shows. Adds
    ``fit_subjects_preferring`` to each row."""
    for cohort in COHORTS:
        mine = [r for r in rows if r["cohort"] == cohort]
        aic = pd.DataFrame({r["model"]: r["_aic_by_subject"] for r in mine})
        best = aic.idxmin(axis=1)
        for r in mine:
            r["fit_subjects_preferring"] = f"{int((best == r['model']).sum())}/{len(best)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-popfit", action="store_true", help="individual fits only")
    ap.add_argument("--starts", type=int, default=2)
    ap.add_argument("--out", default=None, help="keep the fit folders here")
    ap.add_argument("--table", default=None, help="also write the table as CSV (e.g. benchmarks/results/model_selection.csv)")
    args = ap.parse_args()
    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ctk_selection_"))
    rows = []
    for cohort, truth in COHORTS.items():
        for model in MODELS:
            row = {"cohort": cohort, "generated_by": truth, "model": model}
            row.update(run_fit(cohort, model, base / f"fit_{cohort}_{model}", args.starts))
            if not args.no_popfit:
                row.update(run_popfit(cohort, model, base / f"popfit_{cohort}_{model}"))
            rows.append(row)
            print({k: (round(v, 1) if isinstance(v, float) else v) for k, v in row.items() if not k.startswith("_")},
                  flush=True)
    votes(rows)
    table = pd.DataFrame(rows).drop(columns="_aic_by_subject")
    pd.set_option("display.width", 200)
    print("\n" + table.round(1).to_string(index=False))
    criteria = ["fit_aic", "fit_bic"] + ([] if args.no_popfit else ["pop_aic", "pop_bic"])
    print("\nchosen model (lowest criterion) per cohort:")
    for crit in criteria:
        picked = choose(table, crit)
        right = all(picked.get(c) == t for c, t in COHORTS.items())
        print(f"  {crit:8s} " + ", ".join(f"{c}: {m}" for c, m in picked.items())
              + ("   -> the generating model on both cohorts" if right else "   -> NOT the generating model"))
    if args.table:
        table.to_csv(args.table, index=False)
    print(f"\nfit folders: {base}")


if __name__ == "__main__":
    main()
