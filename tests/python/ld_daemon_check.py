#!/usr/bin/env python3
"""LaunchDarkly's official, unmodified Python server-side SDK in daemon mode, reading the Redis
that Flagstaff's ``redis-feature-store`` integration writes (Relay Proxy layout).

Requires ``launchdarkly-server-sdk==9.20.0`` and ``redis`` (both pinned in scripts/test.sh).

Environment:
  FLAGSTAFF_URL, FLAGSTAFF_TOKEN   the server and a REST token
  FLAGSTAFF_TEST_REDIS_URL         the Redis both Flagstaff and the SDK use

The script configures the store through the REST API with a prefix of its own (so runs can
share one Redis), waits for the first full sync, starts an ``LDClient`` with ``use_ldd=True``,
the Redis feature store and caching disabled (no connection to Flagstaff at all), checks
evaluations (rule match, fallthrough, segment match, FLAG_NOT_FOUND), then changes flags and
segments through the REST API and requires the SDK to see each change within one second.

Prints one line per step; exits 0 on success, 1 with a traceback on failure.
"""

import json
import logging
import os
import sys
import traceback
import uuid

import ldclient
import redis
from ldclient import Context, LDClient
from ldclient.config import Config
from ldclient.feature_store import CacheConfig
from ldclient.integrations import Redis

from flagstaff_rest import api, create_flag, step, wait_for

REDIS_URL = os.environ["FLAGSTAFF_TEST_REDIS_URL"]



def main():
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"launchdarkly-server-sdk {ldclient.VERSION}, redis-py {redis.__version__}")
    project = "dm" + uuid.uuid4().hex[:8]
    prefix = "flagstaff-test-" + uuid.uuid4().hex
    api("POST", "/projects", {"key": project, "name": project})
    flag, seg_flag, seg = "daemon-flag", "daemon-seg-flag", "daemon-seg"
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

    step("configure redis-feature-store through the REST API")
    created = api("POST", f"/integration-capabilities/featureStore/{project}/production/redis-feature-store",
                  {"name": "daemon", "on": True, "config": {"url": REDIS_URL, "prefix": prefix}})
    assert created["config"]["url"] == "**********", created["config"]
    assert created["config"]["prefix"] == prefix, created["config"]

    raw = redis.Redis.from_url(REDIS_URL)
    try:
        wait_for("first full sync ($inited)", lambda: raw.exists(f"{prefix}:$inited") == 1, deadline=15)
        fields = {k.decode() for k in raw.hkeys(f"{prefix}:features")}
        assert {flag, seg_flag} <= fields, fields
        stored = json.loads(raw.hget(f"{prefix}:features", flag))
        assert stored["key"] == flag and stored["on"] is True and stored["version"] > 0, stored
        assert json.loads(raw.hget(f"{prefix}:segments", seg))["key"] == seg

        store = Redis.new_feature_store(url=REDIS_URL, prefix=prefix, caching=CacheConfig.disabled())
        config = Config("sdk-key-unused", feature_store=store, use_ldd=True, send_events=False,
                        diagnostic_opt_out=True)
        client = LDClient(config=config, start_wait=5)
        try:
            step("initialised from Redis (daemon mode)")
            assert client.is_initialized(), "the client did not initialise"
            member = Context.builder("u1").set("email", "a@example.com").build()
            other = Context.builder("u2").build()

            step("rule match, fallthrough, FLAG_NOT_FOUND")
            d = client.variation_detail(flag, member, None)
            assert d.value is False and d.reason["kind"] == "RULE_MATCH", (d.value, d.reason)
            d = client.variation_detail(flag, other, None)
            assert d.value is True and d.reason["kind"] == "FALLTHROUGH", (d.value, d.reason)
            d = client.variation_detail(seg_flag, other, "default")
            assert d.value is False and d.reason["kind"] == "FALLTHROUGH", (d.value, d.reason)
            d = client.variation_detail("no-such-flag", other, "default")
            assert d.reason == {"kind": "ERROR", "errorKind": "FLAG_NOT_FOUND"}, d.reason

            step("targeting turned off")
            api("PATCH", f"/flags/{project}/{flag}",
                [{"op": "replace", "path": "/environments/production/on", "value": False}])
            wait_for("OFF", lambda: client.variation_detail(flag, member, None).reason["kind"] == "OFF")

            step("context added to a segment")
            api("PATCH", f"/segments/{project}/production/{seg}",
                [{"op": "add", "path": "/included/-", "value": "u2"}])
            wait_for("segment match", lambda: client.variation_detail(seg_flag, other, None).value is True)

            step("flag deleted")
            api("DELETE", f"/flags/{project}/{flag}")
            wait_for("FLAG_NOT_FOUND", lambda: client.variation_detail(flag, member, "gone").reason.get("errorKind")
                     == "FLAG_NOT_FOUND")

            step("flag re-created (its version must exceed the tombstone's)")
            create_flag(project, flag)
            wait_for("re-created flag", lambda: client.variation_detail(flag, member, "gone").reason["kind"] == "OFF")
        finally:
            client.close()

        step("status shows the pushed version")
        got = api("GET", f"/integration-capabilities/featureStore/{project}/production/redis-feature-store/{created['_id']}")
        status = got["_status"]
        assert status["syncedVersion"] > 0 and status["available"] is True and "lastSync" in status, status
        assert got["config"]["url"] == "**********", got["config"]
    finally:
        for key in raw.keys(f"{prefix}:*"):
            raw.delete(key)
    print("ld-daemon-check: all steps passed")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
