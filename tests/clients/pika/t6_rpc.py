"""RabbitMQ tutorial 6, "RPC": a server on `rpc_queue`, a client with a callback queue and
correlation ids; then the same with direct reply-to (`amq.rabbitmq.reply-to`)."""
import threading
import uuid

import pika

from common import check, connect, done


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


server_ready = threading.Event()
stop = threading.Event()


def server():
    connection = connect()
    channel = connection.channel()
    channel.queue_declare(queue="rpc_queue")
    channel.basic_qos(prefetch_count=1)

    def on_request(ch, method, props, body):
        response = fib(int(body))
        ch.basic_publish(exchange="", routing_key=props.reply_to,
                         properties=pika.BasicProperties(correlation_id=props.correlation_id),
                         body=str(response))
        ch.basic_ack(delivery_tag=method.delivery_tag)

    channel.basic_consume(queue="rpc_queue", on_message_callback=on_request)
    server_ready.set()
    while not stop.is_set():
        connection.process_data_events(time_limit=0.1)
    connection.close()


thread = threading.Thread(target=server)
thread.start()
server_ready.wait(10)


class FibonacciRpcClient:
    def __init__(self, direct_reply_to):
        self.connection = connect()
        self.channel = self.connection.channel()
        if direct_reply_to:
            self.callback_queue = "amq.rabbitmq.reply-to"
        else:
            self.callback_queue = self.channel.queue_declare(queue="", exclusive=True).method.queue
        self.channel.basic_consume(queue=self.callback_queue, on_message_callback=self.on_response,
                                   auto_ack=True)
        self.response = None
        self.corr_id = None

    def on_response(self, ch, method, props, body):
        if self.corr_id == props.correlation_id:
            self.response = body

    def call(self, n):
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(exchange="", routing_key="rpc_queue",
                                   properties=pika.BasicProperties(reply_to=self.callback_queue,
                                                                   correlation_id=self.corr_id),
                                   body=str(n))
        self.connection.process_data_events(time_limit=None if False else 10)
        while self.response is None:
            self.connection.process_data_events(time_limit=10)
        return int(self.response)


try:
    for direct in (False, True):
        client = FibonacciRpcClient(direct)
        for n in (1, 10, 20):
            result = client.call(n)
            check(result == fib(n), f"fib({n}) = {result} (direct reply-to: {direct})")
        client.connection.close()
finally:
    stop.set()
    thread.join(10)
done("rpc")
