"""shared/worker/privileges.py: a drop to another user, for good, in every thread. It runs in a child
interpreter started as root (a drop cannot be undone, and the test process must stay root)."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys

import pytest

NOBODY = pwd.getpwnam("nobody")
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root")

CHILD = """
import json, os, sys, threading
from shared.worker.privileges import PrivilegeError, drop_privileges

release = threading.Event()
waiting = threading.Thread(target=release.wait)  # a thread that exists before the drop, as ZeroMQ's do
waiting.start()
uid, gid = int(sys.argv[1]), int(sys.argv[2])
os.environ.update(HOME="/root", USER="root")
os.environ.pop("LOGNAME", None)
drop_privileges(uid, gid)
threads = {}
for task in os.listdir("/proc/self/task"):
    with open(f"/proc/self/task/{task}/status") as status:
        threads[task] = [line.split()[1:] for line in status if line.startswith(("Uid:", "Gid:"))]
try:
    os.setuid(0)
    back = "became root again"
except PermissionError:
    back = "refused"
try:
    drop_privileges(0, 0)
    again = "dropped to root"
except PrivilegeError as exc:
    again = str(exc)
release.set()
print(json.dumps({
    "uid": os.getresuid(), "gid": os.getresgid(), "groups": sorted(os.getgroups()), "threads": threads,
    "back": back, "again": again, "env": [os.environ.get(k) for k in ("HOME", "USER", "LOGNAME")],
}))
"""


def test_a_drop_is_for_every_id_of_every_thread_and_cannot_be_undone() -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(NOBODY.pw_uid), str(NOBODY.pw_gid)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr
    seen = json.loads(child.stdout)
    assert seen["uid"] == [NOBODY.pw_uid] * 3 and seen["gid"] == [NOBODY.pw_gid] * 3
    assert seen["groups"] == sorted(set(os.getgrouplist("nobody", NOBODY.pw_gid)))
    assert len(seen["threads"]) == 2
    for uids, gids in seen["threads"].values():
        assert set(uids) == {str(NOBODY.pw_uid)} and set(gids) == {str(NOBODY.pw_gid)}  # real to filesystem
    assert seen["back"] == "refused"
    assert seen["again"] == "cannot become uid 0 gid 0: Operation not permitted"
    assert seen["env"] == [NOBODY.pw_dir, "nobody", None]  # set where present, never added
