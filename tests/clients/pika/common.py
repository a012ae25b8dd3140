"""What every pika script shares: the broker's address from the test, and a check helper."""
import os
import sys

import pika


def params(**overrides):
    """Connection parameters for the broker the Rust test started (AMQP_PORT)."""
    return pika.ConnectionParameters(
        host="127.0.0.1",
        port=int(os.environ["AMQP_PORT"]),
        credentials=pika.PlainCredentials("guest", "guest"),
        **overrides,
    )


def connect(**overrides):
    return pika.BlockingConnection(params(**overrides))


def check(condition, message):
    if not condition:
        print("FAILED:", message, file=sys.stderr)
        sys.exit(1)


def done(name):
    print(f"OK {name}")
