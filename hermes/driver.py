"""kanbanchaos driver: a real Hermes Agent release's dispatcher, run as the
gateway runs it, with what it does written to the run's ledger.

One long-running process (the workers' parent, as the gateway is) ticks every
non-archived board with a fresh ``connect(board=slug)`` and
``dispatch_once(conn, board=slug, …)`` with the arguments that release's
gateway passes (failure_limit, max_spawn and, where the release takes them,
max_in_progress, stale_timeout_seconds, default_assignee,
max_in_progress_per_profile), read from config.yaml through Hermes' own
config loader. Nothing of Hermes is changed: the driver only watches. It
starts no subprocess of its own: Python's subprocess module would reap the
release's workers behind its back.

It appends to the ledger (one O_APPEND write per record, like the Go side):
- ``settings``: once, what the release resolved its settings to;
- ``commit``: every COMMIT the release saw acknowledged, with the task_events,
  task_runs and task_comments rows it inserted (one line per task);
- ``sqlite_error``: every sqlite3 error the release got, with its extended code;
- ``tick``: every tick's start and end, per board.

The recording itself is kanbanchaos_record (record.py), shared with the
worker. Usage: python -u driver.py SETTINGS.json  (written by kanbanchaos;
see hermes/settings.go). Standard library only.
"""

import importlib
import importlib.metadata
import inspect
import json
import os
import re
import signal
import sqlite3
import sys
import time
import traceback

import kanbanchaos_record as rec

SETTINGS = json.load(open(sys.argv[1])) if len(sys.argv) == 2 else None
if SETTINGS is None:
    sys.exit("usage: driver.py SETTINGS.json")

NAME = SETTINGS["name"]
rec.install(SETTINGS["ledger"], NAME)
append, entry, mono_ns = rec.append, rec.entry, rec.mono_ns


# --- the release ---------------------------------------------------------------

def load_release():
    kb = importlib.import_module("hermes_cli.kanban_db")
    # A checkout on PYTHONPATH is what runs, whatever release the
    # interpreter's site-packages may also hold.
    here = os.path.dirname(os.path.dirname(os.path.abspath(kb.__file__)))
    if here in [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]:
        return kb, "source " + here
    try:
        version = importlib.metadata.version("hermes-agent")
    except importlib.metadata.PackageNotFoundError:
        version = "source " + here
    return kb, version


LAZY_IMPORT = re.compile(r"^[ \t]+(?:from[ \t]+([\w.]+)[ \t]+import|import[ \t]+([\w.]+))", re.M)


