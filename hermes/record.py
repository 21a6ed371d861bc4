"""kanbanchaos recording: what a Hermes release's own SQLite use acknowledged,
appended to the run's ledger. Shared by driver.py (the release's dispatcher)
and worker.py (the release's worker-side kanban tools).

``install(ledger, who, op=…, task=…)`` replaces ``sqlite3.connect`` with one
that makes every connection a RecordingConnection: each COMMIT that returned
(or each autocommit write) is appended as ``commit`` lines with the
task_events, task_runs and task_comments rows it inserted (one line per
task), each sqlite3 error as a ``sqlite_error`` line with its extended code.
Nothing of Hermes is changed: the connection only watches (and, armed by a
worker playing kill-in-txn, SIGKILLs its process right before a COMMIT).

Standard library only.
"""

import json
import os
import re
import signal
import sqlite3
import sys
import time

_STATE = {"fd": None, "who": "", "op": None, "task": "", "kill_before_commit": False}


def mono_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def append(*entries):
    """Writes whole lines with one write(2): concurrent writers never interleave."""
    data = b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in entries)
    os.write(_STATE["fd"], data)


def entry(kind, **fields):
    e = {"kind": kind, "pid": os.getpid(), "who": _STATE["who"], "mono_ns": mono_ns(), "wall": time.time()}
    e.update({k: v for k, v in fields.items() if v not in (None, "", [], 0)})
    return e


# What a release says when its own check — not SQLite — finds the board
# corrupt: the post-commit file-length check (0.15+) and the integrity guard
# at connect. SQLite's own corruption errors are sqlite_error lines.
ALARMS = ("torn-extend detected", "Refusing to open corrupt kanban DB")


def alarm(op, text):
    """Appends a corruption_alarm line when text is one of ALARMS: the call op
    was told the board is corrupt (false if the board is intact)."""
    if any(a in text for a in ALARMS):
        append(entry("corruption_alarm", op=op, task=_STATE["task"], msg=text[:500]))


def arm_kill_before_commit():
    """The next COMMIT this process issues is never sent: the process
    SIGKILLs itself inside the open write transaction (kill-in-txn)."""
    _STATE["kill_before_commit"] = True


def _die_if_armed(sql):
    if _STATE["kill_before_commit"] and sql.lstrip()[:6].upper() == "COMMIT":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)  # the signal is on its way; never COMMIT


INSERT_INTO = re.compile(r"^\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+([A-Za-z_]+)", re.I)
ROW_KINDS = {"task_events": "events", "task_runs": "runs", "task_comments": "comments"}


def hermes_caller():
    """The Hermes function that issued the statement: the commit's name."""
    frame = sys._getframe(2)
    while frame is not None:
        mod = frame.f_globals.get("__name__", "")
        name = frame.f_code.co_name
        # write_txn and the BEGIN/COMMIT retry wrappers of later releases
        # (_execute_boundary_with_retry) are plumbing: name their caller.
        plumbing = name in ("write_txn", "__exit__", "__enter__", "execute") or "retry" in name
        if mod.startswith("hermes_cli") and not plumbing:
            return name
        frame = frame.f_back
    return "?"


def _op():
    """The commit's name: what the caller says it is doing (a worker names
    its tool call as the Go worker names the same act), else the Hermes
    function that wrote."""
    return _STATE["op"] or hermes_caller()


def record_error(err, what):
    code = getattr(err, "sqlite_errorcode", None) or 0
    append(entry("sqlite_error", code=code, task=_STATE["task"],
                 msg="%s: %s: %s" % (what, getattr(err, "sqlite_errorname", type(err).__name__), err)))


