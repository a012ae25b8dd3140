"""RabbitMQ tutorial 4, "Routing": a direct exchange, a queue bound with several keys."""
from common import check, connect, done

connection = connect()
channel = connection.channel()
channel.exchange_declare(exchange="direct_logs", exchange_type="direct")
errors = channel.queue_declare(queue="", exclusive=True).method.queue
everything = channel.queue_declare(queue="", exclusive=True).method.queue
channel.queue_bind(exchange="direct_logs", queue=errors, routing_key="error")
for severity in ("info", "warning", "error"):
    channel.queue_bind(exchange="direct_logs", queue=everything, routing_key=severity)
for severity in ("info", "warning", "error", "debug"):
    channel.basic_publish(exchange="direct_logs", routing_key=severity, body=f"a {severity}")


def drain(queue):
    bodies = []
    while True:
        method, _, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)


check(drain(errors) == [b"a error"], "error queue")
check(drain(everything) == [b"a info", b"a warning", b"a error"], "all-severities queue")
connection.close()
done("routing")
