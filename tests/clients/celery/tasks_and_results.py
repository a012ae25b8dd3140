"""A real Celery worker runs plain tasks and the results come back through the RPC result
backend: single tasks, a group of ten, a task that raises (its exception comes back), and a
300 KB argument (several frames each way). Also reports what the broker told kombu it is
(`product`, `version`), what kombu concluded about basic.qos `global`, and the basic.qos the
worker actually sent."""
from celery import group

from common import Worker, check, done
from tasks import add, app, echo, fail

with app.connection_for_write() as connection:
    connection.ensure_connection(max_retries=3)
    properties = connection.connection.server_properties
    print(f"server product={properties.get('product')!r} version={properties.get('version')!r}")
    print(f"server capabilities={properties.get('capabilities')}")
    matches_spec = connection.qos_semantics_matches_spec
    print(f"kombu qos_semantics_matches_spec={matches_spec} "
          f"(Celery sends basic.qos global={not matches_spec})")
check(properties.get("product") == "Switchyard", f"product {properties.get('product')!r}")
check(matches_spec, "kombu should take a non-RabbitMQ broker's basic.qos as the spec's")

worker = Worker()
result = add.delay(2, 3)
check(result.get(timeout=30) == 5, "add(2, 3)")
check(result.state == "SUCCESS", f"state {result.state}")

results = group(add.s(i, i) for i in range(10))().get(timeout=20)
check(results == [2 * i for i in range(10)], f"group results {results}")

payload = "".join(chr(ord("a") + i % 26) for i in range(300_000)) + "ünïcode ✓"
echoed = echo.delay(payload).get(timeout=20)
check(echoed == {"length": len(payload), "head": payload[:16], "tail": payload[-16:]},
      f"echo {echoed}")

failed = fail.delay("boom")
try:
    failed.get(timeout=20)
    check(False, "a failing task's result did not raise")
except ValueError as error:
    check(str(error) == "boom", f"exception {error!r}")
check(failed.state == "FAILURE", f"state {failed.state}")

worker.stop()
qos = worker.qos_calls()
print(f"worker basic.qos calls (prefetch_count, global): {qos}")
check(qos and qos[0] == (1, False), f"the worker's first basic.qos {qos}")
done("celery tasks and rpc results")
