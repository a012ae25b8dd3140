"""The tasks the Celery worker runs. Imported by the worker (`celery -A tasks worker`) and by the
scripts that send tasks. In the worker it also logs every basic.qos py-amqp sends (the
prefetch Celery asks for, and the `global` flag it chose from the server's properties), and
ends the worker if the script that started it is gone."""
import os
import sys
import threading
import time

import amqp
from celery import Celery
from celery.signals import worker_init

if os.environ.get("PRETEND_RABBITMQ_3"):
    # What kombu concludes for RabbitMQ 3.3 to 3.x: basic.qos with global=true, which RabbitMQ
    # takes as channel-wide (the spec's meaning of global=false).
    import kombu.transport.pyamqp

    kombu.transport.pyamqp.Transport.qos_semantics_matches_spec = lambda self, connection: False

app = Celery("tasks")
app.config_from_object("celeryconfig")


@app.task
def add(x, y):
    return x + y


@app.task
def echo(payload):
    """A large argument comes back whole (it crosses the broker in several frames)."""
    return {"length": len(payload), "head": payload[:16], "tail": payload[-16:]}


@app.task
def fail(message):
    raise ValueError(message)


@app.task
def stamp(label):
    """When the worker ran the task, by the wall clock the sender's ETA is in."""
    return {"label": label, "ran_at": time.time()}


@app.task(bind=True, max_retries=5)
def flaky(self, failures):
    """Fails `failures` times with self.retry (a new message with a countdown), then succeeds."""
    if self.request.retries < failures:
        raise self.retry(exc=RuntimeError(f"attempt {self.request.retries}"), countdown=0.5)
    return {"retries": self.request.retries, "id": self.request.id}


@app.task(bind=True, max_retries=1)
def hopeless(self):
    raise self.retry(exc=RuntimeError("still broken"), countdown=0.2)


@worker_init.connect
def instrument(**_):
    original = amqp.Channel.basic_qos

    def logged_basic_qos(self, prefetch_size, prefetch_count, a_global, *args, **kwargs):
        print(f"BASIC_QOS prefetch_size={prefetch_size} prefetch_count={prefetch_count} "
              f"global={a_global}", file=sys.stderr, flush=True)
        return original(self, prefetch_size, prefetch_count, a_global, *args, **kwargs)

    amqp.Channel.basic_qos = logged_basic_qos

    parent = os.getppid()
    started = time.monotonic()

    def watchdog():
        # The script that started this worker stops it; if the script is gone (killed by the
        # test's timeout), or the worker outlives any scenario, the worker ends itself.
        while os.getppid() == parent and time.monotonic() - started < 100:
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
