#!/usr/bin/env python3
"""Drive LaunchDarkly's official, unmodified Python server-side SDK against a running Flagstaff.

Requires the PyPI package ``launchdarkly-server-sdk==9.20.0`` (import ``ldclient``).

Environment:
  FLAGSTAFF_URL    base URL of the server (REST API under /api/v2, SDK endpoints at the root)
  FLAGSTAFF_TOKEN  REST access token, used to make the changes the SDK must see

For each data source mode -- streaming (``GET /all``) and polling (``GET /sdk/latest-all``) --
the script starts an ``LDClient`` with base, stream and events URIs pointing at Flagstaff
(events on: ``/diagnostic`` and ``/bulk`` are exercised), waits for initialisation, checks
``variation_detail`` results (rule match, fallthrough, segment match, FLAG_NOT_FOUND), then
changes flags and segments through the REST API and requires the SDK to see each change within
one second: targeting turned off, a context added to a segment, a flag deleted, and the flag
re-created (which only works if the re-created flag's version exceeds the tombstone's).

Polling: the SDK clamps ``poll_interval`` to at least 30 s. To test polling promptly, the
script sets the Config object's private interval after construction (``_Config__poll_interval``);
the SDK's code is untouched and the requests are exactly those it always makes.

Prints one line per step; exits 0 on success, 1 with a traceback on failure.
"""

import logging
import sys
import traceback
import uuid

import ldclient
from ldclient import Context, LDClient
from ldclient.config import Config

from flagstaff_rest import URL, api, create_flag, step, wait_for


def run(mode, project, sdk_key):
    print(f"mode {mode}", flush=True)
    flag, seg_flag, seg = f"{mode}-flag", f"{mode}-seg-flag", f"{mode}-seg"
    create_flag(project, flag)
    api("PATCH", f"/flags/{project}/{flag}", [
        {"op": "replace", "path": "/environments/production/on", "value": True},
        {"op": "add", "path": "/environments/production/rules/0", "value": {
            "variation": 1, "clauses": [{"contextKind": "user", "attribute": "email", "op": "endsWith",
                                          "values": ["@example.com"], "negate": False}]}},
    ])
    api("POST", f"/segments/{project}/production", {"key": seg, "name": seg})
    create_flag(project, seg_flag)
    api("PATCH", f"/flags/{project}/{seg_flag}", [
        {"op": "replace", "path": "/environments/production/on", "value": True},
        {"op": "replace", "path": "/environments/production/fallthrough", "value": {"variation": 1}},
        {"op": "add", "path": "/environments/production/rules/0", "value": {
            "variation": 0, "clauses": [{"attribute": "key", "op": "segmentMatch", "values": [seg],
                                          "negate": False}]}},
    ])

    config = Config(sdk_key, base_uri=URL, stream_uri=URL, events_uri=URL,
                    stream=(mode == "streaming"), send_events=True, initial_reconnect_delay=0.1)
    if mode == "polling":
        config._Config__poll_interval = 0.2  # test-only: see the module docstring
    client = LDClient(config=config, start_wait=10)
    try:
        step("initialised")
        assert client.is_initialized(), "the client did not initialise"

        member = Context.builder("u1").set("email", "a@example.com").build()
        other = Context.builder("u2").build()

        step("rule match and fallthrough")
        d = client.variation_detail(flag, member, None)
        assert d.value is False and d.variation_index == 1, d
        assert d.reason["kind"] == "RULE_MATCH" and d.reason["ruleIndex"] == 0, d.reason
        d = client.variation_detail(flag, other, None)
        assert d.value is True and d.reason["kind"] == "FALLTHROUGH", (d.value, d.reason)
        d = client.variation_detail(seg_flag, other, "default")
        assert d.value is False and d.reason["kind"] == "FALLTHROUGH", (d.value, d.reason)
        d = client.variation_detail("no-such-flag", other, "default")
        assert d.value == "default" and d.reason == {"kind": "ERROR", "errorKind": "FLAG_NOT_FOUND"}, d.reason
        state = client.all_flags_state(member, with_reasons=True)
        assert state.valid and state.to_values_map()[flag] is False, state.to_json_dict()

        step("targeting turned off")
        api("PATCH", f"/flags/{project}/{flag}",
            [{"op": "replace", "path": "/environments/production/on", "value": False}])
        wait_for("OFF", lambda: client.variation_detail(flag, member, None).reason["kind"] == "OFF")

        step("context added to a segment")
        api("PATCH", f"/segments/{project}/production/{seg}",
            [{"op": "add", "path": "/included/-", "value": "u2"}])
        wait_for("segment match", lambda: client.variation_detail(seg_flag, other, None).value is True)
        d = client.variation_detail(seg_flag, other, None)
        assert d.reason["kind"] == "RULE_MATCH", d.reason

        step("flag deleted")
        api("DELETE", f"/flags/{project}/{flag}")
        wait_for("FLAG_NOT_FOUND", lambda: client.variation_detail(flag, member, "gone").reason.get("errorKind")
                 == "FLAG_NOT_FOUND")

        step("flag re-created (its version must exceed the tombstone's)")
        create_flag(project, flag)
        wait_for("re-created flag", lambda: client.variation_detail(flag, member, "gone").reason["kind"] == "OFF")

        client.flush()
    finally:
        client.close()
    print(f"mode {mode}: ok", flush=True)


def main():
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"launchdarkly-server-sdk {ldclient.VERSION}")
    project = "sdk" + uuid.uuid4().hex[:8]
    api("POST", "/projects", {"key": project, "name": project})
    sdk_key = api("GET", f"/projects/{project}/environments/production")["apiKey"]
    run("streaming", project, sdk_key)
    run("polling", project, sdk_key)
    print("ld-sdk-check: all steps passed")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
