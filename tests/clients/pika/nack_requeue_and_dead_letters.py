"""basic.nack with requeue comes back redelivered; basic.reject without requeue goes to the
dead-letter exchange with RabbitMQ's x-death array; basic.nack multiple settles several."""
from common import check, connect, done

connection = connect()
channel = connection.channel()
channel.exchange_declare(exchange="dlx", exchange_type="fanout")
channel.queue_declare(queue="dead")
channel.queue_bind(queue="dead", exchange="dlx")
channel.queue_declare(queue="work", arguments={"x-dead-letter-exchange": "dlx"})
for n in range(3):
    channel.basic_publish(exchange="", routing_key="work", body=f"m{n}")

method, _, body = channel.basic_get("work")
check(body == b"m0" and not method.redelivered, "first get")
channel.basic_nack(method.delivery_tag, requeue=True)
method, _, body = channel.basic_get("work")
check(body == b"m0" and method.redelivered, f"requeued {body} redelivered={method.redelivered}")
channel.basic_reject(method.delivery_tag, requeue=False)

method, properties, body = channel.basic_get("dead", auto_ack=True)
check(body == b"m0", f"dead-lettered {body}")
death = properties.headers["x-death"]
check(isinstance(death, list) and death[0]["reason"] == "rejected", f"x-death {death}")
check(death[0]["queue"] == "work" and death[0]["count"] == 1, f"x-death {death}")

first, _, _ = channel.basic_get("work")
second, _, _ = channel.basic_get("work")
channel.basic_nack(second.delivery_tag, multiple=True, requeue=True)
bodies = []
while True:
    method, _, body = channel.basic_get("work", auto_ack=True)
    if method is None:
        break
    bodies.append(body)
check(sorted(bodies) == [b"m1", b"m2"], f"after nack multiple: {bodies}")
connection.close()
done("nack, requeue and dead letters")