def warm_up(kb):
    """Imports what the release's kanban code imports inside its functions,
    and what those of the release's own modules import inside theirs. A
    gateway is a long-running process that loaded them long before a tick
    spawns a worker (the agent runs in it); a fresh driver would load them
    inside its first tick — 0.19.0's first spawn reads its tool
    configuration: 885 modules, 1.1 s alone at load 26, 2–3 s inside a run,
    then 4 ms once warm — and the run's clock would count that as the
    dispatcher's own stall. Done before the driver reports ready, so the
    run starts after it. Two levels, not the whole closure (the whole agent,
    ~30 s). A module that does not import here (msvcrt on Linux) is
    skipped, as the release skips it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(kb.__file__)))
    for module in lazy_imports(kb):
        if module is not None and os.path.abspath(getattr(module, "__file__", None) or "/").startswith(root + os.sep):
            lazy_imports(module)


def lazy_imports(module):
    """Imports the modules imported inside module's functions; returns them
    (None for one that does not import)."""
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return []
    out = []
    for a, b in LAZY_IMPORT.findall(source):
        try:
            out.append(importlib.import_module(a or b))
        except Exception:  # noqa: BLE001 — whatever the release's own import would raise
            out.append(None)
    return out


def positive_int(value):
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if n >= 1 else None


def gateway_kwargs(kb, params):
    """The dispatch_once arguments a gateway of this release passes, read
    from config.yaml through Hermes' own load_config (its DEFAULT_CONFIG
    included) and parsed by the gateway's rules; only those the release's
    dispatch_once takes."""
    from hermes_cli.config import load_config

    cfg = load_config()
    kanban_cfg = cfg.get("kanban", {}) if isinstance(cfg, dict) else {}
    default = getattr(kb, "DEFAULT_FAILURE_LIMIT", 2)
    kwargs = {
        "max_spawn": kanban_cfg.get("max_spawn", None),  # passed raw, as the gateway does
        "failure_limit": positive_int(kanban_cfg.get("failure_limit", default)) or default,
    }
    if "max_in_progress" in params:
        kwargs["max_in_progress"] = positive_int(kanban_cfg.get("max_in_progress"))
    if "stale_timeout_seconds" in params:
        try:
            kwargs["stale_timeout_seconds"] = int(kanban_cfg.get("dispatch_stale_timeout_seconds") or 0)
        except (TypeError, ValueError):
            kwargs["stale_timeout_seconds"] = 0
    if "default_assignee" in params:
        assignee = kanban_cfg.get("default_assignee")
        kwargs["default_assignee"] = assignee.strip() or None if isinstance(assignee, str) else None
    if "max_in_progress_per_profile" in params:
        kwargs["max_in_progress_per_profile"] = positive_int(kanban_cfg.get("max_in_progress_per_profile"))
    return kwargs


def resolved(kb, names):
    """What the release resolves a setting to, by the first of its own
    resolver functions that exists (they moved between releases)."""
    for name in names:
        fn = getattr(kb, name, None)
        if callable(fn):
            try:
                return fn()
            except TypeError:
                continue
    return None


def effective_settings(kb, version, params, kwargs):
    env = os.environ
    out = {
        "release": version,
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "failure_limit": kwargs["failure_limit"],
        "max_spawn": kwargs["max_spawn"],
        "dispatch_once_kwargs": {k: v for k, v in kwargs.items() if k != "spawn_fn"},
        "tick_s": SETTINGS["tick_s"],
        "dispatch_once_params": sorted(params),
        "env": {k: env[k] for k in sorted(env) if k.startswith("HERMES_KANBAN_") and k.endswith(("_SECONDS", "_MS"))},
        "resolved": {},
    }
    out["reads_env"] = sorted(set(re.findall(r"HERMES_KANBAN_[A-Z_]+", kanban_sources())))
    for key, names in SETTINGS.get("resolvers", {}).items():
        value = resolved(kb, names)
        if value is not None:
            out["resolved"][key] = value
    if "ttl_seconds" in kwargs:
        out["resolved"]["claim_ttl_s"] = kwargs["ttl_seconds"]
        out["claim_ttl_via"] = "dispatch_once(ttl_seconds=)"
    return out


def kanban_sources():
    """The source text of the release's kanban modules (kanban_db and the
    modules it was later split into): which settings it reads at all."""
    import hermes_cli

    text = []
    for folder in hermes_cli.__path__:
        for name in sorted(os.listdir(folder)):
            if name.startswith("kanban") and name.endswith(".py"):
                with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
                    text.append(f.read())
    return "\n".join(text)


def boards(kb):
    """The gateway ticks every non-archived board."""
    try:
        return [b.get("slug") or "default" for b in kb.list_boards(include_archived=False)]
    except Exception:
        return ["default"]


def lose_pid_spawn(kb):
    """A spawn that starts the worker but returns no pid: what the
    dispatcher sees when it dies between claim and _set_worker_pid (#35202)."""
    real = kb._default_spawn

    def spawn(task, workspace, board=None):
        real(task, workspace, board=board)
        return None

    return spawn


def wait_for_go(stop, harness):
    """Waits for the harness's go file, then the dispatcher's offset: the
    run starts when every driver has imported the release. False when the
    driver is to stop instead."""
    go = SETTINGS.get("go")
    while go and not os.path.exists(go):
        if stop or (harness and rec.harness_gone(harness)):
            return False
        time.sleep(0.005)
    deadline = time.monotonic() + float(SETTINGS.get("offset_s") or 0)
    while time.monotonic() < deadline:
        if stop:
            return False
        time.sleep(min(0.005, max(0.0, deadline - time.monotonic())))
    return True


def main():
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    kb, version = load_release()
    warm_up(kb)
    params = set(inspect.signature(kb.dispatch_once).parameters)
    kwargs = gateway_kwargs(kb, params)
    # A release that reads no HERMES_KANBAN_CLAIM_TTL_SECONDS can only be
    # given a claim TTL through dispatch_once's own ttl_seconds argument.
    if SETTINGS.get("ttl_seconds") and "ttl_seconds" in params and "HERMES_KANBAN_CLAIM_TTL_SECONDS" not in kanban_sources():
        kwargs["ttl_seconds"] = SETTINGS["ttl_seconds"]
    if SETTINGS.get("lose_pid"):
        kwargs["spawn_fn"] = lose_pid_spawn(kb)
    report = effective_settings(kb, version, params, kwargs)
    append(entry("settings", msg=json.dumps(report, sort_keys=True)))
    tick = float(SETTINGS["tick_s"])
    harness = os.environ.get("KANBANCHAOS_HARNESS", "")
    if not wait_for_go(stop, harness):
        return
    while not stop:
        if harness and rec.harness_gone(harness):
            print("kanbanchaos driver: the harness is gone; exiting", file=sys.stderr)
            return
        start = time.monotonic()
        for slug in boards(kb):
            began, err, op = mono_ns(), "", ""
            conn = None
            try:
                conn = kb.connect(board=slug)
                res = kb.dispatch_once(conn, board=slug, **kwargs)
                if getattr(res, "skipped_locked", False):
                    op = "skipped_locked"
            except Exception as exc:  # the gateway logs a failed tick and goes on
                err = "%s: %s" % (type(exc).__name__, exc)
                rec.alarm("dispatch_once", err)
                traceback.print_exc()
            finally:
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass
            append(entry("tick", began_ns=began, board=slug, op=op, msg=err))
        rest = tick - (time.monotonic() - start)
        if rest > 0 and not stop:
            time.sleep(rest)


if __name__ == "__main__":
    main()
