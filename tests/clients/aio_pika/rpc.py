"""RPC round trips: by hand (an exclusive callback queue, correlation ids, concurrent calls),
with direct reply-to, and with aio-pika's own RPC pattern (aio_pika.patterns.RPC)."""
import asyncio
import uuid

import aio_pika
from aio_pika.patterns import RPC

from common import check, connect, run


async def main():
    connection = await connect()
    async with connection:
        server_channel = await connection.channel()
        await server_channel.set_qos(prefetch_count=1)
        requests = await server_channel.declare_queue("aio-rpc")

        async def serve(message: aio_pika.IncomingMessage):
            async with message.process():
                n = int(message.body)
                await server_channel.default_exchange.publish(
                    aio_pika.Message(str(n * n).encode(), correlation_id=message.correlation_id),
                    routing_key=message.reply_to,
                )

        await requests.consume(serve)

        for direct in (False, True):
            channel = await connection.channel()
            if direct:
                callback = await channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
            else:
                callback = await channel.declare_queue(exclusive=True)
            futures = {}

            async def on_response(message: aio_pika.IncomingMessage):
                future = futures.pop(message.correlation_id, None)
                if future is not None:
                    future.set_result(int(message.body))

            await callback.consume(on_response, no_ack=True)

            async def call(n):
                correlation_id = str(uuid.uuid4())
                futures[correlation_id] = asyncio.get_running_loop().create_future()
                future = futures[correlation_id]
                await channel.default_exchange.publish(
                    aio_pika.Message(str(n).encode(), correlation_id=correlation_id,
                                     reply_to=callback.name),
                    routing_key="aio-rpc",
                )
                return await asyncio.wait_for(future, 10)

            results = await asyncio.gather(*(call(n) for n in range(10)))
            check(results == [n * n for n in range(10)], f"direct reply-to {direct}: {results}")
            await channel.close()

        # aio-pika's RPC pattern (its own queue arguments, expirations and reply handling).
        channel = await connection.channel()
        rpc = await RPC.create(channel)

        async def multiply(*, x, y):
            return x * y

        await rpc.register("multiply", multiply, auto_delete=True)
        product = await rpc.proxy.multiply(x=6, y=7)
        check(product == 42, f"multiply {product}")
        products = await asyncio.gather(*(rpc.call("multiply", kwargs={"x": n, "y": 3})
                                          for n in range(5)))
        check(products == [0, 3, 6, 9, 12], f"products {products}")
        await rpc.close()


run(main, "aio-pika rpc")
