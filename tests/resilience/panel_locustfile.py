"""A do-nothing workload with the faults panel, for the panel's tests."""

from locust import User, constant, task

import locustfiles.panel  # noqa: F401  (registers the panel)


class Idle(User):
    wait_time = constant(1)

    @task
    def nothing(self) -> None:
        pass
