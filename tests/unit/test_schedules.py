"""Beat entries as GET /api/v1/schedules shows them; Celery settings Flower relies on."""

import celeryconfig


def test_task_events_are_on_for_flower() -> None:
    # Flower and `celery events` see nothing unless workers send events (and "sent" ones).
    assert celeryconfig.worker_send_task_events is True
    assert celeryconfig.task_send_sent_event is True
