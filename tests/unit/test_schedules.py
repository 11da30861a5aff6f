"""Beat entries as GET /api/v1/schedules shows them; Celery settings Flower relies on."""

from datetime import UTC, datetime, timedelta

from celery import Celery
from celery.beat import ScheduleEntry
from celery.schedules import crontab
from celery.schedules import schedule as every_s
from flask import Flask
from flask.testing import FlaskClient

import celeryconfig
from hub.api.schedules import next_run
from models import ScheduleRun, db
from tasks.beat import due_times


def test_task_events_are_on_for_flower() -> None:
    # Flower and `celery events` see nothing unless workers send events (and "sent" ones).
    assert celeryconfig.worker_send_task_events is True
    assert celeryconfig.task_send_sent_event is True


def entries(app: Flask) -> dict[str, dict]:
    """Swap in a schedule with an interval and the crontab form the README shows."""
    app.extensions["celery"].conf.beat_schedule = {
        "every-ten": celeryconfig.every(10, "demo.count", "every-ten"),
        "each-minute": celeryconfig.every(crontab(minute="*/1"), "demo.count", "each-minute"),
    }
    return app.extensions["celery"].conf.beat_schedule


def listed(client: FlaskClient, auth: dict[str, str]) -> dict[str, dict]:
    response = client.get("/api/v1/schedules", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    return {e["entry"]: e for e in response.get_json()}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_schedules_are_readable_for_intervals_and_crontabs(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    entries(app)
    shown = listed(client, auth)
    assert shown["every-ten"]["kind"] == "interval"
    assert shown["every-ten"]["every_seconds"] == 10.0
    assert shown["every-ten"]["schedule"] == "every 10 s"
    assert shown["every-ten"]["crontab"] is None
    cron = shown["each-minute"]
    assert cron["kind"] == "crontab" and cron["every_seconds"] is None
    assert cron["crontab"] == {"minute": "*/1", "hour": "*", "day_of_week": "*",
                               "day_of_month": "*", "month_of_year": "*"}
    assert cron["schedule"] == "crontab */1 * * * *"
    assert "<" not in cron["schedule"]  # no Python repr


def test_next_run_of_entries_that_never_ran_is_one_period_ahead(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    entries(app)
    before = datetime.now(UTC)
    shown = listed(client, auth)
    after = datetime.now(UTC)
    interval = at(shown["every-ten"]["next_run"])
    # A beat starting now first runs it one interval later, not "now".
    assert before + timedelta(seconds=10) - timedelta(milliseconds=1) <= interval
    assert interval <= after + timedelta(seconds=10)
    minute = at(shown["each-minute"]["next_run"])
    assert minute.second == 0 and before < minute <= after + timedelta(minutes=1)
    assert shown["each-minute"]["last_run"] is None


def test_next_run_follows_the_last_run(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    entries(app)
    ran = datetime.now(UTC) - timedelta(seconds=4)
    with app.app_context():
        db.session.add_all([ScheduleRun(entry="every-ten", task_id="t1", state="succeeded",
                                        ran_at=ran),
                            ScheduleRun(entry="each-minute", task_id="t2", state="failed",
                                        ran_at=ran)])
        db.session.commit()
    shown = listed(client, auth)
    assert shown["every-ten"]["last_state"] == "succeeded"
    assert abs(at(shown["every-ten"]["next_run"]) - (ran + timedelta(seconds=10))) \
        < timedelta(milliseconds=50)
    minute = at(shown["each-minute"]["next_run"])
    assert minute > ran and minute.second == 0 and minute - ran <= timedelta(minutes=1)


def test_the_beats_own_figure_wins_for_next_run() -> None:
    due = datetime(2030, 1, 1, 12, 0, 5, tzinfo=UTC)
    assert next_run(every_s(timedelta(seconds=10)), None, due.timestamp(),
                    datetime.now(UTC)) == due


def test_beat_shares_when_each_entry_next_runs() -> None:
    # An entry that never ran counts from the scheduler's start (its last_run_at default).
    app = Celery(set_as_current=False)
    app.conf.timezone = "UTC"
    started = datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC)
    now = started + timedelta(seconds=4)
    schedule = {
        "every-ten": ScheduleEntry("every-ten", "demo.count", started,
                                   schedule=every_s(timedelta(seconds=10), app=app), app=app),
        "each-minute": ScheduleEntry("each-minute", "demo.count", started,
                                     schedule=crontab(minute="*/1", app=app), app=app),
    }
    for entry in schedule.values():
        entry.schedule.nowfun = lambda: now
    due = due_times(schedule, now)
    assert due["every-ten"] == (started + timedelta(seconds=10)).timestamp()
    assert due["each-minute"] == datetime(2030, 1, 1, 12, 1, tzinfo=UTC).timestamp()
