#!/usr/bin/env python3
"""Interleaved A/B timing of two commands: run A, B, A, B, ... so that both see the same
machine load (hyperfine runs one command's runs after the other's). Each run is one
posix_spawn + wait4: wall time from spawn to exit, and the child's user and system CPU.

Usage: scripts/bench-ab.py RUNS "A command" "B command"
(the commands are split on spaces; their output goes to /dev/null; a non-zero exit
status is accepted, as `posture check` exits 1 when a check fails).
"""
import os
import statistics
import sys
import time


def run_once(argv, devnull):
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if os.WIFSIGNALED(status):
        sys.exit(f"{argv}: killed by signal {os.WTERMSIG(status)}")
    return wall, usage.ru_utime, usage.ru_stime


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    runs = int(sys.argv[1])
    commands = [sys.argv[2].split(), sys.argv[3].split()]
    devnull = os.open(os.devnull, os.O_WRONLY)
    results = [[], []]
    for _ in range(3):  # warm-up: page cache, dentries, the apt list cache
        for argv in commands:
            run_once(argv, devnull)
    load_before = os.getloadavg()[0]
    for _ in range(runs):
        for i, argv in enumerate(commands):
            results[i].append(run_once(argv, devnull))
    load_after = os.getloadavg()[0]
    print(f"interleaved, {runs} runs each, load average {load_before:.2f} -> {load_after:.2f}")
    for name, argv, r in zip("AB", commands, results):
        wall = [w * 1000 for w, _, _ in r]
        user = statistics.mean(u for _, u, _ in r) * 1000
        system = statistics.mean(s for _, _, s in r) * 1000
        print(
            f"{name}: wall median {statistics.median(wall):.1f} ms (min {min(wall):.1f}, "
            f"max {max(wall):.1f}), user {user:.1f} + sys {system:.1f} ms mean  "
            f"[{' '.join(argv)}]"
        )


if __name__ == "__main__":
    main()
