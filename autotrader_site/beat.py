"""The beat scheduler with a heartbeat and a bounded stop.

`HeartbeatScheduler` is django-celery-beat's DatabaseScheduler plus: a heartbeat
(`HEARTBEAT_DIR/beat.json`, see autotrader_site.heartbeat) written from the scheduling loop, which
wakes at least every HEARTBEAT_INTERVAL_SEC so a healthy idle beat still beats; and, when beat
stops (SIGTERM: celery saves the schedule, then exits), a watchdog so a schedule save hanging on
a dead database cannot keep the process past SHUTDOWN_DEADLINE_SEC.
"""

from __future__ import annotations

from django_celery_beat.schedulers import DatabaseScheduler

from autotrader_site.heartbeat import Heartbeat
from autotrader_site.shutdown import GracefulStop


class HeartbeatScheduler(DatabaseScheduler):
    def __init__(self, *args, **kwargs) -> None:
        self.heartbeat = Heartbeat("beat")
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        self.heartbeat.beat(state="running", next_in_sec=interval)
        return min(interval, self.heartbeat.interval) if interval else interval

    def close(self) -> None:
        GracefulStop("beat").arm()
        self.heartbeat.beat(force=True, state="stopping")
        super().close()
