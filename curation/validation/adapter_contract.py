"""The table contract a model adapter's input must meet, so commands that take a user's table and a checkpoint
(``curate influence``, ``curate label-errors``) can run the same Great Expectations suite as ``validate_data``.

An adapter may declare its own ``contract`` attribute (a :class:`TableContract`); otherwise classifiers (configs
with ``n_classes``) need the ``features`` contract with labels in ``0..n_classes-1`` and feature lists of
``n_features`` values (or their configured numeric ``feature_columns``), and everything else -- language models --
the ``text`` contract. A checkpoint whose model config disagrees with the table is thereby one line naming the
first row that does not fit, before any scoring.
"""

from __future__ import annotations

from typing import Any

from curation.validation.contracts import COMMON_OPTIONAL, CONTRACTS, TableContract


def contract_for_adapter(adapter: Any) -> TableContract:
    """The contract rows fed to ``adapter.collate`` must satisfy (label range included where it is known)."""
    declared = getattr(adapter, "contract", None)
    if isinstance(declared, TableContract):
        return declared
    config = getattr(adapter, "config", None)
    n_classes = getattr(config, "n_classes", None)
    if n_classes is None:
        return CONTRACTS["text"]
    label_range = (0, int(n_classes) - 1)
    columns = tuple(getattr(config, "feature_columns", ()) or ())
    if not columns:
        base = CONTRACTS["features"]
        n_features = getattr(config, "n_features", None)
        return TableContract(name=base.name, required=base.required, optional=base.optional, label_range=label_range,
                             feature_length=int(n_features) if n_features is not None else None)
    return TableContract(
        name="feature_columns",
        required={"example_id": "id", "label": "integer", **{c: "float" for c in columns}},
        optional=COMMON_OPTIONAL,
        label_range=label_range,
    )
