#!/usr/bin/env node
// handlebars.js 4.7.7 side of the template render benchmark (see ../README.md).
//
// Workload (identical to crates/flagstaff-template/examples/render_corpus.rs):
//   every auditLogEventsHook template file of the conformance catalogue (compiled once)
//   x the 17 sample contexts (JSON-escaped for .json/.json.hbs templates), each with
//   `formVariables` = {...formVariableValues[integration].formVariables.defaults, oauth}
//   from golden/inputs.json. Contexts are prepared before timing; one "pass" renders every
//   (template, context) pair once; passes repeat for N seconds after a 1 s warm-up.
//
// Usage: node bench.js [seconds=5]
// Conformance data: $FLAGSTAFF_CONFORMANCE_DIR, else <repo>/../shared/conformance.
'use strict';

const fs = require('fs');
const path = require('path');
const Handlebars = require('handlebars');

const seconds = Number(process.argv[2] || 5);
const conformance =
  process.env.FLAGSTAFF_CONFORMANCE_DIR ||
  path.join(__dirname, '..', '..', '..', 'shared', 'conformance');
const catalogue = path.join(conformance, 'integration-framework');

// ---- helpers, written from the integration-framework spec (§3.2) ----------------------
const hb = Handlebars.create();
function equalBlock(a, b, options) {
  return a === b ? options.fn(this) : options.inverse(this);
}
hb.registerHelper('equal', equalBlock);
hb.registerHelper('equalWithElse', equalBlock);
hb.registerHelper('pathEncode', (v) => encodeURI(v));
hb.registerHelper('queryEncode', (v) => encodeURIComponent(v));
hb.registerHelper(
  'basicAuthHeaderValue',
  (user, pass) => 'Basic ' + Buffer.from(user + ':' + pass).toString('base64'),
);
const two = (n) => String(n).padStart(2, '0');
hb.registerHelper('formatWithOffset', (ms, offsetSeconds, format) => {
  const date = new Date(ms + 1000 * offsetSeconds);
  switch (format) {
    case 'seconds':
      return Math.round(date.getTime() / 1000);
    case 'rfc3339':
      return date.toISOString();
    case 'simple': {
      // dateformat 'yyyy-mm-dd h:MM:ss' (12-hour, unpadded hour) in UTC.
      const hour = date.getUTCHours() % 12 || 12;
      return `${date.getUTCFullYear()}-${two(date.getUTCMonth() + 1)}-${two(date.getUTCDate())} ${hour}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())}`;
    }
    default: // 'milliseconds' and anything else
      return date.getTime();
  }
});

// utils/json-escape.js semantics: every string value becomes JSON.stringify(s).slice(1, -1).
function jsonEscape(value) {
  if (typeof value === 'string') return JSON.stringify(value).slice(1, -1);
  if (Array.isArray(value)) return value.map(jsonEscape);
  if (value !== null && typeof value === 'object') {
    const out = {};
    for (const key of Object.keys(value)) out[key] = jsonEscape(value[key]);
    return out;
  }
  return value;
}
const isJsonTemplate = (name) => /\.json(\.hbs)?$/i.test(name);

// ---- workload ---------------------------------------------------------------------------
const readJson = (p) => JSON.parse(fs.readFileSync(p, 'utf8'));
const inputs = readJson(path.join(conformance, 'golden', 'inputs.json'));

const samples = [];
const sampleRoot = path.join(catalogue, 'sample-context');
for (const group of fs.readdirSync(sampleRoot).sort()) {
  for (const file of fs.readdirSync(path.join(sampleRoot, group)).sort()) {
    samples.push(readJson(path.join(sampleRoot, group, file)));
  }
}

const jobs = [];
const integrationsDir = path.join(catalogue, 'integrations');
let templateCount = 0;
for (const integration of fs.readdirSync(integrationsDir).sort()) {
  const manifestPath = path.join(integrationsDir, integration, 'manifest.json');
  if (!fs.existsSync(manifestPath)) continue;
  const manifest = readJson(manifestPath);
  const hook = manifest.capabilities && manifest.capabilities.auditLogEventsHook;
  if (!hook || !hook.templates) continue;
  const files = [...new Set(Object.values(hook.templates))].sort();
  const values = (inputs.formVariableValues[integration] || {}).formVariables || {};
  const oauth = manifest.requiresOAuth
    ? { baseURI: '$OAUTH_BASE_URI', accessToken: '$OAUTH_ACCESS_TOKEN' }
    : null;
  const formVariables = { ...(values.defaults || {}), oauth };
  for (const file of files) {
    const source = fs.readFileSync(path.join(integrationsDir, integration, file), 'utf8');
    const template = hb.compile(source);
    templateCount++;
    for (const sample of samples) {
      const context = isJsonTemplate(file) ? jsonEscape(sample) : structuredClone(sample);
      context.formVariables = formVariables;
      jobs.push([template, context]);
    }
  }
}

function pass() {
  let bytes = 0;
  for (const [template, context] of jobs) bytes += Buffer.byteLength(template(context));
  return bytes;
}

const bytesPerPass = pass();
let end = process.hrtime.bigint() + 1_000_000_000n;
while (process.hrtime.bigint() < end) pass(); // warm-up

let renders = 0;
const start = process.hrtime.bigint();
end = start + BigInt(Math.round(seconds * 1e9));
let now = start;
while (now < end) {
  pass();
  renders += jobs.length;
  now = process.hrtime.bigint();
}
const elapsed = Number(now - start) / 1e9;
console.log(
  `handlebars.js ${Handlebars.VERSION} (node ${process.version}): templates=${templateCount} contexts=${samples.length} ` +
    `bytes_per_pass=${bytesPerPass}`,
);
console.log(
  `renders=${renders} seconds=${elapsed.toFixed(3)} renders_per_sec=${Math.round(renders / elapsed)}`,
);
