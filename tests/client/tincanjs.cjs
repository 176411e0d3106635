// A cmi5-like session through TinCanJS (npm `tincanjs`, pinned in
// package.json), the library most authoring tools embed, unmodified:
// the LMS's launch data and `launched`, the AU's initialized, progressed,
// state documents (bookmark, merged suspend data), an agent profile read,
// an activity profile, completed, passed and terminated, then the
// registration's statements read back. Also the traps docs/clients.md
// describes, as observed.
//
//   LRS_ENDPOINT=http://127.0.0.1:8080/xapi/ LRS_KEY=... LRS_SECRET=... XAPI_VERSION=1.0.2 node tincanjs.cjs
//
// XAPI_VERSION is one of TinCan.versions(): 1.0.2, 1.0.1, 1.0.0 (the session
// must pass) or 0.95, 0.9 (versions before 1.0, which the LRS refuses: the
// script checks that it does, with 400). Prints `observed: ...` lines, then
// `all N checks passed` and exits 0; else prints every failed check and
// exits 1 (2 when the environment is incomplete).

"use strict";

const TinCan = require("tincanjs");
const { randomUUID } = require("node:crypto");

const { LRS_ENDPOINT, LRS_KEY, LRS_SECRET, XAPI_VERSION } = process.env;
if (!LRS_ENDPOINT || !LRS_KEY || !LRS_SECRET || !XAPI_VERSION) {
  console.error("set LRS_ENDPOINT, LRS_KEY, LRS_SECRET and XAPI_VERSION");
  process.exit(2);
}
if (!TinCan.versions().includes(XAPI_VERSION)) {
  console.error(`TinCanJS speaks ${TinCan.versions().join(", ")}, not ${XAPI_VERSION}`);
  process.exit(2);
}

const lrs = new TinCan.LRS({
  endpoint: LRS_ENDPOINT,
  username: LRS_KEY,
  password: LRS_SECRET,
  version: XAPI_VERSION,
  allowFail: false,
});

const failures = [];
let checks = 0;
function check(what, condition, detail) {
  checks += 1;
  if (!condition) failures.push(detail === undefined ? what : `${what}: ${detail}`);
}
function observed(what) {
  console.log(`observed: ${what}`);
}

/** Calls a TinCanJS method with a callback; resolves to [err, result]. */
function call(method, ...args) {
  return new Promise((resolve) => {
    const cfg = args.pop() || {};
    cfg.callback = (err, result) => resolve([err, result]);
    lrs[method](...args, cfg);
  });
}

const run = randomUUID();
const registration = randomUUID();
const agent = new TinCan.Agent({
  account: { homePage: "https://bibliotheek.example.nl", name: `tincanjs-${run}` },
  name: "TinCanJS Leerling",
});
const course = `https://courses.example.nl/tincanjs/${run}`;
const au = new TinCan.Activity({
  id: `${course}/au-1`,
  definition: { type: "https://w3id.org/xapi/cmi5/activitytype/block", name: { "nl-NL": "Module 1" } },
});
const verb = (name) => ({ id: `http://adlnet.gov/expapi/verbs/${name}`, display: { "en-US": name } });

function statement(verbName, result) {
  return new TinCan.Statement({
    id: randomUUID(),
    actor: agent,
    verb: verb(verbName),
    target: au,
    result,
    context: {
      registration,
      contextActivities: {
        grouping: [{ id: course }],
        category: [{ id: "https://w3id.org/xapi/cmi5/context/categories/cmi5" }],
      },
    },
    timestamp: new Date().toISOString(),
  });
}

async function before10() {
  // Versions before 1.0: the LRS answers 400 (0.9 sends no version header
  // at all; 0.95 names a version the LRS does not speak).
  // A statement those versions can express (no context category).
  const plain = new TinCan.Statement({ id: randomUUID(), actor: agent, verb: verb("initialized"), target: au });
  const [err, xhr] = await call("saveStatement", plain, {});
  const status = xhr && xhr.status;
  check(`${XAPI_VERSION}: a statement is refused`, err !== null && status === 400, `err ${err}, HTTP ${status}`);
  const body = xhr && xhr.responseText ? xhr.responseText : "";
  check(`${XAPI_VERSION}: the error names the version header`, /X-Experience-API-Version/i.test(body), body);
  observed(`TinCanJS ${XAPI_VERSION}: HTTP ${status} ${body.slice(0, 160)}`);
}

