"""What every Celery script shares: a real worker process (`celery -A tasks worker`, solo pool)
started against the broker the Rust test runs (AMQP_PORT), stopped at the end, whose log is
shown when a check fails; and the check helper."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def check(condition, message):
    if not condition:
        print("FAILED:", message, file=sys.stderr)
        if Worker.current is not None:
            Worker.current.stop()
            print("---- worker log ----\n" + Worker.current.log(), file=sys.stderr)
        sys.exit(1)


def done(name):
    if Worker.current is not None:
        Worker.current.stop()
    print(f"OK {name}")


class Worker:
    current = None

    def __init__(self, name="worker"):
        self.log_file = tempfile.NamedTemporaryFile(prefix="celery-worker-", suffix=".log")
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool=solo",
             "--concurrency=1", "--loglevel=INFO", f"--hostname={name}@%h"],
            cwd=HERE, env=env, stdout=self.log_file, stderr=subprocess.STDOUT,
        )
        Worker.current = self

    def stop(self):
        """Warm shutdown (SIGTERM), then SIGKILL if it takes more than 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self):
        with open(self.log_file.name, encoding="utf-8", errors="replace") as log:
            return log.read()

    def qos_calls(self):
        """(prefetch_count, global) of every basic.qos the worker sent, in order."""
        return [(int(count), flag == "True") for count, flag in
                re.findall(r"BASIC_QOS prefetch_size=0 prefetch_count=(\d+) global=(\w+)",
                           self.log())]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    check(False, f"timed out after {timeout} s waiting for {what}")


if os.environ.get("SHOW_WORKER_LOG"):
    # For debugging by hand: the worker's log after a script that passed, too.
    import atexit

    atexit.register(lambda: Worker.current and print("---- worker log ----\n" + Worker.current.log()))
