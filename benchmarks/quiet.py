"""Was the machine quiet? Load samples taken around every benchmark, and the report's gate.

Every benchmark test records the load average (1/5/15 min) at its start and end. The raw
figure alone cannot be the gate during a group: it counts every runnable thread, ours too, so
a 2-thread encode alone makes the 1-minute load about 2 on 2 cores, and 8 search clients beside
an ingest far more, however quiet the machine. So each sample also reads the CPU the whole
machine spent (`/proc/stat`) and the part of it that was neither this pytest process (its
threads, and the children it waited for) nor the local Elasticsearch node it benchmarks:
`others_load` = the 1-minute load x the share of busy CPU that others took. That is the load
other work put on the machine, the thing that makes timings noisy.

The load at the start of the run is judged as it is (nothing of ours has run yet). A run is
noisy when that, or `others_load` of any test in a group, is above `LIMIT_PER_CORE` per core.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

#: above this load per core (at the start, or from others during a group) timings are noisy
LIMIT_PER_CORE = 1.0
#: /proc/stat cpu columns that are busy time: user nice system [idle iowait] irq softirq steal
_BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)


def load_avg() -> list[float]:
    """The 1/5/15-minute load averages, rounded for the JSON."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_cores() -> int:
    """The machine's CPUs: load averages count runnable threads on all of them."""
    return os.cpu_count() or 1


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine spent busy since boot (None where there is no /proc)."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    ticks = [int(x) for x in first[1:]]
    return sum(ticks[i] for i in _BUSY_COLUMNS if i < len(ticks)) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads, and waited children)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0]
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds(pids: tuple[int, ...]) -> float:
    """CPU seconds of this process (dead threads included) and its waited children, plus the
    processes `pids` (the Elasticsearch node the benchmarks drive)."""
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    return own + sum(process_cpu_seconds(pid) for pid in pids)


def local_es_pids(es) -> tuple[int, ...]:
    """Pids of the cluster's nodes (Elasticsearch or OpenSearch) that run on this machine: their
    CPU is the benchmark's."""
    try:
        nodes = es.nodes.info(metric="process")["nodes"].values()
    except Exception:  # noqa: BLE001 - a probe must never fail a benchmark
        return ()
    pids = []
    for node in nodes:
        pid = (node.get("process") or {}).get("id")
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if pid else b""
            if b"elasticsearch" in cmdline or b"opensearch" in cmdline:
                pids.append(int(pid))
        except OSError:
            continue
    return tuple(pids)


@dataclass(frozen=True)
class _Clock:
    wall: float
    busy: float | None
    own: float

    @classmethod
    def now(cls, pids: tuple[int, ...]) -> _Clock:
        return cls(time.monotonic(), machine_busy_seconds(), own_cpu_seconds(pids))


class LoadProbe:
    """Samples one benchmark test: load averages at its start and end, and who used the CPU."""

    def __init__(self, pids: tuple[int, ...] = ()) -> None:
        self.pids = pids
        self.load_start = load_avg()
        self.start = _Clock.now(pids)

    def finish(self) -> dict:
        """The sample stored in the benchmark's extra_info["machine_load"]."""
        end, load_end = _Clock.now(self.pids), load_avg()
        wall = max(end.wall - self.start.wall, 1e-6)
        own = max(end.own - self.start.own, 0.0)
        busy = None if end.busy is None else max(end.busy - self.start.busy, 0.0)
        others = 0.0 if busy is None else max(busy - own, 0.0)
        share = others / busy if busy else 0.0
        return {
            "start": self.load_start,
            "end": load_end,
            "seconds": round(wall, 2),
            "cores": machine_cores(),
            "own_cpu_cores": round(own / wall, 2),
            "others_cpu_cores": round(others / wall, 2),
            "others_load": round(max(self.load_start[0], load_end[0]) * min(share, 1.0), 2),
        }


def record_group(by_group: dict, group: str | None, sample: dict) -> None:
    """Fold one test's sample into its group's: load at the group's start and end, the worst
    load from others (kept in the JSON's machine_info)."""
    entry = by_group.setdefault(group or "other", {"start": sample["start"]})
    entry["end"] = sample["end"]
    entry["max_others_load"] = max(entry.get("max_others_load", 0.0), sample["others_load"])
    entry["max_load_1min"] = max(
        entry.get("max_load_1min", 0.0), sample["start"][0], sample["end"][0]
    )


# -- the gate (benchmarks/report.py) ------------------------------------------------------------


def run_cores(data: dict) -> int:
    xlir = (data.get("machine_info") or {}).get("xlir") or {}
    return int(xlir.get("cores") or 1)


def start_noise(data: dict) -> str | None:
    """Why the run's start was noisy, or None when it was quiet."""
    xlir = (data.get("machine_info") or {}).get("xlir") or {}
    start, cores = xlir.get("load_at_start"), run_cores(data)
    if not start:
        return "no load average recorded at the start of the run"
    if start[0] / cores > LIMIT_PER_CORE:
        return f"load {start[0]:.2f} at the start on {cores} cores ({start[0] / cores:.2f}/core)"
    return None


def group_noise(rows: list[dict], cores: int) -> str | None:
    """Why a group was noisy (others' load above the limit, or not sampled), or None."""
    samples = [(b.get("extra_info") or {}).get("machine_load") for b in rows]
    if not samples or any(not s for s in samples):
        return "no load samples for every row"
    worst = max(float(s["others_load"]) for s in samples)
    if worst / cores > LIMIT_PER_CORE:
        return f"others' load up to {worst:.2f} on {cores} cores ({worst / cores:.2f}/core)"
    return None


def group_load_line(rows: list[dict], entry: dict | None) -> str:
    """The line under a group's heading: its load at start and end (machine_info's `entry`
    for the group, in test order; else the rows'), and the worst load from other work."""
    samples = [s for b in rows if (s := (b.get("extra_info") or {}).get("machine_load"))]
    if not samples:
        return "Load: not recorded."
    entry = entry or {"start": samples[0]["start"], "end": samples[-1]["end"]}
    worst = max(float(s["others_load"]) for s in samples)
    return (
        f"Load average (1/5/15 min) at the group's start {entry['start']}, at its end "
        f"{entry['end']}; load from other work at most {worst:.2f}."
    )
