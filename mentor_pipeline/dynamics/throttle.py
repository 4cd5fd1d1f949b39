"""One Retry-After for the whole client (Microsoft's "Service protection API limits").

Dataverse throttles per user, not per connection: `Retry-After` is the time before *any* new
request of that user is processed, and requests sent meanwhile are refused again and can extend
the throttling. So when one `$batch` worker gets a 429, every worker of the client holds until
the same deadline. Tokens come from Entra ID, another service: they never wait here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

# Told of every hold that extends the shared deadline: (Retry-After, seconds it adds, what was throttled).
HoldListener = Callable[[float, float, str], None]

logger = logging.getLogger("mentor_pipeline.dynamics")

# Waits longer than this are worth a log line (with their Retry-After); shorter ones are routine.
LOG_WAITS_OVER_SECONDS = 3.0


class SharedThrottle:
    def __init__(self, sleep: Callable[[float], None], clock: Callable[[], float] = time.monotonic,
                 log: logging.Logger = logger):
        self._sleep = sleep
        self._clock = clock
        self._log = log
        self._lock = threading.Lock()
        self._deadline = float("-inf")  # on the `clock` scale: nothing is sent before it
        self._listeners: list[HoldListener] = []

    def listen(self, listener: HoldListener) -> Callable[[], None]:
        """Call `listener` on every hold that extends the deadline (from the worker that got the
        429, outside the lock). Returns the function that stops it."""
        with self._lock:
            self._listeners.append(listener)

        def stop() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return stop

    def hold(self, retry_after: float, what: str, *, notify: bool = True) -> None:
        """A 429 with `Retry-After: retry_after` for `what`: nothing is sent before it has passed.
        `notify=False`: a hold learnt from elsewhere, not told to the listeners."""
        with self._lock:
            now = self._clock()
            until = now + retry_after
            extends_by = until - max(self._deadline, now)
            if extends_by <= 0:
                return  # a sibling's hold already covers this one
            self._deadline = until
            listeners = list(self._listeners) if notify else []
        if extends_by > LOG_WAITS_OVER_SECONDS:
            resume = time.strftime("%H:%M:%S", time.localtime(time.time() + retry_after))
            self._log.warning(
                "Dataverse throttled %s (HTTP 429, Retry-After: %g s): every request of this client waits "
                "until %s", what, retry_after, resume)
        for listener in listeners:
            listener(retry_after, extends_by, what)

    def wait(self) -> float:
        """Block until the shared deadline has passed; returns the seconds waited.

        A deadline is over once a waiter has slept the whole remaining time, even if the clock
        says otherwise: an injected `sleep` that does not move the clock (tests) must not keep
        every later request waiting.
        """
        waited = 0.0
        while True:
            with self._lock:
                deadline = self._deadline
            remaining = deadline - self._clock()
            if remaining <= 0:
                return waited
            self._sleep(remaining)
            waited += remaining
            with self._lock:
                if self._deadline == deadline:  # not extended meanwhile
                    self._deadline = float("-inf")

    def remaining(self) -> float:
        """Seconds until requests may go out again (0 when not throttled)."""
        with self._lock:
            return max(0.0, self._deadline - self._clock())
