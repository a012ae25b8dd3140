"""RabbitMQ tutorial 5, "Topics": a topic exchange with `*` and `#` patterns."""
from common import check, connect, done

connection = connect()
channel = connection.channel()
channel.exchange_declare(exchange="topic_logs", exchange_type="topic")
bindings = {"q1": ["*.orange.*"], "q2": ["*.*.rabbit", "lazy.#"]}
queues = {}
for name, keys in bindings.items():
    queue = channel.queue_declare(queue="", exclusive=True).method.queue
    queues[name] = queue
    for key in keys:
        channel.queue_bind(exchange="topic_logs", queue=queue, routing_key=key)
keys = [
    "quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox", "lazy.brown.fox",
    "lazy.pink.rabbit", "quick.brown.fox", "quick.orange.new.rabbit", "lazy.orange.new.rabbit",
    "orange",
]
for key in keys:
    channel.basic_publish(exchange="topic_logs", routing_key=key, body=key)


def drain(queue):
    bodies = []
    while True:
        method, _, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return [b.decode() for b in bodies]
        bodies.append(body)


check(drain(queues["q1"]) == ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox"], "q1")
check(
    drain(queues["q2"]) == ["quick.orange.rabbit", "lazy.orange.elephant", "lazy.brown.fox",
                            "lazy.pink.rabbit", "lazy.orange.new.rabbit"],
    "q2",
)
connection.close()
done("topics")
