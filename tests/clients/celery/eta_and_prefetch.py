"""ETA tasks: the worker keeps an ETA task's message unacknowledged until it runs, and raises its
prefetch with basic.qos for each one (Celery's QoS.increment_eventually) so that the tasks
behind it still arrive. With a prefetch of 1, three ETA tasks queued before two plain tasks
hold the whole window: unless each basic.qos reaches the consumer that is already running
(kombu sends `global=false` to a broker that is not RabbitMQ 3.x; RabbitMQ itself applies a
non-global change to new consumers only), the plain tasks would wait for the ETAs. Checks
that the plain tasks run first, the ETA tasks run no earlier than their ETA, and the prefetch
goes up and back down.

With PRETEND_RABBITMQ_3=1 the worker takes the broker for RabbitMQ 3.x and sends global=true
instead; the same must hold."""
import os
import time

from common import Worker, check, done
from tasks import add, stamp

COUNTDOWN = 6

worker = Worker()
# A task first, so the worker is consuming with its initial prefetch before the ETAs arrive.
check(add.delay(1, 1).get(timeout=30) == 2, "the warm-up task")

eta_tasks = []
for n in range(3):
    sent = time.time()
    eta_tasks.append((sent, stamp.apply_async(args=[f"eta-{n}"], countdown=COUNTDOWN)))
plain = [stamp.delay(f"plain-{n}") for n in range(2)]

plain_ran = [result.get(timeout=COUNTDOWN + 15) for result in plain]
print("plain tasks:", plain_ran)
eta_ran = []
for sent, result in eta_tasks:
    ran = result.get(timeout=COUNTDOWN + 20)
    eta_ran.append(ran)
    print(f"{ran['label']}: eta {sent + COUNTDOWN:.3f}, ran {ran['ran_at']:.3f}")
    # Celery rounds the ETA to the millisecond; the timer fires at or after it.
    check(ran["ran_at"] >= sent + COUNTDOWN - 0.01, f"{ran['label']} ran before its ETA")
check(max(p["ran_at"] for p in plain_ran) < min(e["ran_at"] for e in eta_ran),
      "the plain tasks queued behind the ETA tasks had to wait for them")

# The ETA tasks are done; one more plain task runs, and the worker has lowered its prefetch.
check(add.delay(2, 2).get(timeout=20) == 4, "a task after the ETAs")
worker.stop()
qos = worker.qos_calls()
print(f"worker basic.qos calls (prefetch_count, global): {qos}")
counts = [count for count, _ in qos]
expected_global = bool(os.environ.get("PRETEND_RABBITMQ_3"))
check(all(flag == expected_global for _, flag in qos),
      f"expected every basic.qos with global={expected_global}: {qos}")
check(max(counts) >= 4, f"the prefetch was not raised for the three ETA tasks: {counts}")
# Celery lowers it lazily (on its consumer's next qos update), so it may not be back at 1 yet.
check(counts[-1] < max(counts), f"the prefetch did not come down: {counts}")
done("celery ETA tasks and the prefetch")
