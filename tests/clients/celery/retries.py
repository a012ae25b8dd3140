"""self.retry: a task fails twice, each time publishing itself again with a countdown, then
succeeds; the result (through the RPC backend) says how many retries it took. A task that
keeps failing stops at max_retries and its exception comes back."""
from common import Worker, check, done
from tasks import flaky, hopeless

worker = Worker()
result = flaky.delay(2)
value = result.get(timeout=30)
print("flaky:", value)
check(value == {"retries": 2, "id": result.id}, f"flaky returned {value}")
check(result.state == "SUCCESS", f"state {result.state}")

doomed = hopeless.delay()
try:
    doomed.get(timeout=20)
    check(False, "a task past max_retries did not fail")
except RuntimeError as error:
    check(str(error) == "still broken", f"exception {error!r}")
check(doomed.state == "FAILURE", f"state {doomed.state}")
worker.stop()
log = worker.log()
retried = log.count("retry: Retry in")
print(f"worker logged {retried} retries")
check(retried == 3, f"expected 3 retries (2 + 1) in the worker log, saw {retried}")
done("celery retries")
