"""Why a placement found no host: capacity, or something else — kept apart so the user and the
spawn metric get the real reason ("No capacity" only when hosts answered and nothing fits)."""

from __future__ import annotations

from ..base import AccessDenied, BackendError, NoCapacity, Unreachable


class Refusals:
    """The hosts left out of one placement, each with its reason."""

    def __init__(self) -> None:
        self.shortages: list[str] = []  # the host answered; its free GPUs do not fit
        self.failures: list[BackendError] = []  # the host could not be asked, or refused us

    def shortage(self, message: str) -> None:
        self.shortages.append(message)

    def failure(self, error: BackendError) -> None:
        self.failures.append(error)

    def __bool__(self) -> bool:
        return bool(self.shortages or self.failures)

    def error(self) -> BackendError:
        """The error that says why nothing was placed: NoCapacity when at least one host
        answered and nothing fitted (the other hosts' failures named too); otherwise the
        failures' own kind when they share one (every host unreachable, every login refused),
        else a plain BackendError listing each."""
        text = "; ".join([*self.shortages, *(str(f) for f in self.failures)]) or "no host is available"
        if self.shortages:
            return NoCapacity(text)
        kinds = {type(f) for f in self.failures}
        if kinds == {Unreachable}:
            return Unreachable(f"no host could be reached: {text}")
        if kinds == {AccessDenied}:
            return AccessDenied(text)
        return BackendError(text)
