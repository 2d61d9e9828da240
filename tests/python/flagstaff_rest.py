"""Helpers the Python end-to-end checks share: Flagstaff's REST API with the test token,
waiting for what an SDK should see, and step lines for the test log.

Environment: FLAGSTAFF_URL, FLAGSTAFF_TOKEN (set by flagstaff_testkit::python::run_check).
"""

import json
import os
import time
import urllib.error
import urllib.request

URL = os.environ["FLAGSTAFF_URL"].rstrip("/")
TOKEN = os.environ["FLAGSTAFF_TOKEN"]
# How soon an SDK must see a change made through the REST API.
CHANGE_DEADLINE = 1.0


def api(method, path, body=None):
    """Calls /api/v2<path>; returns the decoded JSON (None when empty), raises on 4xx/5xx."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(URL + "/api/v2" + path, data=data, method=method)
    req.add_header("Authorization", TOKEN)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{method} {path} -> {e.code}: {e.read().decode()}") from None


def create_flag(project, key):
    """A boolean flag named after its key."""
    api("POST", f"/flags/{project}", {"key": key, "name": key})


def wait_for(what, predicate, deadline=CHANGE_DEADLINE):
    start = time.monotonic()
    while True:
        if predicate():
            print(f"    seen within {time.monotonic() - start:.3f}s: {what}")
            return
        if time.monotonic() - start > deadline:
            raise AssertionError(f"not seen within {deadline}s: {what}")
        time.sleep(0.01)


def step(name):
    print(f"  {name}", flush=True)
