"""Content addresses: a trial's id, and its arm's (the configuration, seed aside).

A trial's id is a hash of its fully resolved config (every field that differs from what
trials implicitly had before it existed: ``prernn.settings.identity``); the trials of one
arm differ only in their seed, and an arm's id is the id its config has with seed 0.
"""

from __future__ import annotations

import hashlib
import json

from prernn.config import TrialConfig
from prernn.settings import Section, identity


def _by_value(data):
    """Numbers hash by value: an integral float is written as the int it equals."""
    if isinstance(data, dict):
        return {k: _by_value(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_by_value(v) for v in data]
    if isinstance(data, float) and data.is_integer():
        return int(data)
    return data


def trial_id(config: TrialConfig | dict) -> str:
    """The content address of a resolved config."""
    view = identity(config) if isinstance(config, Section) else identity(TrialConfig, config)
    blob = json.dumps(_by_value(view), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def arm_id(config: TrialConfig) -> str:
    """The content address of a trial's configuration without its seed: one arm of a claim."""
    return trial_id(config.replace(seed=0))


def plan_id(trial_ids) -> str:
    """A sweep's plan: the set of trials a spec expands to (profile and overrides applied)."""
    return hashlib.sha256(",".join(sorted(trial_ids)).encode()).hexdigest()[:12]
