// End-to-end check of the LRS with a real, unmodified xAPI client library
// (@xapi/xapi, pinned in package.json). Statements (single, batch, by id, by
// agent + verb, voiding), State (set / merge / get / ids / delete) and an
// Activity Profile (create / get / conditional update / delete).
//
//   LRS_ENDPOINT=http://127.0.0.1:8080/xapi/ LRS_KEY=... LRS_SECRET=... node e2e.mjs
//
// Exits 0 when every check passes; otherwise prints every failed check and
// exits 1 (2 when the environment is incomplete).

import XAPI from "@xapi/xapi";
import { createHash, randomUUID } from "node:crypto";

const { LRS_ENDPOINT, LRS_KEY, LRS_SECRET } = process.env;
if (!LRS_ENDPOINT || !LRS_KEY || !LRS_SECRET) {
  console.error("set LRS_ENDPOINT, LRS_KEY and LRS_SECRET");
  process.exit(2);
}

const xapi = new XAPI({
  endpoint: LRS_ENDPOINT,
  auth: XAPI.toBasicAuth(LRS_KEY, LRS_SECRET),
  version: "1.0.3",
});

const failures = [];
let checks = 0;

function check(what, condition, detail) {
  checks += 1;
  if (!condition) {
    failures.push(detail === undefined ? what : `${what}: ${detail}`);
  }
}

function same(what, actual, expected) {
  const a = JSON.stringify(canonical(actual));
  const e = JSON.stringify(canonical(expected));
  check(what, a === e, `expected ${e}, got ${a}`);
}

function canonical(value) {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical(value[k])]),
    );
  }
  return value;
}

function describe(error) {
  const response = error && error.response;
  if (response) {
    return `HTTP ${response.status} ${JSON.stringify(response.data)}`;
  }
  return String(error && error.stack ? error.stack : error);
}

/** Runs a step; a thrown error is a failure of that step, not of the run. */
async function step(what, body) {
  try {
    await body();
  } catch (error) {
    failures.push(`${what}: ${describe(error)}`);
  }
}

/** Expects the call to be refused with the given HTTP status. */
async function refused(what, status, call) {
  try {
    const response = await call();
    check(what, false, `expected HTTP ${status}, got HTTP ${response.status}`);
  } catch (error) {
    const got = error && error.response ? error.response.status : describe(error);
    check(what, got === status, `expected HTTP ${status}, got ${got}`);
  }
}

const sha1 = (text) => createHash("sha1").update(text).digest("hex");

const run = randomUUID();
const learner = {
  objectType: "Agent",
  name: "E2E Leerling",
  mbox: `mailto:e2e-${run}@example.nl`,
};
const activityId = `https://courses.example.nl/e2e/${run}`;
const experienced = { id: "http://adlnet.gov/expapi/verbs/experienced", display: { "en-US": "experienced" } };
const completed = { id: "http://adlnet.gov/expapi/verbs/completed", display: { "en-US": "completed" } };

function statement(verb, suffix) {
  return {
    id: randomUUID(),
    actor: learner,
    verb,
    object: { objectType: "Activity", id: `${activityId}/${suffix}` },
  };
}

// ---- Statements --------------------------------------------------------
const single = statement(experienced, "intro");
const batch = [statement(completed, "module-1"), statement(completed, "module-2"), statement(experienced, "module-3")];

await step("sendStatement", async () => {
  const response = await xapi.sendStatement({ statement: single });
  same("sendStatement answers the statement's id", response.data, [single.id]);
});

await step("sendStatements (batch of 3)", async () => {
  const response = await xapi.sendStatements({ statements: batch });
  same("sendStatements answers the ids in order", response.data, batch.map((s) => s.id));
});

for (const sent of [single, ...batch]) {
  await step(`getStatement ${sent.id}`, async () => {
    const response = await xapi.getStatement({ statementId: sent.id });
    const got = response.data;
    check(`getStatement ${sent.id}: id`, got.id === sent.id, `got ${got.id}`);
    check(`getStatement ${sent.id}: actor mbox`, got.actor && got.actor.mbox === learner.mbox, JSON.stringify(got.actor));
    check(`getStatement ${sent.id}: verb`, got.verb && got.verb.id === sent.verb.id, JSON.stringify(got.verb));
    check(`getStatement ${sent.id}: object`, got.object && got.object.id === sent.object.id, JSON.stringify(got.object));
    check(`getStatement ${sent.id}: stored`, typeof got.stored === "string", JSON.stringify(got.stored));
    check(`getStatement ${sent.id}: authority`, got.authority !== undefined, "no authority");
  });
}

async function idsFor(verb) {
  const response = await xapi.getStatements({ agent: { mbox: learner.mbox }, verb: verb.id });
  return response.data.statements.map((s) => s.id).sort();
}

await step("getStatements agent + verb", async () => {
  same("query agent + completed", await idsFor(completed), [batch[0].id, batch[1].id].sort());
  same("query agent + experienced", await idsFor(experienced), [single.id, batch[2].id].sort());
});

let voidingId;
await step("voidStatement", async () => {
  const response = await xapi.voidStatement({ actor: learner, statementId: single.id });
  check("voidStatement answers one id", Array.isArray(response.data) && response.data.length === 1, JSON.stringify(response.data));
  voidingId = response.data[0];
});

await refused("getStatement of a voided statement", 404, () => xapi.getStatement({ statementId: single.id }));

await step("getVoidedStatement", async () => {
  const response = await xapi.getVoidedStatement({ voidedStatementId: single.id });
  check("getVoidedStatement returns the voided statement", response.data.id === single.id, JSON.stringify(response.data.id));
});

