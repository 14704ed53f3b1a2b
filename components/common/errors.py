"""Errors a stage raises on purpose: the CLI shows their message as the run's last line."""


class StageError(RuntimeError):
    """A stage refused its input or failed in a way the user can act on.

    `stage` names the stage, `subject` what was wrong (a feature, a file, a threshold).
    """

    def __init__(self, stage: str, message: str, subject: str | None = None) -> None:
        self.stage = stage
        self.subject = subject
        super().__init__(message)


class DataError(StageError):
    """The data is unusable for training (a blocking check failed). Retrying cannot help."""
