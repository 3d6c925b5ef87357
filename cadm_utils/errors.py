"""Errors that name the bad input; the command line prints them as one line, exit 2."""


class CadmError(Exception):
    """Base class for input errors detected before long work starts."""


class DataError(CadmError):
    """A data root, layout, domain, class or image that cannot be used."""


class ConfigError(CadmError):
    """An impossible or invalid setting (IPC, hyper-parameter, profile, method)."""
