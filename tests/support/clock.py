"""A clock that moves only when slept on: rollouts and launchers wait without time passing."""


class FakeClock:
    """Call it for the time now; `sleep` moves it forward at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
