"""Medians of `compare` JSON lines grouped by side (the file name's part before `-`), broker
and workload, with each Switchyard median's ratio to the same side's RabbitMQ median.

    python3 bench/across-summary.py bench/across/*.jsonl
"""
import json
import os
import statistics
import sys
from collections import defaultdict

runs = defaultdict(list)
memory = defaultdict(list)
for path in sys.argv[1:]:
    side = os.path.basename(path).split("-")[0]
    with open(path) as lines:
        for line in lines:
            record = json.loads(line)
            if record.get("kind") == "run" and record.get("complete"):
                runs[(side, record["workload"], record["broker"])].append(record)
            elif record.get("kind") == "memory" and record.get("backlog_rss_per_payload_byte") is not None:
                memory[(side, record["broker"])].append(record["backlog_rss_per_payload_byte"])


def median(records, field):
    values = [r[field] for r in records if r.get(field) is not None]
    return statistics.median(values) if values else float("nan")


print(f"{'workload':8} {'side':7} {'broker':11} {'runs':>4} {'rate median':>12} {'min':>10} {'max':>10} {'p50 us':>8} {'x RabbitMQ':>10}")
for (side, workload, broker) in sorted(runs):
    records = runs[(side, workload, broker)]
    rate = median(records, "rate")
    rates = [r["rate"] for r in records if r.get("rate") is not None]
    rabbit = median(runs.get((side, workload, "rabbitmq"), []), "rate")
    ratio = rate / rabbit if rabbit == rabbit and rabbit else float("nan")
    print(f"{workload:8} {side:7} {broker:11} {len(records):>4} {rate:>12.1f} {min(rates):>10.1f} {max(rates):>10.1f} {median(records, 'p50_us'):>8.0f} {ratio:>10.2f}")

print()
print(f"{'side':7} {'broker':11} {'runs':>4} {'queued RSS growth / payload (median)':>38}")
for (side, broker) in sorted(memory):
    values = memory[(side, broker)]
    print(f"{side:7} {broker:11} {len(values):>4} {statistics.median(values):>38.2f}")
