"""kanbanchaos Hermes worker: what HERMES_BIN starts in a run with
``--workers hermes``. It takes Hermes' worker command line (``-p PROFILE
[flags…] chat -q "work kanban task ID"``) and the HERMES_KANBAN_* environment
the release's dispatcher set, appends its start to the run's ledger before
anything else, then plays the behaviour the run's worker config gives its
profile — through the release's OWN kanban tools (tools/kanban_tools.py: the
kanban_heartbeat, kanban_comment, kanban_complete, kanban_block, kanban_show
and kanban_create handlers a Hermes agent calls), which open the board with
the release's own ``connect()``. Every raw header read, post-commit probe,
integrity guard, backup and journal-mode decision on the worker side is the
release's. Right before it exits it appends its exit status.

Every tool call opens its own connection and closes it, as the release's
tools do; "exit without closing" therefore means what it means for a Hermes
agent: the process ends, its tools already closed their connections.
kill-in-txn SIGKILLs the process right before the COMMIT of the release's own
add_comment transaction (see kanbanchaos_record.arm_kill_before_commit).

A failed tool call (the release returns a tool error) ends the worker with
exit 1, like the Go worker whose board call failed.

Usage: kanbanchaos_worker.py ARGS…   (HERMES_BIN runs it)
       kanbanchaos_worker.py --modes (the modes this release can play, JSON)
Standard library only.
"""

import inspect
import json
import os
import random
import sys
import time

import kanbanchaos_record as rec

EXIT_USAGE, EXIT_CONFIG = 64, 78  # as the Go worker: crashes, with the reason in the log
MODES = ["exit-now", "open-board-then-exit", "heartbeat-then-crash", "complete", "hang",
         "create-on-board", "write-complete", "write-exit", "kill-in-txn"]


def tools():
    import tools.kanban_tools as kt

    return kt


def modes():
    """The worker modes this release's tools can express; the reason for each it cannot."""
    kt = tools()
    out, missing = [], {}
    for m in MODES:
        if m == "create-on-board" and "board" not in inspect.signature(kt._connect).parameters:
            missing[m] = "this release's kanban_create has no board argument (its _connect() takes none)"
            continue
        out.append(m)
    return {"modes": out, "cannot": missing}


def parse(argv):
    inv = {"task": os.environ.get("HERMES_KANBAN_TASK", ""), "profile": "", "run": 0,
           "lock": os.environ.get("HERMES_KANBAN_CLAIM_LOCK", "")}
    i = 0
    while i < len(argv):
        if argv[i] in ("-p", "--profile") and i + 1 < len(argv):
            inv["profile"] = argv[i + 1]
            i += 1
        elif argv[i] in ("-q", "--query") and i + 1 < len(argv):
            q = argv[i + 1]
            if q.startswith("work kanban task ") and not inv["task"]:
                inv["task"] = q[len("work kanban task "):].strip()
            i += 1
        i += 1
    inv["profile"] = inv["profile"] or os.environ.get("HERMES_PROFILE", "")
    try:
        inv["run"] = int(os.environ.get("HERMES_KANBAN_RUN_ID") or 0)
    except ValueError:
        inv["run"] = 0
    return inv


class ToolFailed(Exception):
    pass


def call(op, handler, args):
    """One tool call as the agent makes it; its commits are booked as op."""
    rec.set_op(op)
    try:
        out = handler(args)
    finally:
        rec.set_op(None)
    try:
        res = json.loads(out)
    except (TypeError, ValueError):
        res = {"error": repr(out)}
    # A tool error is {"error": …}; success is anything else (kanban_show
    # returns the task itself, the others {"ok": true, …}).
    if not isinstance(res, dict) or "error" in res or res.get("ok") is False:
        said = str(res.get("error", res) if isinstance(res, dict) else res)
        if rec.recording():
            rec.alarm(op, said)
        raise ToolFailed("%s: %s" % (op, said))
    return res


