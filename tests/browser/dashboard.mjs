// The staff dashboard in a real headless Chromium (Debian's /usr/bin/chromium),
// driven by playwright-core; started by tests/blackbox/web.rs, which passes
// in LRS_BROWSER_PLAN a JSON file: the server's address, the staff accounts
// (user name, generated password, TOTP secret), the figures it expects
// (computed from what it sent) and where screenshots go.
//
// Checks: login with password and a TOTP code computed here (RFC 6238 with
// node's crypto), the figures on the cards, month switch, previous month,
// drill-down to a library, the CSV download's content, logout; the library
// staff's own dashboard, the learners page and setting a module ready; the
// privacy officer's page; a learner's own progress page after their login
// through the OpenID provider; axe-core with the WCAG 2.2 A and AA rules
// (tags wcag2a, wcag2aa, wcag21a, wcag21aa, wcag22aa) on every page at
// 1280 px and at 320 px with zero violations; keyboard only on every page:
// Tab reaches the skip link first, then every visible control, each with a
// visible focus ring and not hidden (2.4.7, 2.4.11); no page-wide
// horizontal scroll at 1280, 640 (1280 at 200 % zoom), 375 and 320 px
// (1280 at 400 %, 1.4.10); screenshots at 375x812 and 1280x900.
//
// Prints one line per check and "all browser checks passed" at the end;
// exits 1 on any failure.

import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { createHmac } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const plan = JSON.parse(readFileSync(process.env.LRS_BROWSER_PLAN, 'utf8'));
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const base = plan.base_url;
mkdirSync(plan.screenshots, { recursive: true });

let passed = 0;
const failures = [];
function check(name, ok, detail = '') {
  if (ok) {
    passed += 1;
    console.log(`ok   ${name}`);
  } else {
    failures.push(`${name}: ${detail}`);
    console.log(`FAIL ${name}: ${detail}`);
  }
}

