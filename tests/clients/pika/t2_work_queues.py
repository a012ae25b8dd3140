"""RabbitMQ tutorial 2, "Work Queues": a durable queue, persistent tasks, two workers with
prefetch 1 and manual acks. Fair dispatch: a busy worker gets no second task while another
is free, and a task a worker dies holding goes to the other."""
import threading
import time

import pika

from common import check, connect, done

setup = connect()
channel = setup.channel()
channel.queue_declare(queue="task_queue", durable=True)
for n in range(10):
    slow = n == 0
    channel.basic_publish(
        exchange="",
        routing_key="task_queue",
        body=f"task {n} {'slow' if slow else 'fast'}",
        properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
    )
setup.close()

done_by = {}
lock = threading.Lock()


def worker(name, count_limit):
    connection = connect()
    ch = connection.channel()
    ch.queue_declare(queue="task_queue", durable=True)
    ch.basic_qos(prefetch_count=1)

    def callback(ch, method, properties, body):
        if body.endswith(b"slow"):
            time.sleep(1.0)
        with lock:
            done_by[body] = name
            finished = len(done_by)
        ch.basic_ack(delivery_tag=method.delivery_tag)
        if finished >= 10:
            ch.stop_consuming()

    ch.basic_consume(queue="task_queue", on_message_callback=callback)
    connection.call_later(15, ch.stop_consuming)
    while len(done_by) < 10:
        connection.process_data_events(time_limit=0.1)
        if len(done_by) >= 10:
            break
    connection.close()


threads = [threading.Thread(target=worker, args=(name, 10)) for name in ("a", "b")]
for t in threads:
    t.start()
for t in threads:
    t.join(30)
check(len(done_by) == 10, f"done {len(done_by)} of 10: {done_by}")
slow_worker = done_by[b"task 0 slow"]
others = [w for b, w in done_by.items() if b != b"task 0 slow"]
# While one worker sleeps on the slow task, the other takes all the fast ones it can.
check(others.count(slow_worker) <= 1, f"the busy worker was given more work: {done_by}")

# A worker that dies holding a task: the task goes to the next worker, marked redelivered.
setup = connect()
ch = setup.channel()
ch.basic_publish(exchange="", routing_key="task_queue", body="orphan",
                 properties=pika.BasicProperties(delivery_mode=2))
setup.close()
dying = connect()
ch = dying.channel()
ch.basic_qos(prefetch_count=1)
method, _, body = (None, None, None)
for method, properties, body in ch.consume("task_queue", inactivity_timeout=5):
    break
check(body == b"orphan", f"the dying worker got {body}")
dying.close()  # without acking
survivor = connect()
ch = survivor.channel()
method, properties, body = ch.basic_get("task_queue")
check(body == b"orphan" and method.redelivered, f"got {body} redelivered={method and method.redelivered}")
ch.basic_ack(method.delivery_tag)
survivor.close()
done("work queues")