await step("query after voiding", async () => {
  // 2.1.4: the voided statement is left out; the voiding statement targets
  // it (StatementRef), so it meets the agent + verb filter in its place.
  same(
    "query agent + experienced: the voided one left out, the voiding one in",
    await idsFor(experienced),
    [batch[2].id, voidingId].sort(),
  );
  const voided = await xapi.getStatements({ agent: { mbox: learner.mbox }, verb: "http://adlnet.gov/expapi/verbs/voided" });
  same("the voiding statement is found by its verb", voided.data.statements.map((s) => s.id), [voidingId]);
});

// ---- State ---------------------------------------------------------------
const stateParams = { agent: { mbox: learner.mbox }, activityId, stateId: "bookmark" };
const registration = randomUUID();

await step("setState (PUT)", async () => {
  const response = await xapi.setState({ ...stateParams, state: { page: 3, done: false } });
  check("setState answers 204", response.status === 204, `HTTP ${response.status}`);
});

await step("getState after setState", async () => {
  const response = await xapi.getState(stateParams);
  same("getState returns the document", response.data, { page: 3, done: false });
  const etag = response.headers.etag;
  check("getState ETag is the quoted SHA-1 of the content", typeof etag === "string" && /^"[0-9a-f]{40}"$/.test(etag), etag);
});

await step("createState (POST merges)", async () => {
  const response = await xapi.createState({ ...stateParams, state: { done: true, score: 0.9 } });
  check("createState answers 204", response.status === 204, `HTTP ${response.status}`);
  const merged = await xapi.getState(stateParams);
  same("the merged document", merged.data, { page: 3, done: true, score: 0.9 });
});

await step("state with a registration is a separate document", async () => {
  await xapi.setState({ ...stateParams, registration, state: "plain text state", contentType: "text/plain" });
  const scoped = await xapi.getState({ ...stateParams, registration });
  same("registration-scoped state", scoped.data, "plain text state");
  check("its ETag is the SHA-1 of the text", scoped.headers.etag === `"${sha1("plain text state")}"`, scoped.headers.etag);
  const unscoped = await xapi.getState(stateParams);
  same("the state without registration is untouched", unscoped.data, { page: 3, done: true, score: 0.9 });
});

await step("getStates (ids)", async () => {
  const response = await xapi.getStates({ agent: { mbox: learner.mbox }, activityId, registration });
  same("ids of the registration", response.data, ["bookmark"]);
});

await step("deleteState", async () => {
  const response = await xapi.deleteState(stateParams);
  check("deleteState answers 204", response.status === 204, `HTTP ${response.status}`);
});
await refused("getState after deleteState", 404, () => xapi.getState(stateParams));

await step("deleteStates (registration)", async () => {
  await xapi.deleteStates({ agent: { mbox: learner.mbox }, activityId, registration });
  const response = await xapi.getStates({ agent: { mbox: learner.mbox }, activityId, registration });
  same("no ids left for the registration", response.data, []);
});

// ---- Activity Profile ----------------------------------------------------
const profileParams = { activityId, profileId: "course-settings" };
let profileEtag;

await step("setActivityProfile with If-None-Match: *", async () => {
  const response = await xapi.setActivityProfile({
    ...profileParams,
    profile: { language: "nl-NL", attempts: 2 },
    etag: "*",
    matchHeader: "If-None-Match",
  });
  check("setActivityProfile answers 204", response.status === 204, `HTTP ${response.status}`);
});

await step("getActivityProfile", async () => {
  const response = await xapi.getActivityProfile(profileParams);
  same("getActivityProfile returns the document", response.data, { language: "nl-NL", attempts: 2 });
  profileEtag = response.headers.etag;
  check("the profile has an ETag", typeof profileEtag === "string", String(profileEtag));
  check("the profile has Last-Modified", typeof response.headers["last-modified"] === "string", "missing");
});

await refused("setActivityProfile with If-None-Match: * on an existing profile", 412, () =>
  xapi.setActivityProfile({ ...profileParams, profile: { clobbered: true }, etag: "*", matchHeader: "If-None-Match" }),
);

await step("setActivityProfile with If-Match: current ETag", async () => {
  await xapi.setActivityProfile({ ...profileParams, profile: { language: "en-US" }, etag: profileEtag, matchHeader: "If-Match" });
  const response = await xapi.getActivityProfile(profileParams);
  same("the profile was replaced", response.data, { language: "en-US" });
});

await refused("setActivityProfile with a stale If-Match", 412, () =>
  xapi.setActivityProfile({ ...profileParams, profile: { stale: true }, etag: profileEtag, matchHeader: "If-Match" }),
);

await step("getActivityProfiles (ids)", async () => {
  const response = await xapi.getActivityProfiles({ activityId });
  same("profile ids of the activity", response.data, ["course-settings"]);
});

await step("deleteActivityProfile", async () => {
  const current = await xapi.getActivityProfile(profileParams);
  await xapi.deleteActivityProfile({ ...profileParams, etag: current.headers.etag });
});
await refused("getActivityProfile after delete", 404, () => xapi.getActivityProfile(profileParams));

// ---- Result --------------------------------------------------------------
if (failures.length > 0) {
  console.error(`${failures.length} of ${checks}+ checks failed against ${LRS_ENDPOINT}:`);
  for (const failure of failures) console.error(`  - ${failure}`);
  process.exit(1);
}
console.log(`all ${checks} checks passed against ${LRS_ENDPOINT}`);
