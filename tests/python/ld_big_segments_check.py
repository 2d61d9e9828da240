#!/usr/bin/env python3
"""LaunchDarkly's official, unmodified Python server-side SDK in daemon mode evaluating a big
segment that a partner keeps in step through Flagstaff's ``segment-targets`` endpoint.

Flagstaff writes two things into Redis: the environment in the Relay Proxy layout (the
``redis-feature-store`` integration, prefix of this run's own) and the big-segment membership
(the catalogue's ``redis`` big-segment-store integration, prefix = the environment's
client-side ID). The SDK reads both and never talks to Flagstaff.

Requires ``launchdarkly-server-sdk==9.20.0`` and ``redis`` (both pinned in scripts/test.sh).

Environment:
  FLAGSTAFF_URL, FLAGSTAFF_TOKEN   the server and a REST token
  FLAGSTAFF_TEST_REDIS_URL         the Redis both Flagstaff and the SDK use

Prints one line per step; exits 0 on success, 1 with a traceback on failure.
"""

import logging
import os
import sys
import traceback
import urllib.parse
import uuid

import ldclient
import redis
from ldclient import Context, LDClient
from ldclient.config import BigSegmentsConfig, Config
from ldclient.feature_store import CacheConfig
from ldclient.impl.big_segments import _hash_for_user_key  # the SDK's own context hash
from ldclient.integrations import Redis

from flagstaff_rest import api, step, wait_for

REDIS_URL = os.environ["FLAGSTAFF_TEST_REDIS_URL"]
INTEGRATION = "fulcrum"  # a synced-segment manifest of the catalogue: add/remove member arrays
COHORT = "cohort-" + uuid.uuid4().hex[:6]
SEGMENT = f"{INTEGRATION}-{COHORT}"



def sync_cohort(client_side_id, add, remove):
    """What the partner sends: one request with members to add and to remove."""
    api("POST", f"/segment-targets/{INTEGRATION}", {
        "environmentId": client_side_id,
        "contextKind": "user",
        "cohortId": COHORT,
        "cohortName": "Big cohort",
        "cohortUrl": "https://partner.example.com/cohorts/" + COHORT,
        "included": {"add": [{"id": k} for k in add], "remove": [{"id": k} for k in remove]},
    })


def main():
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"launchdarkly-server-sdk {ldclient.VERSION}, redis-py {redis.__version__}")
    redis_address = urllib.parse.urlparse(REDIS_URL)
    project = "bs" + uuid.uuid4().hex[:8]
    prefix = "flagstaff-test-" + uuid.uuid4().hex
    api("POST", "/projects", {"key": project, "name": project})
    client_side_id = api("GET", f"/projects/{project}/environments/production")["_id"]
    flag = "big-flag"
    api("POST", f"/flags/{project}", {"key": flag, "name": flag})
    api("PATCH", f"/flags/{project}/{flag}", [
        {"op": "replace", "path": "/environments/production/on", "value": True},
        {"op": "replace", "path": "/environments/production/fallthrough", "value": {"variation": 1}},
        {"op": "add", "path": "/environments/production/rules/0", "value": {
            "variation": 0, "clauses": [{"attribute": "key", "op": "segmentMatch", "values": [SEGMENT],
                                          "negate": False}]}},
    ])

    step("configure the redis big-segment store and redis-feature-store through the REST API")
    big = api("POST", f"/integration-capabilities/big-segment-store/{project}/production/redis", {
        "name": "big segments", "on": True,
        "config": {"host": redis_address.hostname, "port": str(redis_address.port or 6379)},
    })
    api("POST", f"/integration-capabilities/featureStore/{project}/production/redis-feature-store",
        {"name": "daemon", "on": True, "config": {"url": REDIS_URL, "prefix": prefix}})

    step(f"partner syncs cohort {COHORT}: alice and carol in")
    sync_cohort(client_side_id, ["alice", "carol"], [])
    segment = api("GET", f"/segments/{project}/production/{SEGMENT}")
    assert segment["unbounded"] is True and segment.get("generation") is not None, segment

    raw = redis.Redis.from_url(REDIS_URL)
    try:
        wait_for("first full sync ($inited)", lambda: raw.exists(f"{prefix}:$inited") == 1, deadline=15)
        wait_for("membership synchronized", lambda: raw.exists(f"{client_side_id}:big_segments_synchronized_on") == 1,
                 deadline=15)

        store = Redis.new_feature_store(url=REDIS_URL, prefix=prefix, caching=CacheConfig.disabled())
        big_segments = BigSegmentsConfig(
            store=Redis.new_big_segment_store(url=REDIS_URL, prefix=client_side_id),
            context_cache_time=0.001, status_poll_interval=0.2)
        config = Config("sdk-key-unused", feature_store=store, use_ldd=True, send_events=False,
                        diagnostic_opt_out=True, big_segments=big_segments)
        client = LDClient(config=config, start_wait=5)
        try:
            assert client.is_initialized(), "the client did not initialise"
            alice, bob = Context.create("alice"), Context.create("bob")

            def evaluates(context, value):
                d = client.variation_detail(flag, context, None)
                return d.value is value and d.reason.get("bigSegmentsStatus") == "HEALTHY"

            step("members match the big segment, others fall through (status HEALTHY)")
            wait_for("alice in", lambda: evaluates(alice, True), deadline=5)
            d = client.variation_detail(flag, alice, None)
            assert d.reason["kind"] == "RULE_MATCH", d.reason
            d = client.variation_detail(flag, bob, None)
            assert d.value is False and d.reason["kind"] == "FALLTHROUGH", d.reason
            assert d.reason.get("bigSegmentsStatus") == "HEALTHY", d.reason
            status = client.big_segment_store_status_provider.status
            assert status.available and not status.stale, status

            step("partner removes alice and adds bob")
            sync_cohort(client_side_id, ["bob"], ["alice"])
            wait_for("bob in", lambda: evaluates(bob, True))
            wait_for("alice out", lambda: evaluates(alice, False))
            assert evaluates(Context.create("carol"), True), "carol stays a member"
        finally:
            client.close()

        step("Redis lost its data: the store is written again from the start")
        for key in raw.keys(f"{client_side_id}:*"):
            raw.delete(key)
        sync_cohort(client_side_id, ["dave"], [])
        hashes = {}
        for member in ["bob", "carol", "dave"]:
            hashes[member] = f"{client_side_id}:big_segment_include:{_hash_for_user_key(member)}"
        ref = f"{SEGMENT}.g{segment['generation']}".encode()
        wait_for("every member back", lambda: all(raw.sismember(k, ref) for k in hashes.values()), deadline=5)
        alice_key = f"{client_side_id}:big_segment_include:{_hash_for_user_key('alice')}"
        assert not raw.sismember(alice_key, ref), "a removed member stays removed"

        step("status of the big-segment store configuration")
        got = api("GET", f"/integration-capabilities/big-segment-store/{project}/production/redis/{big['_id']}")
        assert got["_status"]["available"] is True and "lastSync" in got["_status"], got["_status"]
    finally:
        for key in raw.keys(f"{prefix}:*") + raw.keys(f"{client_side_id}:*"):
            raw.delete(key)
    print("ld-big-segments-check: all steps passed")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
