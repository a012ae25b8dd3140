#!/usr/bin/env python3
"""Who wakes whom, and how long the woken thread then waits for a CPU: the tool behind the W4
analysis in bench/README.md.

Record the whole machine while a workload runs, then summarise:

    perf sched record -a -o sched.data -- sleep 0.5
    perf sched timehist -i sched.data -w > timehist.txt
    python3 bench/wakeups.py timehist.txt

Each line of the summary is one (waker process -> woken process, same or other CPU) pair: how
many wake-ups, and the scheduling delay of the woken thread (wake-up to running) in
microseconds. On a VM, a wake-up that lands on a halted virtual CPU pays for the hypervisor
bringing it back; that shows up here as the delay of 'other CPU' wake-ups.
"""

import collections
import re
import sys

LINE = re.compile(r"\s*([\d.]+)\s+\[(\d+)\]\s+(\S.*?)\[(\d+)(?:/(\d+))?\]\s+(.*)")
AWAKENED = re.compile(r"awakened: (.*)\[(\d+)(?:/(\d+))?\]")


def summarise(path: str) -> None:
    woken_by = {}  # woken tid -> (waker cpu, waker pid)
    delays = collections.defaultdict(list)
    names = {}
    with open(path) as lines:
        for line in lines:
            match = LINE.match(line)
            if not match:
                continue
            _, cpu, name, tid, pid, rest = match.groups()
            pid = pid or tid
            # A process is named by its main thread (tid == pid) once that thread shows up.
            if tid == pid or pid not in names:
                names[pid] = name.strip()
            if "awakened:" in rest:
                woken = AWAKENED.search(rest)
                if woken:
                    woken_by[woken.group(2)] = (cpu, pid)
                continue
            fields = rest.split()
            if len(fields) < 3 or tid not in woken_by:
                continue
            try:
                delay_us = float(fields[1]) * 1000
            except ValueError:
                continue
            waker_cpu, waker_pid = woken_by.pop(tid)
            where = "same CPU" if waker_cpu == cpu else "other CPU"
            delays[(waker_pid, pid, where)].append(delay_us)
    print(f"{'waker -> woken':<44} {'where':<10} {'wake-ups':>9} {'median':>7} {'mean':>7} {'p90':>7} {'total ms':>9}")
    for (waker, woken, where), values in sorted(delays.items(), key=lambda kv: -len(kv[1]))[:15]:
        values.sort()
        label = f"{names.get(waker, '?')}[{waker}] -> {names.get(woken, '?')}[{woken}]"
        print(
            f"{label:<44} {where:<10} {len(values):>9} {values[len(values) // 2]:>7.1f} "
            f"{sum(values) / len(values):>7.1f} {values[int(len(values) * 0.9)]:>7.1f} "
            f"{sum(values) / 1000:>9.1f}"
        )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: wakeups.py TIMEHIST.txt   (perf sched timehist -w output)")
    summarise(sys.argv[1])
