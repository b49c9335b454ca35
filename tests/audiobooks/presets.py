"""The tracker-rules presets migration 0002 ships. A transactional test (real processes) flushes the tables
when it ends, data migrations included: tests that rely on the MyAnonamouse preset put it back first."""

from __future__ import annotations

import importlib

from audiobooks.compliance.models import TrackerRules


def ensure_mam_rules() -> TrackerRules:
    preset = importlib.import_module("audiobooks.migrations.0002_compliance").MAM
    rules, _ = TrackerRules.objects.get_or_create(tracker=preset["tracker"], defaults=preset)
    return rules
