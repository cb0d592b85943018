"""The worker's consumer (CELERY_WORKER_CONSUMER): Celery's own, except that tearing down the
broker connection a Redis restart broke can never end the worker.

Celery 5.7's consumer, on a connection lost after it was connected, first `collect()`s the
connection and then `close()`s it. When the collect is cut short (its drain of a pending BRPOP
times out on the dead socket) it still detaches the transport, and the close then tries to
requeue the channel's unacknowledged messages through a transport with no client: kombu raises
`AttributeError: 'NoneType' object has no attribute 'hostname'`, which Celery does not ignore,
and the worker exits with status 1 ("Unrecoverable error"), its tasks' bars lost until a restart
(seen in the soak: a worker gone after the Redis restart, 4 bars never handled). Here the lost
connection is torn down first, every error of that teardown logged and ignored; Celery's own
handler then runs with nothing left to close, and the consumer reconnects as for any other
connection loss. The messages it could not requeue are still in Redis' unacked set and come
back after the visibility timeout (acks_late).
"""

from __future__ import annotations

import logging

from celery.utils.threads import bound_open_broker_sockets
from celery.worker.consumer.consumer import COLLECT_SOCKET_TIMEOUT
from celery.worker.consumer.consumer import Consumer as CeleryConsumer

log = logging.getLogger(__name__)


class Consumer(CeleryConsumer):
    def on_connection_error_after_connected(self, exc):
        connection, self.connection = self.connection, None
        if connection is not None:
            bound_open_broker_sockets(connection, COLLECT_SOCKET_TIMEOUT)
            steps = (
                ("collect", lambda: connection.collect(socket_timeout=COLLECT_SOCKET_TIMEOUT)),
                ("close", connection.close),
            )
            for step, teardown in steps:
                try:
                    teardown()
                except Exception as error:  # a broken connection's teardown: never fatal
                    log.warning("lost broker connection: %s failed (%r); reconnecting", step, error)
        super().on_connection_error_after_connected(exc)
