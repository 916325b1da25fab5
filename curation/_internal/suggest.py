"""Did-you-mean hints for unknown names (config keys, plugin names, stage names)."""

from collections.abc import Iterable
from difflib import get_close_matches


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or a list of valid choices when none is close."""
    options = sorted(choices)
    close = get_close_matches(name, options, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; valid: {', '.join(options)}" if options else ""
