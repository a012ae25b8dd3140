"""RabbitMQ tutorial 3, "Publish/Subscribe": a fanout exchange, each subscriber with its own
server-named, exclusive queue."""
from common import check, connect, done

subscribers = []
for _ in range(2):
    connection = connect()
    channel = connection.channel()
    channel.exchange_declare(exchange="logs", exchange_type="fanout")
    result = channel.queue_declare(queue="", exclusive=True)
    queue = result.method.queue
    check(queue.startswith("amq.gen-"), f"server-named queue {queue}")
    channel.queue_bind(exchange="logs", queue=queue)
    subscribers.append((connection, channel, queue))

publisher = connect()
publisher.channel().basic_publish(exchange="logs", routing_key="", body="info: hello")
publisher.close()

for connection, channel, queue in subscribers:
    for method, properties, body in channel.consume(queue, auto_ack=True, inactivity_timeout=5):
        check(body == b"info: hello", f"{queue} got {body}")
        break
    connection.close()

# Exclusive queues go with their connection.
check_connection = connect()
channel = check_connection.channel()
try:
    channel.queue_declare(queue=subscribers[0][2], passive=True)
    check(False, "an exclusive queue outlived its connection")
except Exception as error:  # ChannelClosedByBroker 404
    check("404" in str(error) or "NOT_FOUND" in str(error), f"unexpected {error}")
done("publish/subscribe")
