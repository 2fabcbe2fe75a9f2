"""plotly figures of the committee's review. They take result objects and only draw.

Every function returns a :class:`plotly.graph_objects.Figure`:

=========================  ==========================================================
individual_profile         one participant, log scale, LLOQ, BLQ open, fit + 95 % band
spaghetti                  all participants per dose level with the geometric mean
exposure_by_dose           Cmax / AUC0-28 by dose level (box, points, geometric mean)
cart_vs_bcells             CAR-T beside B cells per participant (aplasia shaded)
goodness_of_fit            observed vs IPRED, IWRES vs time and vs IPRED, BLQ shown
lambda_z                   NCA terminal-phase points and regression line
exposure_vs_toxicity       Cmax / AUC0-28 by CRS grade, DLTs marked
swimmer                    enrolment: infusions, DLT windows, DLTs, stagger waits
boin_chart                 BOIN regions by n with the observed DLT counts
=========================  ==========================================================

Quantities a figure shows but does not own (a fitted curve on a grid, geometric-mean
profiles, aplasia periods) are passed in as small tables; :mod:`ctkinetics.report` makes them.
"""
from ctkinetics.plots.bcells import cart_vs_bcells
from ctkinetics.plots.diagnostics import goodness_of_fit, lambda_z
from ctkinetics.plots.escalation import boin_chart, swimmer
from ctkinetics.plots.exposure import exposure_by_dose, exposure_vs_toxicity
from ctkinetics.plots.profiles import individual_profile, spaghetti

__all__ = ["individual_profile", "spaghetti", "exposure_by_dose", "exposure_vs_toxicity",
           "cart_vs_bcells", "goodness_of_fit", "lambda_z", "swimmer", "boin_chart"]
