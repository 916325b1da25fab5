"""Did-you-mean hints for unknown names (config keys, plugin names, stage names)."""

from collections.abc import Iterable
from difflib import get_close_matches


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, always followed by the list of valid choices."""
    options = sorted(choices)
    close = get_close_matches(name, options, n=1, cutoff=0.6)
    valid = f"valid: {', '.join(options)}" if options else ""
    if close:
        return f"; did you mean '{close[0]}'? ({valid})"
    return f"; {valid}" if valid else ""
