"""Domain exceptions. Every error a user can cause is a ``CurationError`` whose message is one line that names
the file, column, row or field at fault; the CLI and the pipeline entry points print it and exit non-zero."""


class CurationError(Exception):
    """Base class for errors caused by input or configuration (not by bugs)."""


class ConfigError(CurationError):
    """A params block does not match its config dataclass (unknown key, wrong type, invalid value)."""


class DataContractError(CurationError):
    """An input table violates the data contract (missing column, duplicate id, null, wrong dtype, ...)."""


class UnsafeCheckpointError(CurationError):
    """A checkpoint would need pickled code to load, so it is refused."""


class StoreMismatchError(CurationError):
    """An on-disk store or output folder was written with different metadata than the current run expects."""


class PluginError(CurationError):
    """A plugin name is unknown, duplicated, or failed to load."""


class MissingExtraError(CurationError):
    """An optional dependency is not installed; the message gives the ``pip install curation[extra]`` hint."""
