"""The `schedule:` section: when `loop watch` runs a spec's checks, what a tick may spend, what it
does with a verified run, and whom it tells.

    schedule:
      every: 10m                      # or cron: "*/10 * * * *" (minute hour day month weekday, local time)
      quiet_hours: "22:00-07:00"      # no ticks in this window (local time)
      daily_cost_usd: 5               # what the runs a watcher starts may spend per day, together
      apply: never                    # never (a branch is left for review) | verified | ask
      notify:
        - command: [notify-send, loop]          # gets the event as JSON on stdin
        - url_env: SLACK_WEBHOOK_URL            # the URL is read from the environment, never written here
          events: [verified, failed]

`next_tick` says when the next tick is due. Cron expressions are read by cronsim.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .fields import Duration, Strict

Event = Literal["run_started", "verified", "failed", "daily_cap"]
EVENTS: tuple[Event, ...] = ("run_started", "verified", "failed", "daily_cap")
_CLOCK = r"([01]?\d|2[0-3]):([0-5]\d)"
QUIET = re.compile(rf"^\s*{_CLOCK}\s*-\s*{_CLOCK}\s*$")


class Notify(Strict):
    command: list[str] | None = Field(None, min_length=1, description="A command and its arguments; the event "
                                      "comes as JSON on its stdin.")
    url_env: str | None = Field(None, description="The environment variable holding a webhook URL: the event is "
                                "POSTed to it as JSON.")
    events: list[Event] = Field(
        default_factory=lambda: list(EVENTS), description="Which events to send; all by default.")
    timeout: Duration = Field(10.0, description="How long one notification may take.")

    @model_validator(mode="after")
    def _one_target(self) -> Notify:
        if (self.command is None) == (self.url_env is None):
            raise ValueError("a notification has `command` or `url_env`, one of them")
        return self


class ScheduleSpec(Strict):
    every: Duration | None = Field(None, description="The time between ticks: 90s, 10m, 1h.")
    cron: str | None = Field(None, description="When ticks are due, as a cron expression in local time.")
    quiet_hours: str | None = Field(None, description="No ticks in this window of local time, e.g. 22:00-07:00.")
    daily_cost_usd: float | None = Field(None, gt=0, description="What the runs a watcher starts may spend per day "
                                         "together; a run gets what is left of it as its max_cost_usd.")
    apply: Literal["never", "verified", "ask"] = Field(
        "never", description="A verified run's changes: never applied (its branch is left for review), applied "
        "(`verified`: merged into the checkout), or `ask`: left, and a notification says `loop apply RUN`.")
    notify: list[Notify] = Field(default_factory=list, description="Commands and webhooks told of runs started, "
                                 "verified and failed, and of the daily cap reached.")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str | None) -> str | None:
        if value is not None and not QUIET.match(value):
            raise ValueError(f"quiet_hours is a window of local time like 22:00-07:00, not {value!r}")
        return value

    @model_validator(mode="after")
    def _when(self) -> ScheduleSpec:
        if self.every is not None and self.cron is not None:
            raise ValueError("a schedule has `every` or `cron`, not both")
        return self


def check_cron(value: str) -> str:
    from cronsim import CronSim, CronSimError

    try:
        CronSim(value, datetime.now())
    except CronSimError as exc:
        raise ValueError(f"bad cron expression {value!r} ({exc}): write five fields, "
                         "minute hour day month weekday, e.g. \"*/10 * * * *\"") from None
    return value


def quiet_until(schedule: ScheduleSpec, moment: datetime) -> datetime | None:
    """The end of the quiet window `moment` falls in, or None when it is not quiet then."""
    match = QUIET.match(schedule.quiet_hours or "")
    if match is None:
        return None
    start, end = (time(int(match.group(i)), int(match.group(i + 1))) for i in (1, 3))
    now = moment.time()
    inside = start <= now < end if start <= end else (now >= start or now < end)
    if not inside:
        return None
    day = moment.date() + (timedelta(days=1) if start > end and now >= start else timedelta())
    return datetime.combine(day, end, tzinfo=moment.tzinfo)


def next_tick(schedule: ScheduleSpec, after: datetime, every: float | None = None, cron: str | None = None) -> datetime:
    """When the tick after `after` is due (`every`/`cron` override the spec's), outside quiet hours."""
    from cronsim import CronSim

    cron = cron if cron is not None else (None if every is not None else schedule.cron)
    step = every if every is not None else schedule.every
    due = next(CronSim(cron, after)) if cron else after + timedelta(seconds=step or 600.0)
    quiet = quiet_until(schedule, due)
    if quiet is not None:
        due = next(CronSim(cron, quiet - timedelta(microseconds=1))) if cron else quiet
    return due


def describe(schedule: ScheduleSpec, every: float | None = None, cron: str | None = None) -> dict[str, Any]:
    """The schedule in force, as the watcher's state records it."""
    if cron or (every is None and schedule.cron):
        return {"cron": cron or schedule.cron}
    return {"every_s": every if every is not None else (schedule.every or 600.0)}
