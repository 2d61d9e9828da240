#!/usr/bin/env python3
"""Drive LaunchDarkly's official, unmodified Python REST client against a running Flagstaff.

Requires the PyPI package ``launchdarkly-api==25.0.1`` (import ``launchdarkly_api``), whose
pydantic v2 strict models reject responses that miss a required field or carry a wrong JSON
type -- so every successful step below is also a deserialization check.

Environment:
  FLAGSTAFF_URL    base URL of the server, e.g. http://127.0.0.1:8080 (no /api/v2 suffix)
  FLAGSTAFF_TOKEN  access token (api-<uuid>), sent raw as the Authorization header

Prints one line per step; exits 0 on success. On any failure prints the traceback plus the
last HTTP exchange (method, URL, status, response body) and exits 1.

The client is used exactly as shipped; the only addition is an observer on the client
instance's ``rest_client.request`` that remembers the last raw response so that it can be
printed when a step fails (the client's own exceptions do not carry the body when model
validation fails).
"""

import json
import os
import sys
import traceback
import uuid

import launchdarkly_api
from launchdarkly_api.api.audit_log_api import AuditLogApi
from launchdarkly_api.api.environments_api import EnvironmentsApi
from launchdarkly_api.api.feature_flags_api import FeatureFlagsApi
from launchdarkly_api.api.projects_api import ProjectsApi
from launchdarkly_api.exceptions import ApiException
from launchdarkly_api.models.defaults import Defaults
from launchdarkly_api.models.feature_flag_body import FeatureFlagBody
from launchdarkly_api.models.patch_operation import PatchOperation
from launchdarkly_api.models.patch_with_comment import PatchWithComment
from launchdarkly_api.models.project_post import ProjectPost
from launchdarkly_api.models.variation import Variation

EXPECTED_CLIENT_VERSION = "25.0.1"
REQUEST_TIMEOUT_SECONDS = 30


class CheckFailed(AssertionError):
    """A response deserialized fine but did not have the expected content."""


class LastExchange:
    """Remembers the last request and raw response seen by the client's REST layer."""

    def __init__(self):
        self.method = None
        self.url = None
        self.response = None

    def install(self, api_client):
        rest_client = api_client.rest_client
        original = rest_client.request

        def observed_request(method, url, headers=None, body=None, post_params=None, _request_timeout=None):
            self.method, self.url, self.response = method, url, None
            if _request_timeout is None:
                _request_timeout = REQUEST_TIMEOUT_SECONDS
            response = original(
                method,
                url,
                headers=headers,
                body=body,
                post_params=post_params,
                _request_timeout=_request_timeout,
            )
            self.response = response
            return response

        rest_client.request = observed_request

    def describe(self):
        if self.method is None:
            return "no HTTP request was made"
        lines = ["last request: %s %s" % (self.method, self.url)]
        if self.response is None:
            lines.append("no response received")
            return "\n".join(lines)
        lines.append("response status: %s %s" % (self.response.status, self.response.reason or ""))
        try:
            content_type = self.response.headers.get("content-type")
        except Exception:  # noqa: BLE001 - best effort diagnostics only
            content_type = None
        lines.append("response content-type: %s" % content_type)
        try:
            data = self.response.read()
        except Exception as exc:  # noqa: BLE001
            lines.append("response body unavailable: %r" % exc)
            return "\n".join(lines)
        lines.append("response body:")
        lines.append(pretty_body(data))
        return "\n".join(lines)


def pretty_body(data):
    if data is None:
        return "(none)"
    if isinstance(data, (bytes, bytearray)):
        text = data.decode("utf-8", errors="replace")
    else:
        text = str(data)
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True)
    except ValueError:
        return text if text else "(empty)"


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def step(message):
    print("ok   %s" % message, flush=True)


def find_project(projects_api, key):
    """Page through GET /projects until `key` shows up; returns (project, pages, total)."""
    offset, limit, pages = 0, 20, 0
    while True:
        page = projects_api.get_projects(limit=limit, offset=offset)
        pages += 1
        check(page is not None, "getProjects returned no body")
        for p in page.items:
            if p.key == key:
                return p, pages, page.total_count
        offset += len(page.items)
        if not page.items or (page.total_count is not None and offset >= page.total_count) or pages > 50:
            return None, pages, page.total_count


