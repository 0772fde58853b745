"""Policies: which detectors run for which role, thresholds, actions, fail modes and time budgets."""

from bartizan.policy.loader import PolicyError, default_policy, load_policy, load_policy_text
from bartizan.policy.schema import Action, DetectorPolicy, FailMode, Policy

__all__ = [
    "Action",
    "DetectorPolicy",
    "FailMode",
    "Policy",
    "PolicyError",
    "default_policy",
    "load_policy",
    "load_policy_text",
]
