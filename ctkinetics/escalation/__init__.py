"""Dose escalation: BOIN boundaries and decisions, TITE-BOIN, the stagger, MTD selection and
fast trial simulation.

Layers inside this package (each a small module with one concept):

- :mod:`.boundaries`  BoinDesign (λe, λd, elimination) and the boundary table
- :mod:`.rules`       the vectorised decision rules and their committee wording
- :mod:`.state`       participants and their DLT status as of a day
- :mod:`.fast`        ``decide_fast`` / ``decide_situations``: the decision without tables
- :mod:`.decision`    ``decide(state, design, as_of_day) -> Decision`` (pure) and the stagger
- :mod:`.mtd`         isotonic MTD selection as BOIN's ``select.mtd``
- :mod:`.simulate`    operating characteristics, vectorised over trials
- :mod:`.adapter`     a study's tables (subjects, safety) -> EscalationState
"""
from ctkinetics.escalation.adapter import decide_study, state_from_frames
from ctkinetics.escalation.boundaries import BoinDesign, BoundaryTable, boundaries, lambda_d, lambda_e
from ctkinetics.escalation.decision import Decision, TiteDetails, decide
from ctkinetics.escalation.fast import Situation, Step, decide_fast, decide_situations, situation
from ctkinetics.escalation.mtd import MtdSelection, pava, select_mtd
from ctkinetics.escalation.rules import RULES, tite_estimate
from ctkinetics.escalation.simulate import OperatingCharacteristics, simulate_boin, simulate_tite
from ctkinetics.escalation.state import EscalationState, Participant

__all__ = [
    "BoinDesign", "BoundaryTable", "boundaries", "lambda_e", "lambda_d",
    "EscalationState", "Participant", "Decision", "TiteDetails", "decide",
    "decide_fast", "decide_situations", "situation", "Situation", "Step",
    "MtdSelection", "pava", "select_mtd", "RULES", "tite_estimate",
    "OperatingCharacteristics", "simulate_boin", "simulate_tite",
    "state_from_frames", "decide_study",
]