def mentions_flag(entry, project_key, flag_key, flag_name):
    needle = ":flag/%s" % flag_key
    resources = [a.resource or "" for a in (entry.accesses or [])]
    if entry.target is not None and entry.target.resources:
        resources.extend(entry.target.resources)
    if any(r.startswith("proj/%s:" % project_key) and needle in r for r in resources):
        return True
    return entry.kind == "flag" and entry.name in (flag_name, flag_key)


def run(base_url, token):
    check(
        launchdarkly_api.__version__ == EXPECTED_CLIENT_VERSION,
        "expected launchdarkly-api %s, found %s" % (EXPECTED_CLIENT_VERSION, launchdarkly_api.__version__),
    )
    configuration = launchdarkly_api.Configuration(host=base_url.rstrip("/"))
    configuration.api_key["ApiKey"] = token
    exchange = LastExchange()

    with launchdarkly_api.ApiClient(configuration) as api_client:
        exchange.install(api_client)
        try:
            _run_steps(api_client)
        except Exception:
            traceback.print_exc()
            print("----", file=sys.stderr)
            print(exchange.describe(), file=sys.stderr)
            raise


def _run_steps(api_client):
    projects = ProjectsApi(api_client)
    environments = EnvironmentsApi(api_client)
    flags = FeatureFlagsApi(api_client)
    audit = AuditLogApi(api_client)

    suffix = uuid.uuid4().hex[:10]
    project_key = "pyclient-%s" % suffix
    project_name = "Python client check %s" % suffix

    # 1. Create a project (postProject -> 201 ProjectRep). Default environments are created.
    created = projects.post_project(ProjectPost(key=project_key, name=project_name, tags=["python-client"]))
    check(created is not None, "postProject returned no body (expected status 201)")
    check(created.key == project_key, "postProject key %r != %r" % (created.key, project_key))
    check(created.name == project_name, "postProject name %r != %r" % (created.name, project_name))
    check(created.tags == ["python-client"], "postProject tags %r" % (created.tags,))
    env_keys = [e.key for e in created.environments]
    check("production" in env_keys, "default environments %r lack 'production'" % (env_keys,))
    step("postProject %s (id %s, environments: %s)" % (project_key, created.id, ", ".join(env_keys)))

    # 2. Read it back (getProject), with and without expand=environments.
    project = projects.get_project(project_key)
    check(project.key == project_key and project.name == project_name, "getProject returned %r" % (project.key,))
    check(project.id == created.id, "getProject _id %r != created %r" % (project.id, created.id))
    expanded = projects.get_project(project_key, expand="environments")
    check(expanded.environments is not None, "getProject?expand=environments has no environments")
    expanded_keys = sorted(e.key for e in expanded.environments.items)
    check(expanded_keys == sorted(env_keys), "expanded environments %r != %r" % (expanded_keys, env_keys))
    step("getProject %s (expand=environments: %s)" % (project_key, ", ".join(expanded_keys)))

    # 3. List projects (getProjects) and find ours.
    listed, pages, total = find_project(projects, project_key)
    check(listed is not None, "getProjects does not list %s (pages read: %d, totalCount %r)" % (project_key, pages, total))
    step("getProjects lists %s (totalCount %s, %d page(s))" % (project_key, total, pages))

    # 4. List the project's environments (getEnvironmentsByProject).
    envs = environments.get_environments_by_project(project_key)
    listed_env_keys = sorted(e.key for e in envs.items)
    check(listed_env_keys == sorted(env_keys), "environments %r != %r" % (listed_env_keys, env_keys))
    production = next(e for e in envs.items if e.key == "production")
    check(production.api_key.startswith("sdk-"), "production apiKey %r is not an SDK key (sdk-...)" % production.api_key)
    check(production.mobile_key.startswith("mob-"), "production mobileKey %r is not a mobile key (mob-...)" % production.mobile_key)
    check(production.id != "", "production _id (client-side ID) is empty")
    step("getEnvironmentsByProject %s: %s" % (project_key, ", ".join(listed_env_keys)))

    # 5. Create a boolean flag (postFeatureFlag -> 201 FeatureFlag).
    flag_key = "py-flag-%s" % suffix
    flag_name = "Python flag %s" % suffix
    flag = flags.post_feature_flag(
        project_key,
        FeatureFlagBody(
            name=flag_name,
            key=flag_key,
            description="created by the launchdarkly-api Python client",
            tags=["python", "client-check"],
            temporary=False,
        ),
    )
    check(flag is not None, "postFeatureFlag returned no body (expected status 201)")
    check(flag.key == flag_key and flag.name == flag_name, "postFeatureFlag returned %r/%r" % (flag.key, flag.name))
    check(flag.kind == "boolean", "new flag kind %r != 'boolean'" % flag.kind)
    check(sorted(flag.tags) == ["client-check", "python"], "new flag tags %r" % (flag.tags,))
    check(flag.temporary is False, "new flag temporary %r != False" % flag.temporary)
    check([v.value for v in flag.variations] == [True, False], "default variations %r" % ([v.value for v in flag.variations],))
    check(flag.archived is False, "new flag archived %r" % flag.archived)
    version0 = flag.version
    step("postFeatureFlag %s (kind %s, _version %d)" % (flag_key, flag.kind, version0))

    # 6. Create a second flag with custom (multivariate) variations and defaults.
    mv_key = "py-colors-%s" % suffix
    mv = flags.post_feature_flag(
        project_key,
        FeatureFlagBody(
            name="Python colors %s" % suffix,
            key=mv_key,
            tags=["python"],
            variations=[
                Variation(value="red", name="Red"),
                Variation(value="green", name="Green"),
                Variation(value="blue", name="Blue", description="the blue one"),
            ],
            defaults=Defaults(on_variation=1, off_variation=0),
        ),
    )
    check(mv is not None, "postFeatureFlag returned no body (expected status 201)")
    check(mv.kind == "multivariate", "custom-variation flag kind %r != 'multivariate'" % mv.kind)
    check([v.value for v in mv.variations] == ["red", "green", "blue"], "variations %r" % ([v.value for v in mv.variations],))
    check([v.name for v in mv.variations] == ["Red", "Green", "Blue"], "variation names %r" % ([v.name for v in mv.variations],))
    check(all(v.id for v in mv.variations), "variations lack _id: %r" % ([v.id for v in mv.variations],))
    check(
        mv.defaults is not None and (mv.defaults.on_variation, mv.defaults.off_variation) == (1, 0),
        "defaults %r" % (mv.defaults,),
    )
    check(mv.environments is None or "production" not in mv.environments or mv.environments["production"].off_variation == 0,
          "production offVariation of the new flag should follow defaults.offVariation (0)")
    step("postFeatureFlag %s (kind %s, variations: red, green, blue)" % (mv_key, mv.kind))

    # 7. Get the flag with and without the env filter (getFeatureFlag).
    filtered = flags.get_feature_flag(project_key, flag_key, env="production")
    check(filtered.key == flag_key, "getFeatureFlag key %r" % filtered.key)
    check(filtered.environments is not None, "getFeatureFlag?env=production has no environments")
    check(sorted(filtered.environments) == ["production"], "env filter returned environments %r" % sorted(filtered.environments))
    check(filtered.environments["production"].on is False, "a new flag should be off in production")
    check(filtered.environments["production"].environment_name != "", "production _environmentName is empty")
    unfiltered = flags.get_feature_flag(project_key, flag_key)
    check(unfiltered.environments is not None, "getFeatureFlag has no environments")
    check(sorted(unfiltered.environments) == sorted(env_keys), "unfiltered environments %r != %r" % (sorted(unfiltered.environments), sorted(env_keys)))
    check(unfiltered.version == version0, "_version changed on read: %r != %r" % (unfiltered.version, version0))
    step("getFeatureFlag %s (env=production: production; unfiltered: %s)" % (flag_key, ", ".join(sorted(unfiltered.environments))))

    # 8. List flags (getFeatureFlags).
    listing = flags.get_feature_flags(project_key, env="production")
    listed_flag_keys = sorted(f.key for f in listing.items)
    check(flag_key in listed_flag_keys and mv_key in listed_flag_keys, "getFeatureFlags lists %r" % (listed_flag_keys,))
    check(listing.total_count is None or listing.total_count >= 2, "getFeatureFlags totalCount %r" % listing.total_count)
    step("getFeatureFlags %s (%d flags, totalCount %s)" % (project_key, len(listing.items), listing.total_count))

    # 9. JSON Patch with comment: replace the description (patchFeatureFlag).
    description = "patched by the Python client %s" % suffix
    patch_comment = "python client check: description %s" % suffix
    patched = flags.patch_feature_flag(
        project_key,
        flag_key,
        PatchWithComment(
            comment=patch_comment,
            patch=[PatchOperation(op="replace", path="/description", value=description)],
        ),
    )
    check(patched.description == description, "patched description %r != %r" % (patched.description, description))
    check(patched.version == version0 + 1, "_version after first patch %r != %r" % (patched.version, version0 + 1))
    step("patchFeatureFlag %s /description (_version %d -> %d)" % (flag_key, version0, patched.version))

    # 10. Turn it on in production with JSON Patch.
    on_comment = "python client check: turn on %s" % suffix
    turned_on = flags.patch_feature_flag(
        project_key,
        flag_key,
        PatchWithComment(
            comment=on_comment,
            patch=[PatchOperation(op="replace", path="/environments/production/on", value=True)],
        ),
    )
    check(turned_on.version == version0 + 2, "_version after second patch %r != %r" % (turned_on.version, version0 + 2))
    check(turned_on.environments is not None and "production" in turned_on.environments,
          "patch response has no production environment")
    check(turned_on.environments["production"].on is True, "production.on is %r after the patch" % turned_on.environments["production"].on)
    check(turned_on.description == description, "description lost: %r" % turned_on.description)
    reread = flags.get_feature_flag(project_key, flag_key, env="production")
    check(reread.environments["production"].on is True, "production.on not persisted")
    check(reread.version == version0 + 2, "re-read _version %r != %r" % (reread.version, version0 + 2))
    step("patchFeatureFlag %s /environments/production/on (on=True, _version %d)" % (flag_key, turned_on.version))

    # 11. Audit log: list entries and find ours (getAuditLogEntries).
    entries = audit.get_audit_log_entries(limit=20)
    check(entries is not None and entries.items is not None, "getAuditLogEntries returned no items")
    ours = [e for e in entries.items if mentions_flag(e, project_key, flag_key, flag_name)]
    check(ours, "none of the %d newest audit log entries mentions flag %s: %r" % (
        len(entries.items), flag_key, [(e.kind, e.name, [a.resource for a in e.accesses]) for e in entries.items]))
    with_comment = [e for e in ours if e.comment in (patch_comment, on_comment)]
    chosen = with_comment[0] if with_comment else ours[0]
    step("getAuditLogEntries (%d entries, %d about %s, %d with our patch comments)" % (
        len(entries.items), len(ours), flag_key, len(with_comment)))

    # 12. Get one entry in detail (getAuditLogEntry).
    detail = audit.get_audit_log_entry(chosen.id)
    check(detail.id == chosen.id, "getAuditLogEntry _id %r != %r" % (detail.id, chosen.id))
    check(detail.kind == "flag", "audit entry kind %r != 'flag'" % detail.kind)
    check(mentions_flag(detail, project_key, flag_key, flag_name), "audit entry %s does not mention flag %s" % (detail.id, flag_key))
    check(detail.comment == chosen.comment, "detail comment %r != listing comment %r" % (detail.comment, chosen.comment))
    step("getAuditLogEntry %s (kind %s, name %r, comment %r)" % (detail.id, detail.kind, detail.name, detail.comment))


def main():
    base_url = os.environ.get("FLAGSTAFF_URL", "").strip()
    token = os.environ.get("FLAGSTAFF_TOKEN", "").strip()
    if not base_url or not token:
        print("FLAGSTAFF_URL and FLAGSTAFF_TOKEN must be set", file=sys.stderr)
        return 2
    print("launchdarkly-api %s against %s" % (launchdarkly_api.__version__, base_url), flush=True)
    try:
        run(base_url, token)
    except ApiException as exc:
        print("FAILED: HTTP %s %s (response body above)" % (exc.status, exc.reason), file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - report anything and fail
        print("FAILED: %s: %s" % (type(exc).__name__, exc), file=sys.stderr)
        return 1
    print("all steps passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