// --- TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30 s), by hand -------------------
function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/=+$/, '').toUpperCase()) {
    value = (value << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}
function hotp(secret, counter) {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const digest = createHmac('sha1', base32(secret)).update(message).digest();
  const offset = digest[19] & 0x0f;
  const code = (digest.readUInt32BE(offset) & 0x7fffffff) % 1000000;
  return String(code).padStart(6, '0');
}
check('TOTP by hand meets RFC 6238', hotp('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', 1) === '287082');
const usedStep = new Map();
async function freshCode(secret) {
  for (;;) {
    const now = Math.floor(Date.now() / 30000);
    const step = Math.max(now, (usedStep.get(secret) ?? 0) + 1);
    if (step <= now + 1) {
      usedStep.set(secret, step);
      return hotp(secret, step);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

// --- helpers ------------------------------------------------------------
const dutch = (n) => n.toLocaleString('nl-NL');
const FIGURE_ORDER = [
  'active_users', 'enrolled_participants', 'participants_started',
  'courses_started', 'courses_completed', 'hits',
];

// The WCAG 2.2 A and AA rules of axe-core (2.2 adds target size, 2.5.8, to
// the 2.0 and 2.1 rules; its other new criteria are checked by hand or by
// keyboard() below).
const WCAG_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'];
const axeRuns = [];

async function axe(page, name) {
  // At the desktop width and at 320 px (a phone, and 1280 px at 400 % zoom).
  for (const [width, height] of [[1280, 900], [320, 640]]) {
    await page.setViewportSize({ width, height });
    await page.evaluate(axeSource);
    const result = await page.evaluate((tags) =>
      window.axe.run(document, { runOnly: { type: 'tag', values: tags } }), WCAG_TAGS);
    const detail = result.violations
      .map((v) => `${v.id} (${v.impact}, ${v.tags.filter((t) => t.startsWith('wcag')).join(' ')}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`)
      .join('; ');
    axeRuns.push({ page: name, width, violations: result.violations.length, passes: result.passes.length });
    check(`axe WCAG 2.2 A/AA: ${name} at ${width}px (${result.passes.length} rules pass)`, result.violations.length === 0, detail);
  }
  await page.setViewportSize({ width: 1280, height: 900 });
}

// Keyboard only, from the top of the freshly loaded page: the first Tab
// reaches the skip link (2.4.1), then Tab reaches every visible control (a
// radio group counts once: arrows move inside it) (2.1.1), each with a
// visible focus ring of at least 2 px (2.4.7) and not hidden behind other
// content (2.4.11), and focus does not get stuck (2.1.2).
async function keyboard(page, name) {
  await page.setViewportSize({ width: 1280, height: 900 });
  // Without the fragment: a skip link's #main would start the Tab order there.
  await page.goto(page.url().split('#')[0]);
  const total = await page.evaluate(() => {
    const selector = 'a[href], button, input:not([type="hidden"]), select, textarea, summary, [tabindex]:not([tabindex="-1"])';
    const groups = new Set();
    const controls = [...document.querySelectorAll(selector)].filter((el) => {
      if (el.disabled || el.getClientRects().length === 0) return false;
      if (el.type === 'radio') {
        const group = document.querySelector(`input[type="radio"][name="${el.name}"]:checked`)
          ?? document.querySelector(`input[type="radio"][name="${el.name}"]`);
        if (group !== el || groups.has(el.name)) return false;
        groups.add(el.name);
      }
      return true;
    });
    controls.forEach((el, i) => { el.kbIndex = i; });
    return controls.length;
  });
  const reached = new Set();
  const stops = [];
  for (let i = 0; i < total + 3; i += 1) {
    await page.keyboard.press('Tab');
    const at = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return null;
      const style = getComputedStyle(el);
      const rect = el.getBoundingClientRect();
      const x = Math.min(Math.max(rect.left + rect.width / 2, 0), innerWidth - 1);
      const y = Math.min(Math.max(rect.top + rect.height / 2, 0), innerHeight - 1);
      const hit = document.elementFromPoint(x, y);
      const label = (el.getAttribute('aria-label') || el.textContent || el.value || el.name || '').trim().replace(/\s+/g, ' ').slice(0, 40);
      return {
        index: el.kbIndex ?? -1,
        what: `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''} "${label}"`,
        skip: el.classList.contains('skip'),
        ring: el.matches(':focus-visible') && style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2,
        shown: rect.width > 0 && rect.height > 0 && rect.bottom > 0 && rect.top < innerHeight
          && hit !== null && (hit === el || el.contains(hit) || hit.contains(el)),
      };
    });
    if (at === null || (stops.length > 0 && at.index === stops[0].index)) break;
    stops.push(at);
    reached.add(at.index);
  }
  const unknown = stops.filter((s) => s.index < 0);
  check(`keyboard: ${name}: the first Tab reaches the skip link`, stops.length > 0 && stops[0].skip, stops[0]?.what ?? 'nothing');
  check(`keyboard: ${name}: Tab reaches all ${total} controls`, reached.size === total && unknown.length === 0,
    `reached ${reached.size} of ${total}; unexpected stops ${unknown.map((s) => s.what).join(', ')}`);
  const noRing = stops.filter((s) => !s.ring).map((s) => s.what);
  check(`keyboard: ${name}: a visible focus ring at every stop`, noRing.length === 0, noRing.join(', '));
  const hidden = stops.filter((s) => !s.shown).map((s) => s.what);
  check(`keyboard: ${name}: the focused control is never hidden`, hidden.length === 0, hidden.join(', '));
}

async function cards(page) {
  return page.evaluate(() => Object.fromEntries(
    [...document.querySelectorAll('.card[data-figure]')].map((card) => [
      card.dataset.figure, card.querySelector('.value').textContent.trim(),
    ])));
}

async function checkCards(page, name, expected) {
  const shown = await cards(page);
  for (const key of FIGURE_ORDER) {
    check(`${name}: ${key}`, shown[key] === dutch(expected[key]), `shown ${shown[key]}, expected ${dutch(expected[key])}`);
  }
}

async function checkTop(page, name, id, expected) {
  const counts = await page.evaluate((figureId) => {
    const caption = document.getElementById(`${figureId}-caption`);
    if (!caption) return null;
    return [...caption.parentElement.querySelectorAll('tbody tr')].map((row) => row.lastElementChild.textContent.trim());
  }, id);
  const want = expected.map(([, count]) => dutch(count));
  if (want.length === 0) {
    check(`${name}: ${id} empty`, counts === null || counts.length === 0, JSON.stringify(counts));
  } else {
    check(`${name}: ${id} counts in order`, JSON.stringify(counts) === JSON.stringify(want), `shown ${JSON.stringify(counts)}, expected ${JSON.stringify(want)}`);
  }
}

async function screenshots(page, name) {
  // 640 px (1280 px at 200 % zoom, 1.4.4) and 320 px (the smallest phones,
  // and 1280 px at 400 % zoom: WCAG 1.4.10) are only checked; 375 and 1280
  // are also kept as pictures.
  for (const [label, width, height] of [['desktop', 1280, 900], ['phone', 375, 812], [null, 640, 450], [null, 320, 640]]) {
    await page.setViewportSize({ width, height });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(`${name} at ${width}px: no page-wide horizontal scroll`, overflow <= 0, `${overflow}px wider than the window`);
    if (label) {
      await page.screenshot({ path: join(plan.screenshots, `${name}-${label}.png`), fullPage: true });
    }
  }
  await page.setViewportSize({ width: 1280, height: 900 });
}

async function login(page, who, { checkCodePage = false } = {}) {
  await page.goto(`${base}/login`);
  await page.fill('#username', who.username);
  await page.fill('#password', who.password);
  await Promise.all([page.waitForURL(/\/login\/code/), page.click('form[action="/login"] button[type=submit]')]);
  await axe(page, 'code page');
  if (checkCodePage) {
    await keyboard(page, 'code page');
    await screenshots(page, 'code');
  }
  await page.fill('#code', await freshCode(who.secret));
  await Promise.all([page.waitForURL(/\/dashboard/), page.click('form[action="/login/code"] button[type=submit]')]);
}

// --- the run ----------------------------------------------------------------
const profile = mkdtempSync(join(tmpdir(), 'lrs-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: plan.chromium,
  headless: true,
  locale: 'nl-NL',
  viewport: { width: 1280, height: 900 },
  acceptDownloads: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const page = context.pages()[0] ?? (await context.newPage());
const consoleErrors = [];
let expectingError = false;
page.on('console', (message) => {
  if (message.type() === 'error' && !expectingError) consoleErrors.push(`${message.text()} (${message.location().url})`);
});

try {
  // Login page: Dutch, accessible, skip link first in the tab order.
  await page.goto(`${base}/login`);
  check('login page is Dutch', (await page.getAttribute('html', 'lang')) === 'nl');
  await axe(page, 'login page');
  await screenshots(page, 'login');
  await page.keyboard.press('Tab');
  check('Tab reaches the skip link first', await page.evaluate(() => document.activeElement.classList.contains('skip')));
  await page.keyboard.press('Enter');
  check('the skip link moves focus to main', await page.evaluate(() => document.activeElement.id === 'main'));
  await keyboard(page, 'login page');

  // KB staff: password and TOTP.
  await login(page, plan.kb, { checkCodePage: true });
  check('logged in as the KB', (await page.textContent('.who')).includes('Karin Analist'));
  const cookies = await context.cookies();
  check('one cookie, __Host- and strict', cookies.length === 1 && cookies[0].name === '__Host-lrs_session'
    && cookies[0].httpOnly && cookies[0].secure && cookies[0].sameSite === 'Strict', JSON.stringify(cookies));

  // Keyboard: Tab reaches the month picker.
  let reached = false;
  for (let i = 0; i < 25 && !reached; i += 1) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement.id === 'month');
  }
  check('Tab reaches the month picker', reached);

  // Switch to the generated month with the picker.
  await page.selectOption('#month', plan.month);
  await Promise.all([page.waitForURL(new RegExp(`month=${plan.month}`)), page.click('form.picker button[type=submit]')]);
  await checkCards(page, `total ${plan.month}`, plan.expected.total);
  await checkTop(page, `total ${plan.month}`, 'top-started', plan.expected.total.top_started);
  await checkTop(page, `total ${plan.month}`, 'top-completed', plan.expected.total.top_completed);
  if (plan.expected.total.top_started.length > 0) {
    const [firstCourse] = plan.expected.total.top_started[0];
    const firstLabel = await page.evaluate(() =>
      document.querySelector('#top-started-caption').parentElement.querySelector('tbody tr td:nth-child(2)').textContent);
    check('the top 10 names the course from the course model', firstLabel === plan.course_names[firstCourse],
      `${firstLabel} vs ${plan.course_names[firstCourse]}`);
  }
  check('the breakdown lists the library', (await page.locator('table.breakdown').textContent()).includes(plan.library.isil));
  await axe(page, 'dashboard (KB, total)');
  await keyboard(page, 'dashboard (KB, total)');
  await screenshots(page, 'dashboard');

  // Sort the breakdown by a column (a link; aria-sort says how).
  await Promise.all([page.waitForURL(/sort=active_users/), page.click('table.breakdown thead a[href*="sort=active_users"]')]);
  check('sorting marks the column', (await page.getAttribute('table.breakdown th[aria-sort]', 'aria-sort')) !== null);

  // The month before, by its link.
  await Promise.all([page.waitForURL(new RegExp(`month=${plan.previous_month}`)), page.click('a[rel=prev]')]);
  await checkCards(page, `total ${plan.previous_month}`, plan.expected.previous_total);

  // Drill down to the library.
  await page.goto(`${base}/dashboard?month=${plan.month}`);
  await Promise.all([
    page.waitForURL(new RegExp(`library=${plan.library.isil}`)),
    page.click(`table.breakdown a[href*="library=${plan.library.isil}"]`),
  ]);
  await checkCards(page, `library ${plan.library.isil}`, plan.expected.library);
  check('drill-down names the library', (await page.textContent('main .lead')).includes(plan.library.name));
  await axe(page, 'drill-down (one library)');
  await keyboard(page, 'drill-down (one library)');
  await screenshots(page, 'drilldown');

  // Download the total's CSV and read it.
  await page.goto(`${base}/dashboard?month=${plan.month}`);
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click('a[href*="format=csv"]'),
  ]);
  const csvPath = await download.path();
  const csv = readFileSync(csvPath, 'utf8');
  check('CSV starts with a byte order mark', csv.charCodeAt(0) === 0xfeff);
  check('CSV file name', /^maandcijfers-\d{4}-\d{2}-totaal\.csv$/.test(download.suggestedFilename()), download.suggestedFilename());
  const lines = csv.slice(1).split('\r\n');
  const header = lines[0].split(';');
  const row = lines[1].split(';');
  check('CSV header is Dutch', header[0] === 'Maand' && header.includes('Actieve gebruikers'), lines[0]);
  check('CSV row is the month', row[0] === plan.month, lines[1]);
  const want = FIGURE_ORDER.map((k) => String(plan.expected.total[k]));
  check('CSV figures equal the expected', JSON.stringify(row.slice(2)) === JSON.stringify(want), `${lines[1]} vs ${want}`);
  const topStart = lines.indexOf('Top 10 gestarte cursussen');
  const topRows = lines.slice(topStart + 2, topStart + 2 + plan.expected.total.top_started.length)
    .map((l) => l.split(';')).map((f) => [f[2], Number(f[3])]);
  check('CSV top 10 started equals the expected', JSON.stringify(topRows) === JSON.stringify(plan.expected.total.top_started),
    `${JSON.stringify(topRows)} vs ${JSON.stringify(plan.expected.total.top_started)}`);
  check('CSV has a row per library', lines.some((l) => l.startsWith(`${plan.library.isil};`)));

  // English.
  await page.goto(`${base}/dashboard?month=${plan.month}&lang=en`);
  check('English on request', (await page.getAttribute('html', 'lang')) === 'en'
    && (await page.textContent('h1')).startsWith('Monthly figures'));
  await axe(page, 'dashboard in English');
  await keyboard(page, 'dashboard in English');

  // The privacy officer's page (the KB's role holds privacy.reports here).
  await page.goto(`${base}/privacy?lang=nl`);
  const privacyTitle = await page.textContent('h1');
  check('the privacy page opens', privacyTitle.startsWith('Anonimiseringsrapporten'), privacyTitle);
  await axe(page, 'privacy reports');
  await keyboard(page, 'privacy reports');
  await screenshots(page, 'privacy');
  await page.goto(`${base}/dashboard?month=${plan.month}&lang=nl`);

  // Log out.
  await Promise.all([page.waitForURL(/\/login\?bye=1/), page.click('form.logout button')]);
  check('logged out', (await page.textContent('main')).includes('U bent uitgelogd'));
  await page.goto(`${base}/dashboard`);
  check('after logout the dashboard asks for a login', page.url().includes('/login'));

  // Library staff: their own figures, no one else's.
  await login(page, plan.library);
  await page.goto(`${base}/dashboard?month=${plan.month}`);
  await checkCards(page, 'library staff see their library', plan.expected.library);
  check('library staff have no scope picker', (await page.locator('#scope').count()) === 0);
  expectingError = true;
  const forbidden = await page.goto(`${base}/dashboard?month=${plan.month}&scope=total`);
  expectingError = false;
  check('library staff get 403 for the total', forbidden.status() === 403, String(forbidden.status()));
  await axe(page, '403 page');
  expectingError = true;
  await keyboard(page, '403 page');
  expectingError = false;

  // Learners: filter by a course, set a module ready for one learner.
  await page.goto(`${base}/learners`);
  await axe(page, 'learners');
  await keyboard(page, 'learners');
  const courseValues = await page.$$eval('#course option', (options) => options.map((o) => o.value).filter(Boolean));
  check('the course filter offers courses', courseValues.length > 0, JSON.stringify(courseValues));
  await page.selectOption('#course', courseValues[0]);
  await Promise.all([page.waitForURL(/course=/), page.click('form.picker button[type=submit]')]);
  const learnerBoxes = page.locator('input[name=learner]');
  check('learners are listed', (await learnerBoxes.count()) > 0);
  await axe(page, 'learners filtered by course');
  await keyboard(page, 'learners filtered by course');
  await learnerBoxes.first().check();
  await page.locator('input[name=module]').first().check();
  await Promise.all([page.waitForURL(/assigned=1/), page.click('fieldset.assign > button[type=submit]')]);
  check('the assignment is confirmed', (await page.textContent('.notice.ok')).includes('Opgeslagen voor 1'));
  check('the module shows as ready', (await page.textContent('table.learners')).includes('(klaargezet)'));
  await axe(page, 'learners after assigning');
  await keyboard(page, 'learners after assigning');
  // Open the first learner's modules: the screenshot shows progress per module.
  await page.locator('table.learners details summary').first().click();
  await axe(page, 'learners with modules shown');
  await screenshots(page, 'learners');

  // Staff login through the OpenID provider: out to it and back (the
  // provider's redirect is cross-site; the callback page carries on).
  await Promise.all([page.waitForURL(/\/login\?bye=1/), page.click('form.logout button')]);
  await page.goto(`${base}/login`);
  await axe(page, 'login page with the provider button');
  await keyboard(page, 'login page with the provider button');
  await Promise.all([page.waitForURL(/\/dashboard/, { timeout: 15000 }), page.click(`text=${plan.oidc.button}`)]);
  check('logged in through the OpenID provider', (await page.textContent('.who')).includes(plan.oidc.name));
  await checkCards(page, 'the provider\'s KB login sees the total', await (async () => {
    await page.goto(`${base}/dashboard?month=${plan.month}`);
    return plan.expected.total;
  })());

  // A learner: through the provider to their own progress page, on a server
  // whose provider also signs learners in (the browser's cookie for
  // 127.0.0.1 is shared by the servers: each login replaces it).
  const learnerBase = plan.learner.base_url;
  await page.goto(`${learnerBase}/login`);
  check('the login page invites learners', (await page.textContent('main')).includes('om uw eigen voortgang te zien'));
  await axe(page, 'login page for learners too');
  await Promise.all([page.waitForURL(/\/my-progress/, { timeout: 15000 }), page.click(`text=${plan.learner.button}`)]);
  check('the learner lands on their own page', (await page.textContent('h1')) === 'Mijn voortgang');
  check('the page names the learner', (await page.textContent('.who')).includes(plan.learner.name));
  const mine = await page.textContent('main');
  for (const course of plan.learner.courses) {
    check(`the learner sees their course ${course}`, mine.includes(course));
  }
  for (const other of plan.learner.absent) {
    check(`the learner's page has nothing of another learner: ${other}`, !(await page.content()).includes(other));
  }
  check('the learner has no staff menu', (await page.locator('a[href="/dashboard"]').count()) === 0);
  await axe(page, 'my progress (learner)');
  await keyboard(page, 'my progress (learner)');
  await screenshots(page, 'my-progress');
  await page.goto(`${learnerBase}/my-progress?lang=en`);
  check('the learner page in English', (await page.textContent('h1')) === 'My progress'
    && (await page.getAttribute('html', 'lang')) === 'en');
  await axe(page, 'my progress in English');
  await keyboard(page, 'my progress in English');
  await page.goto(`${learnerBase}/my-progress?lang=nl`);
  await Promise.all([page.waitForURL(/\/login\?bye=1/), page.click('form.logout button')]);
  check('the learner logged out', (await page.textContent('main')).includes('U bent uitgelogd'));

  // Idle expiry, on a second server whose sessions end after a few seconds
  // without a request (the browser's cookie for 127.0.0.1 is shared by both
  // servers, so this comes last).
  const idleBase = plan.idle.base_url;
  await page.goto(`${idleBase}/login`);
  await page.fill('#username', plan.idle.username);
  await page.fill('#password', plan.idle.password);
  await Promise.all([page.waitForURL(/\/login\/code/), page.click('form[action="/login"] button[type=submit]')]);
  await page.fill('#code', await freshCode(plan.idle.secret));
  await Promise.all([page.waitForURL(/\/dashboard/), page.click('form[action="/login/code"] button[type=submit]')]);
  check('logged in on the short-idle server', (await page.locator('.who').count()) === 1);
  await page.waitForTimeout((plan.idle.idle_seconds + 1.5) * 1000);
  await page.reload();
  check('after the idle time the session has ended', page.url().includes('/login') && page.url().includes('expired=1'), page.url());
  check('the login page says so', (await page.textContent('main')).includes('Uw sessie is verlopen'));
  await axe(page, 'login page after the session ended');

  check('no errors in the browser console', consoleErrors.length === 0, consoleErrors.join(' | '));
} catch (error) {
  failures.push(`the run stopped: ${error.stack ?? error}`);
  console.log(`FAIL the run stopped: ${error.stack ?? error}`);
  try {
    await page.screenshot({ path: join(plan.screenshots, 'failure.png'), fullPage: true });
    console.log(`page at failure: ${page.url()}`);
  } catch { /* nothing more to show */ }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

const pagesChecked = new Set(axeRuns.map((r) => r.page));
console.log(`axe WCAG 2.2 A/AA: ${axeRuns.length} runs on ${pagesChecked.size} pages, `
  + `${axeRuns.reduce((n, r) => n + r.violations, 0)} violations`);
console.log(`${passed} passed, ${failures.length} failed`);
if (failures.length > 0) {
  process.exit(1);
}
console.log('all browser checks passed');
