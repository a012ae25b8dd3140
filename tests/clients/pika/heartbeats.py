"""Heartbeats both ways: with a 1 s heartbeat an idle connection stays open (the broker sends
heartbeats and reads ours); a peer that goes silent after the handshake is closed by the broker
within a few intervals."""
import socket
import time

import pika
from pika import frame, spec

from common import check, connect, done
import os

connection = connect(heartbeat=1)
channel = connection.channel()
deadline = time.time() + 4
while time.time() < deadline:
    connection.process_data_events(time_limit=0.5)
check(connection.is_open, "an idle connection with heartbeats stayed open")
channel.queue_declare(queue="alive")
connection.close()

# A silent peer: a raw handshake asking for 1 s heartbeats, then nothing.
sock = socket.create_connection(("127.0.0.1", int(os.environ["AMQP_PORT"])), timeout=10)
sock.sendall(b"AMQP\x00\x00\x09\x01")


def read_frame():
    header = b""
    while len(header) < 7:
        header += sock.recv(7 - len(header))
    size = int.from_bytes(header[3:7], "big")
    payload = b""
    while len(payload) < size + 1:
        payload += sock.recv(size + 1 - len(payload))
    return header[0], payload


read_frame()  # connection.start
sock.sendall(frame.Method(0, spec.Connection.StartOk(
    client_properties={"product": "silent"}, mechanism="PLAIN", response="\0guest\0guest")).marshal())
read_frame()  # connection.tune
sock.sendall(frame.Method(0, spec.Connection.TuneOk(channel_max=0, frame_max=131072, heartbeat=1)).marshal())
sock.sendall(frame.Method(0, spec.Connection.Open(virtual_host="/")).marshal())
read_frame()  # connection.open-ok
started = time.time()
closed = False
while time.time() - started < 10:
    try:
        data = sock.recv(4096)
    except socket.timeout:
        break
    if data == b"":
        closed = True
        break
elapsed = time.time() - started
check(closed, "the broker kept a silent peer")
check(elapsed < 6, f"closed after {elapsed:.1f} s")
done("heartbeats")
