"""The two ways an experiment fails to run (as opposed to: it ran and a check failed)."""


class ExperimentError(ValueError):
    """An experiment file is malformed; the message names the file and the field."""


class RunError(Exception):
    """The experiment could not be run (not: it ran and failed); the message says why."""
