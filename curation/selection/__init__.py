"""Selectors (the only home of thresholds: which examples to keep, flag or drop, and why) and the writer of the
filtered dataset with its manifest."""

from curation.selection.apply import write_filtered
from curation.selection.selector import Selector, SelectorConfig, selection_issues
from curation.selection.self_influence import SelfInfluenceSelector, SelfInfluenceSelectorConfig

__all__ = [
    "Selector", "SelectorConfig", "SelfInfluenceSelector", "SelfInfluenceSelectorConfig", "selection_issues",
    "write_filtered",
]
