"""The Celery app's configuration: Switchyard's AMQP port (AMQP_PORT, from the Rust test) through
kombu's py-amqp transport, and the RPC result backend (results come back as AMQP messages)."""
import os

broker_url = f"pyamqp://guest:guest@127.0.0.1:{os.environ['AMQP_PORT']}//"
result_backend = "rpc://"
# One task at a time with the solo pool and a prefetch of 1: the smallest window, so an ETA
# task that holds its message unacknowledged blocks everything behind it unless the worker's
# basic.qos increase reaches the running consumer.
worker_prefetch_multiplier = 1
worker_concurrency = 1
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
# A broker that goes away ends the test's worker instead of leaving it retrying.
broker_connection_retry_on_startup = False
broker_connection_max_retries = 1
worker_cancel_long_running_tasks_on_connection_loss = True
