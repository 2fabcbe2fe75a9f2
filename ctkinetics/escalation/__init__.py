"""Dose escalation: BOIN / TITE-BOIN decisions faithful to the protocol, the MTD now, dose
pathways, BOIN12's recommended dose, and fast trial simulation.

Layers inside this package (each a small module with one concept):

- :mod:`.boundaries`  BoinDesign (λe, λd, elimination, R BOIN's options) and the boundary table
- :mod:`.rules`       the decision rules as one ordered table with named ids, vectorised
- :mod:`.state`       participants and their status as of a day (one vectorised status rule)
- :mod:`.sentinel`    the stagger gate: time and the sentinel's safety
- :mod:`.fast`        ``decide_arrays`` / ``decide_fast``: the decision without tables
- :mod:`.decision`    ``decide(state, design, as_of_day) -> Decision`` (pure) with the wording
- :mod:`.mtd`         isotonic MTD selection as BOIN's ``select.mtd``; ``estimate_mtd``: the MTD now
- :mod:`.paths`       dose-transition pathways of the next cohorts
- :mod:`.boin12`      BOIN12 (utility of toxicity and efficacy), :mod:`.efficacy` the RD
- :mod:`.no_expansion`, :mod:`.expansion`  the kinetic check and the expansion groups' safety
- :mod:`.adapter`     a study's tables -> EscalationState (dose shortfall, committee record)
- :mod:`.review`      ``review_escalation``: the one home the CLI, the report and summary.json read
- :mod:`.simulate`    operating characteristics, vectorised over trials

The names in ``__all__`` are the public surface; the others stay importable from here for
code written before (e.g. ``pava``, ``Situation``, ``decide_situations``, ``state_from_frames``).
"""
from ctkinetics.escalation.adapter import decide_study, state_from_dataset, state_from_frames
from ctkinetics.escalation.boin12 import Boin12Design, rds_table, select_obd
from ctkinetics.escalation.boundaries import BoinDesign, BoundaryTable, boundaries, lambda_d, lambda_e
from ctkinetics.escalation.decision import Decision, TiteDetails, decide
from ctkinetics.escalation.fast import (Situation, Step, decide_arrays, decide_fast, decide_situations,
                                       situation)
from ctkinetics.escalation.mtd import MtdEstimate, MtdSelection, estimate_mtd, pava, select_mtd
from ctkinetics.escalation.paths import DosePaths, dose_paths
from ctkinetics.escalation.review import EscalationReview, review_escalation
from ctkinetics.escalation.rules import RULE, RULES, tite_estimate
from ctkinetics.escalation.simulate import OperatingCharacteristics, simulate_boin, simulate_tite
from ctkinetics.escalation.state import CommitteeEvent, EscalationState, Participant

__all__ = [
    "BoinDesign", "boundaries", "EscalationState", "Participant", "CommitteeEvent",
    "decide", "Decision", "decide_fast", "decide_arrays", "RULE",
    "select_mtd", "estimate_mtd", "MtdEstimate", "dose_paths", "DosePaths",
    "Boin12Design", "rds_table", "select_obd",
    "review_escalation", "EscalationReview", "decide_study",
    "simulate_boin", "simulate_tite", "OperatingCharacteristics",
]
# Importable for older code, not part of the documented surface:
_LEGACY = (BoundaryTable, lambda_d, lambda_e, TiteDetails, Situation, Step, decide_situations, situation,
           MtdSelection, pava, RULES, tite_estimate, state_from_frames, state_from_dataset)
