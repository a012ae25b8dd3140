"""basic.get: get-empty on an empty queue, get-ok with the count of messages left."""
from common import check, connect, done

connection = connect()
channel = connection.channel()
channel.queue_declare(queue="getting")
method, _, _ = channel.basic_get("getting")
check(method is None, "get-empty")
for n in range(3):
    channel.basic_publish(exchange="", routing_key="getting", body=str(n))
method, _, body = channel.basic_get("getting", auto_ack=True)
check(body == b"0" and method.message_count == 2, f"{body} left {method.message_count}")
declared = channel.queue_declare(queue="getting", passive=True)
check(declared.method.message_count == 2, f"declare-ok count {declared.method.message_count}")
connection.close()
done("basic.get")