def progress_note(rng, i):
    """100–1600 bytes of text, enough to split pages (as the Go worker writes)."""
    words = "claim heartbeat worker board commit page index rowid checkpoint journal spawn crash breaker limit "
    n = 100 + rng.randrange(1500)
    out = ["step %d: " % i]
    size = len(out[0])
    while size < n:
        s = rng.randrange(len(words) - 12)
        out.append(words[s:s + 12])
        size += 12
    return "".join(out)


def play(inv, b):
    mode, code = b.get("mode"), int(b.get("exit", 0) or 0)
    if mode == "exit-now":
        return code
    if mode == "hang":
        token = os.environ.get("KANBANCHAOS_HARNESS", "")
        while not rec.harness_gone(token):
            time.sleep(0.2)
        print("kanbanchaos hermes worker: the harness is gone; exiting", file=sys.stderr)
        return 1
    kt = tools()
    tid = inv["task"]
    if mode == "open-board-then-exit":
        call("show", kt._handle_show, {"task_id": tid})
        return code
    call("heartbeat", kt._handle_heartbeat, {"task_id": tid, "note": "kanbanchaos hermes worker"})
    if mode == "heartbeat-then-crash":
        return code
    if mode == "create-on-board":
        res = call("create", kt._handle_create, {"title": "card for board " + b["board"], "assignee": inv["profile"],
                                                 "board": b["board"]})
        print("kanban_create(board=%s): %s" % (b["board"], json.dumps(res)), file=sys.stderr)
    if mode in ("write-complete", "write-exit", "kill-in-txn"):
        rng = random.Random(os.getpid() * 1000003 + inv["run"])
        for i in range(int(b.get("writes", 0) or 0)):
            call("comment", kt._handle_comment, {"task_id": tid, "body": progress_note(rng, i)})
        if mode == "write-exit":
            return code
        if mode == "kill-in-txn":
            rec.arm_kill_before_commit()
            call("comment", kt._handle_comment, {"task_id": tid, "body": progress_note(rng, int(b.get("writes", 0) or 0))})
            return 1  # not reached: the process died inside the transaction
    call("completed", kt._handle_complete, {"task_id": tid, "summary": "done by kanbanchaos hermes worker"})
    return 0


def behaviour(profile):
    path = os.environ.get("KANBANCHAOS_WORKER_CONFIG", "")
    if not path:
        raise ValueError("KANBANCHAOS_WORKER_CONFIG is not set: no behaviour for profile %r" % profile)
    with open(path) as f:
        cfg = json.load(f)
    b = cfg.get("profiles", {}).get(profile)
    if b is None:
        raise ValueError("worker config %s has no behaviour for profile %r" % (path, profile))
    return b


def main(argv):
    if argv == ["--modes"]:
        print(json.dumps(modes()))
        return 0
    start = rec.mono_ns()
    inv = parse(argv)
    ledger = os.environ.get("KANBANCHAOS_LEDGER", "")
    record = bool(inv["task"] and ledger)
    if record:
        rec.install(ledger, "worker", task=inv["task"])
        # The start line comes first, so a worker that dies later is counted.
        import sqlite3

        start_entry = rec.entry("start", task=inv["task"], run=inv["run"], profile=inv["profile"], claim_lock=inv["lock"],
                                msg="hermes worker sqlite " + sqlite3.sqlite_version)
        start_entry["mono_ns"] = start
        del start_entry["who"]  # as the Go worker's start line
        rec.append(start_entry)
    code = work(inv)
    if record:
        rec.append(rec.entry("exit", task=inv["task"], run=inv["run"], profile=inv["profile"], claim_lock=inv["lock"]) | {"exit": code})
    return code


def work(inv):
    if not inv["profile"] or not inv["task"]:
        print("kanbanchaos hermes worker: not a Hermes worker command line: %r" % sys.argv[1:], file=sys.stderr)
        return EXIT_USAGE
    try:
        b = behaviour(inv["profile"])
    except (OSError, ValueError) as err:
        print("kanbanchaos hermes worker:", err, file=sys.stderr)
        return EXIT_CONFIG
    if b.get("delay_ms"):
        time.sleep(b["delay_ms"] / 1000)
    try:
        return play(inv, b)
    except ToolFailed as err:
        print("kanbanchaos hermes worker: tool call failed:", err, file=sys.stderr)
        return 1


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
