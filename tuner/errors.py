"""privtune's exceptions and the one place that maps them to exit codes."""

from __future__ import annotations


class PrivtuneError(Exception):
    """Root of every error privtune reports to the user without a traceback."""

    exit_code = 1


class ConfigError(PrivtuneError):
    """The config is invalid: the message names the key, the value and what is allowed."""

    exit_code = 2


class DataError(PrivtuneError):
    """The data cannot be used: the message says what is wrong and how to fix it."""

    exit_code = 2


class NoAdequateDefenseError(PrivtuneError):
    """No defense in the search space met the adequacy bound."""

    exit_code = 3


EXIT_OK = 0
EXIT_CODES = {
    "success": EXIT_OK,
    "bad config or data": ConfigError.exit_code,
    "no adequate defense": NoAdequateDefenseError.exit_code,
}
