"""A worker's producers: sub-tasks share the outcome producer unless their linger differs."""

from __future__ import annotations

from framework.config import Settings
from framework.kafka.roles import WorkerProducers


def test_sub_tasks_share_the_outcome_producer_when_lingers_agree() -> None:
    producers = WorkerProducers(Settings(outcome_linger_ms=1, subtask_linger_ms=1))
    assert producers.subtasks is producers.outcomes
    assert producers.outcomes.purpose == "outcomes"


def test_sub_tasks_get_a_producer_of_their_own_when_lingers_differ() -> None:
    producers = WorkerProducers(Settings(outcome_linger_ms=0, subtask_linger_ms=20))
    assert producers.subtasks is not producers.outcomes
    assert producers.subtasks.purpose == "subtasks"