async function session() {
  // ---- The LMS: launch data and `launched` ------------------------------
  const launchData = { contextTemplate: { registration }, launchMode: "Normal", moveOn: "CompletedAndPassed" };
  let [err, xhr] = await call("saveState", "LMS.LaunchData", launchData, {
    activity: au, agent, registration, contentType: "application/json",
  });
  check("PUT LMS.LaunchData", err === null && xhr.status === 204, `err ${err}, HTTP ${xhr && xhr.status}`);
  const launched = statement("launched");
  [err, xhr] = await call("saveStatement", launched, {});
  check("launched", err === null && xhr.status === 204, `err ${err}, HTTP ${xhr && xhr.status} ${xhr && xhr.responseText}`);

  // ---- The AU --------------------------------------------------------------
  let state;
  [err, state] = await call("retrieveState", "LMS.LaunchData", { activity: au, agent, registration });
  check("GET LMS.LaunchData", err === null && state !== null, `err ${err}`);
  if (state) {
    check("the launch data as sent", JSON.stringify(state.contents) === JSON.stringify(launchData), JSON.stringify(state.contents));
  }
  let profile;
  [err, profile] = await call("retrieveAgentProfile", "cmi5LearnerPreferences", { agent });
  check("an absent agent profile is null (404)", err === null && profile === null, `err ${err}, ${JSON.stringify(profile)}`);

  const sent = [launched];
  for (const [name, result] of [
    ["initialized", undefined],
    ["progressed", { extensions: { "https://w3id.org/xapi/cmi5/result/extensions/progress": 50 } }],
  ]) {
    const s = statement(name, result);
    [err, xhr] = await call("saveStatement", s, {});
    check(name, err === null, `err ${err}, ${xhr && xhr.responseText}`);
    sent.push(s);
  }

  // Bookmark (text) and suspend data (JSON, merged by POST).
  [err, xhr] = await call("saveState", "bookmark", "pagina-3", { activity: au, agent, registration, contentType: "text/plain" });
  check("PUT bookmark", err === null && xhr.status === 204, `err ${err}`);
  [err, state] = await call("retrieveState", "bookmark", { activity: au, agent, registration });
  check("GET bookmark", state && state.contents === "pagina-3", JSON.stringify(state && state.contents));
  for (const part of [{ pagina: 3 }, { score: 0.8 }]) {
    [err, xhr] = await call("saveState", "suspendData", part, {
      activity: au, agent, registration, contentType: "application/json", method: "POST",
    });
    check("POST suspendData", err === null && xhr.status === 204, `err ${err}, ${xhr && xhr.responseText}`);
  }
  [err, state] = await call("retrieveState", "suspendData", { activity: au, agent, registration });
  check("the merged suspend data", state && JSON.stringify(state.contents) === JSON.stringify({ pagina: 3, score: 0.8 }), JSON.stringify(state && state.contents));

  // An activity profile: TinCanJS sends If-None-Match: * on a first PUT.
  [err, xhr] = await call("saveActivityProfile", "course-settings", { taal: "nl-NL" }, {
    activity: au, contentType: "application/json",
  });
  check("PUT an activity profile", err === null && xhr.status === 204, `err ${err}, ${xhr && xhr.responseText}`);
  [err, profile] = await call("retrieveActivityProfile", "course-settings", { activity: au });
  check("GET the activity profile", profile && JSON.stringify(profile.contents) === JSON.stringify({ taal: "nl-NL" }), JSON.stringify(profile && profile.contents));
  if (profile) {
    [err, xhr] = await call("saveActivityProfile", "course-settings", { taal: "en-US" }, {
      activity: au, contentType: "application/json", lastSHA1: profile.etag,
    });
    check("PUT with If-Match: its ETag", err === null && xhr.status === 204, `err ${err}, ${xhr && xhr.responseText}`);
  }

  for (const [name, result] of [
    ["completed", { completion: true, duration: "PT4M30S" }],
    ["passed", { success: true, score: { scaled: 0.8 }, duration: "PT4M31S" }],
    ["terminated", { duration: "PT4M32S" }],
  ]) {
    const s = statement(name, result);
    [err, xhr] = await call("saveStatement", s, {});
    check(name, err === null, `err ${err}, ${xhr && xhr.responseText}`);
    sent.push(s);
  }

  // ---- Read back -------------------------------------------------------------
  let found;
  [err, found] = await call("queryStatements", { params: { registration, ascending: true } });
  const ids = found && found.statements ? found.statements.map((s) => s.id) : [];
  check("the registration's statements, in order", JSON.stringify(ids) === JSON.stringify(sent.map((s) => s.id)), `err ${err}, ${JSON.stringify(ids)}`);
  let one;
  [err, one] = await call("retrieveStatement", sent[4].id, {});
  check("a statement by id", one && one.id === sent[4].id && one.result && one.result.success === true, `err ${err}`);
  if (one) {
    check("its score", one.result.score && one.result.score.scaled === 0.8, JSON.stringify(one.result));
    check("its registration", one.context && one.context.registration === registration, JSON.stringify(one.context));
  }

  // ---- The trap: a JS object with the default content type ------------------
  [err, xhr] = await call("saveState", "objectAsDefault", { pagina: 4 }, { activity: au, agent, registration });
  check("PUT an object without a content type is accepted", err === null && xhr.status === 204, `err ${err}`);
  [err, state] = await call("retrieveState", "objectAsDefault", { activity: au, agent, registration });
  const stored = state ? state.contents : null;
  check("it comes back as the text [object Object]", stored === "[object Object]", JSON.stringify(stored));
  observed(`TinCanJS ${XAPI_VERSION}: saveState(key, {pagina: 4}) without contentType stores ${JSON.stringify(stored)} as ${state && state.contentType}`);
}

(async () => {
  try {
    if (XAPI_VERSION.startsWith("1.0")) {
      await session();
    } else {
      await before10();
    }
  } catch (error) {
    failures.push(`threw: ${error && error.stack ? error.stack : error}`);
  }
  if (failures.length > 0) {
    console.error(`${failures.length} of ${checks}+ checks failed (TinCanJS, xAPI ${XAPI_VERSION}):`);
    for (const failure of failures) console.error(`  - ${failure}`);
    process.exit(1);
  }
  console.log(`all ${checks} checks passed (TinCanJS, xAPI ${XAPI_VERSION})`);
})();