class RecordingConnection(sqlite3.Connection):
    """A sqlite3.Connection that notes what each transaction inserted and
    appends it to the ledger once its COMMIT returned."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._kc_rows = []  # (table, rowid, task, kind) inserted in the open transaction
        self._kc_began = 0
        self._kc_changes = 0  # total_changes when the transaction began

    def _kc_flush(self, op):
        began = self._kc_began or mono_ns()
        rows, self._kc_rows, self._kc_began = self._kc_rows, [], 0
        # A transaction (or autocommit statement) that changed no row wrote
        # nothing: no record, so it cannot count as a write of its tick
        # (e.g. the idempotent migrations every process's first connect runs).
        if rows or self.total_changes != self._kc_changes:
            append(*commit_entries(op, began, rows))

    def execute(self, sql, *args):
        was_open = self.in_transaction
        if not was_open:
            self._kc_began = mono_ns()
            self._kc_changes = self.total_changes
        _die_if_armed(sql)
        try:
            cur = super().execute(sql, *args)
        except sqlite3.Error as err:
            record_error(err, _op())
            raise
        verb = sql.lstrip()[:8].upper()
        if verb.startswith("ROLLBACK"):
            self._kc_rows, self._kc_began = [], 0
            return cur
        m = INSERT_INTO.match(sql)
        if m and m.group(1) in ROW_KINDS and cur.rowcount == 1 and cur.lastrowid:
            self._kc_rows.append((m.group(1), cur.lastrowid) + self._kc_row(m.group(1), cur.lastrowid))
        if (was_open or m or verb.startswith(("UPDATE", "DELETE"))) and not self.in_transaction:
            # A COMMIT returned, or a statement ran in autocommit mode.
            self._kc_flush(_op())
        return cur

    def commit(self):
        was_open = self.in_transaction
        if was_open:
            _die_if_armed("COMMIT")
        try:
            super().commit()
        except sqlite3.Error as err:
            record_error(err, _op())
            raise
        if was_open:
            self._kc_flush(_op())

    def rollback(self):
        super().rollback()
        self._kc_rows, self._kc_began = [], 0

    def _kc_row(self, table, rowid):
        """(task, kind) of a row just inserted, read inside the same
        transaction: which task it is for, and for an event its kind (after
        a lost commit SQLite hands the lost ids out again)."""
        kind = "kind" if table == "task_events" else "''"
        try:
            row = super().execute("SELECT task_id, %s FROM %s WHERE rowid = ?" % (kind, table), (rowid,)).fetchone()
        except sqlite3.Error:
            return ("", "")
        return ((row[0] or "", row[1] or "") if row else ("", ""))


def commit_entries(op, began, rows):
    """One ledger line per task the transaction wrote to, so each line's
    rows can be checked against that task; a commit that inserted nothing
    still gets a line (it marks the tick's write span)."""
    by_task = {}
    for table, rowid, task, kind in rows:
        by_task.setdefault(task, []).append((table, rowid, kind))
    if not by_task:
        return [entry("commit", op=op, began_ns=began, task=_STATE["task"])]
    out = []
    for task, items in by_task.items():
        runs = [rid for t, rid, _ in items if t == "task_runs"] or [0]
        for i, run in enumerate(runs):
            fields = {"run": run}
            if i == 0:
                fields["events"] = [rid for t, rid, _ in items if t == "task_events"]
                fields["event_kinds"] = [kind for t, _, kind in items if t == "task_events"]
                fields["comments"] = [rid for t, rid, _ in items if t == "task_comments"]
            out.append(entry("commit", op=op, began_ns=began, task=task, **fields))
    return out


def set_op(op):
    """Names the commits that follow (None: the Hermes function that wrote)."""
    _STATE["op"] = op


def recording():
    """Whether install() opened a ledger (a worker without one records nothing)."""
    return _STATE["fd"] is not None


def install(ledger, who, task=""):
    """Opens the ledger and makes every sqlite3.connect record. task is the
    task a commit that inserted no row is booked to ("" for a dispatcher)."""
    _STATE["fd"] = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    _STATE["who"], _STATE["task"] = who, task
    real_connect = sqlite3.connect

    def recording_connect(*args, **kwargs):
        kwargs.setdefault("factory", RecordingConnection)
        try:
            return real_connect(*args, **kwargs)
        except sqlite3.Error as err:
            record_error(err, "connect")
            raise

    sqlite3.connect = recording_connect


def harness_gone(token):
    """The harness this run lives for (KANBANCHAOS_HARNESS, "PID:STARTTIME")
    is dead or its pid is another process now: nothing of a run may outlive
    its harness, which a SIGKILL gives no chance to stop us."""
    pid, _, start = token.partition(":")
    if not pid.isdigit():
        return False
    try:
        with open("/proc/%s/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return True
    fields = stat[stat.rfind(")") + 1:].split()
    return len(fields) < 20 or fields[0] in ("Z", "X") or fields[19] != start
