"""What every aio-pika script shares: the broker's address from the test (AMQP_PORT), the check
helper, and a bound on the whole script."""
import asyncio
import os
import sys

import aio_pika

URL = f"amqp://guest:guest@127.0.0.1:{os.environ['AMQP_PORT']}/"


async def connect(**kwargs):
    return await aio_pika.connect_robust(URL, **kwargs)


class Failed(Exception):
    pass


def check(condition, message):
    """Fails the script (not from inside a consumer callback: aio-pika logs those errors)."""
    if not condition:
        raise Failed(message)


def run(main, name, timeout=60):
    """Runs `main()` under `timeout` seconds and prints OK when it returns."""
    try:
        asyncio.run(asyncio.wait_for(main(), timeout))
    except Failed as failure:
        print("FAILED:", failure, file=sys.stderr)
        sys.exit(1)
    print(f"OK {name}")
