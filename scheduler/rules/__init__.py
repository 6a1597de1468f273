"""Placement rules, one per module. ``RULE_TYPES`` is the explicit registry the scenario
loader reads: the YAML ``type`` of a rule and the class that implements it."""

from scheduler.rules.affinity import Affinity
from scheduler.rules.anti_affinity import AntiAffinity
from scheduler.rules.ban import Ban
from scheduler.rules.base import Expr, Penalty, PlacementView, Rule, RuleEncoding, RuleFields
from scheduler.rules.pin import Hold, Pin, held_in_place
from scheduler.rules.spread import Spread

RULE_TYPES: dict[str, type[Rule]] = {
    "anti-affinity": AntiAffinity,
    "affinity": Affinity,
    "spread": Spread,
    "pin": Pin,
    "ban": Ban,
}

__all__ = [
    "RULE_TYPES",
    "Affinity",
    "AntiAffinity",
    "Ban",
    "Expr",
    "Hold",
    "Penalty",
    "Pin",
    "PlacementView",
    "Rule",
    "RuleEncoding",
    "RuleFields",
    "Spread",
    "held_in_place",
]
