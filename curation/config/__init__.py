"""Strict loading of params blocks into frozen, help-annotated dataclasses, plus the config hash.

``load(Config, mapping, where=...)`` rejects unknown keys with a did-you-mean hint, coerces nested dataclasses,
tuples and enums, checks scalar types, and lets ``__post_init__`` validate values. ``config_hash`` is the short
digest saved beside every output and tagged on every MLflow run.
"""

from curation.config.loader import config_hash, explain, field_help, load, read_yaml_mapping, to_dict

__all__ = ["config_hash", "explain", "field_help", "load", "read_yaml_mapping", "to_dict"]
