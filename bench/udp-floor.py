#!/usr/bin/env python3
"""The floor under W4 on this machine: the round-trip time of one UDP datagram between two
processes on loopback, with nothing else running, then with a lowest-priority (SCHED_IDLE)
busy loop keeping the CPUs from halting.

On a VM, waking a thread whose virtual CPU is halted costs a trip through the hypervisor. W4
bounces each message through two broker hops, so its round trip contains at least two of
these ping-pongs. Run: python3 bench/udp-floor.py
"""

import os
import socket
import time

ROUNDS = 20_000
WARM_UP = 2_000
PAYLOAD = b"x" * 300  # about one W4 message with its QUIC overhead


def ping_pong() -> tuple[float, float]:
    """p50 and p99 round-trip time in microseconds."""
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.bind(("127.0.0.1", 0))
    echo = os.fork()
    if echo == 0:
        while True:
            data, peer = b.recvfrom(2048)
            if data == b"stop":
                os._exit(0)
            b.sendto(data, peer)
    target = b.getsockname()
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        a.sendto(PAYLOAD, target)
        a.recvfrom(2048)
        samples.append(time.perf_counter_ns() - start)
    a.sendto(b"stop", target)
    os.waitpid(echo, 0)
    samples = sorted(samples[WARM_UP:])
    return samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.99)] / 1000


def spinner() -> int:
    pid = os.fork()
    if pid == 0:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        while True:
            pass
    return pid


def main() -> None:
    p50, p99 = ping_pong()
    print(f"UDP ping-pong on loopback, idle CPUs:           p50 {p50:6.1f} us, p99 {p99:6.1f} us")
    spin = spinner()
    try:
        time.sleep(0.3)
        p50, p99 = ping_pong()
    finally:
        os.kill(spin, 9)
        os.waitpid(spin, 0)
    print(f"same, a SCHED_IDLE busy loop keeping a CPU awake: p50 {p50:6.1f} us, p99 {p99:6.1f} us")


if __name__ == "__main__":
    main()
