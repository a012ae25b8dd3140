"""Publisher confirms: a persistent message to a durable queue is confirmed; an unroutable
mandatory message comes back (basic.return before its ack); a message a full queue refuses
(x-overflow reject-publish) is nacked."""
import pika

from common import check, connect, done

connection = connect()
channel = connection.channel()
channel.confirm_delivery()
channel.queue_declare(queue="confirmed", durable=True)
channel.basic_publish(exchange="", routing_key="confirmed", body="kept",
                      properties=pika.BasicProperties(delivery_mode=2), mandatory=True)

try:
    channel.basic_publish(exchange="", routing_key="no-such-queue", body="lost", mandatory=True)
    check(False, "an unroutable mandatory message was not returned")
except pika.exceptions.UnroutableError as error:
    returned = error.messages[0]
    check(returned.body == b"lost", f"returned {returned.body}")
    check(returned.method.reply_code == 312, f"reply code {returned.method.reply_code}")

channel.queue_declare(queue="tiny", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
channel.basic_publish(exchange="", routing_key="tiny", body="first")
try:
    channel.basic_publish(exchange="", routing_key="tiny", body="second")
    check(False, "a full queue's refusal was not nacked")
except pika.exceptions.NackError:
    pass

method, _, body = channel.basic_get("confirmed", auto_ack=True)
check(body == b"kept", f"got {body}")
connection.close()
done("confirms and returns")
