// Browser test of the operator's console (/console/): the real `colloquy` binary with an
// admin token, visitors chatting from other browser contexts, and headless Chromium
// (Debian's package) driven by playwright-core. Run with `npm ci && npm run test:console`
// in this folder.
//
// Environment: COLLOQUY_BIN (default $CARGO_TARGET_DIR/debug/colloquy, then
// target/debug/colloquy), CHROMIUM (default: chromium on PATH), CONSOLE_ARTIFACTS (where
// screenshots go; default <target>/console-artifacts), COLLOQUY_REQUIRE_SERVICES=1 (a
// missing browser fails instead of skipping), CONSOLE_STORE (the server's --store,
// default `memory`; the store must start empty, e.g. a fresh `sqlite:` file or a
// Redis with its own CONSOLE_REDIS_PREFIX).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "../..");
const TARGET = process.env.CARGO_TARGET_DIR || path.join(REPO, "target");
const ARTIFACTS = process.env.CONSOLE_ARTIFACTS || path.join(TARGET, "console-artifacts");
const REQUIRED = ["1", "true"].includes((process.env.COLLOQUY_REQUIRE_SERVICES || "").toLowerCase());
const TOKEN = "console-browser-test-7f3a9c1e5b2d8f4a6c0e";
const WAIT = 15_000; // every single wait
const LIVE = 2_000; // a visitor's new conversation shows in the inbox within this
const SUITE_BUDGET = 170_000; // the whole file

const watchdog = setTimeout(() => {
  console.error(`console test: over its ${SUITE_BUDGET / 1000} s budget, giving up`);
  process.exit(1);
}, SUITE_BUDGET);
watchdog.unref();

function findBinary() {
  const candidates = [
    process.env.COLLOQUY_BIN,
    path.join(TARGET, "debug", "colloquy"),
    path.join(REPO, "target", "debug", "colloquy"),
  ].filter(Boolean);
  const found = candidates.find((p) => existsSync(p));
  assert.ok(found, `no colloquy binary (looked at ${candidates.join(", ")}); run cargo build -p colloquy-server`);
  return found;
}

function findChromium() {
  if (process.env.CHROMIUM) return existsSync(process.env.CHROMIUM) ? process.env.CHROMIUM : null;
  for (const name of ["chromium", "chromium-browser"]) {
    try {
      return execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim() || null;
    } catch {
      /* not this one */
    }
  }
  return null;
}

const browserPath = findChromium();
const skip = browserPath
  ? false
  : "no chromium on this machine (apt-get install chromium); set COLLOQUY_REQUIRE_SERVICES=1 to fail instead";
if (!browserPath && REQUIRED) {
  console.error("console test: chromium is required (COLLOQUY_REQUIRE_SERVICES=1) but missing");
  process.exit(1);
}
if (skip) console.log(`SKIPPED: ${skip}`);

/** Resolves with what `promise` gives, or rejects after `ms`. */
function deadline(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

let serverOutput = ""; // everything the server printed (checked for the token)

/** Starts the binary on a free loopback port; resolves with {child, base}. */
function startServer(bin, args, env) {
  const child = spawn(bin, ["--bind", "127.0.0.1:0", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, COLLOQUY_LOG_LEVEL: "info", ...env },
  });
  child.stderr.on("data", (d) => (serverOutput += d));
  const listening = new Promise((resolve, reject) => {
    child.stdout.on("data", (d) => {
      serverOutput += d;
      const m = /colloquy listening on (http:\/\/\S+)/.exec(serverOutput);
      if (m) resolve({ child, base: m[1] });
    });
    child.on("exit", (code) => reject(new Error(`colloquy exited (${code}): ${serverOutput}`)));
  });
  return deadline(listening, 20_000, "colloquy to listen");
}

let server;
let knowledgeDir; // a temporary folder with the knowledge base
let api; // the server's base URL
let browser;
const requested = []; // every URL any page asked for
const created = { sessions: 0, visitorMessages: 0, answers: 0, up: 0, down: 0 };

before(async () => {
  if (skip) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  console.log(`screenshots: ${ARTIFACTS}`);
  // A knowledge base of one page, so answers carry sources (or none: ungrounded).
  knowledgeDir = mkdtempSync(path.join(os.tmpdir(), "colloquy-console-"));
  mkdirSync(path.join(knowledgeDir, "docs"));
  writeFileSync(
    path.join(knowledgeDir, "docs", "shipping.md"),
    "# Shipping\n\n## Delivery times\n\nParcels are delivered within three working days by our courier.\n",
  );
  const knowledge = `sqlite:${path.join(knowledgeDir, "kb.db")}`;
  execFileSync(
    findBinary(),
    ["ingest", "--knowledge", knowledge, "--base-url", "https://docs.example.com/", path.join(knowledgeDir, "docs")],
    { stdio: "ignore", timeout: WAIT },
  );
  // The token travels in the environment, as the docs advise (never on a command line).
  const started = await startServer(
    findBinary(),
    ["--store", process.env.CONSOLE_STORE || "memory", "--echo-chunk-delay", "150ms", "--knowledge", knowledge],
    {
      COLLOQUY_ADMIN_TOKEN: TOKEN,
      ...(process.env.CONSOLE_REDIS_PREFIX ? { COLLOQUY_REDIS_PREFIX: process.env.CONSOLE_REDIS_PREFIX } : {}),
    },
  );
  server = started.child;
  api = started.base;
  browser = await chromium.launch({
    executablePath: browserPath,
    headless: true,
    timeout: 30_000,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  server?.kill("SIGTERM");
  if (knowledgeDir) rmSync(knowledgeDir, { recursive: true, force: true });
});
process.on("exit", () => server?.kill("SIGKILL"));
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(1));

// ---------------------------------------------------------------- helpers

/** The API as the operator (node's fetch, with the token). */
async function call(method, p, body) {
  const init = { method, headers: { authorization: `Bearer ${TOKEN}` } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await deadline(fetch(api + p, init), WAIT, `${method} ${p}`);
  const text = await r.text();
  return { status: r.status, headers: r.headers, body: text ? JSON.parse(text) : null };
}

/** A visitor: a browser context of its own, calling the chat API from the server's origin. */
async function newVisitor() {
  const context = await browser.newContext();
  context.setDefaultTimeout(WAIT);
  const page = await context.newPage();
  await page.goto(`${api}/healthz`);
  return {
    context,
    async session(body) {
      const s = await page.evaluate(async (b) => {
        const r = await fetch("/api/chats/sessions/", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(b),
        });
        return r.json();
      }, body);
      created.sessions += 1;
      return s;
    },
    /** Asks for a person (POST /sessions/{id}/handoff/). */
    async handoff(sessionId) {
      return page.evaluate(async (id) => {
        const r = await fetch(`/api/chats/sessions/${encodeURIComponent(id)}/handoff/`, { method: "POST" });
        return r.status;
      }, sessionId);
    },
    /** One streamed chat turn; resolves when the whole answer has arrived. */
    async chat(sessionId, message) {
      created.visitorMessages += 1;
      created.answers += 1;
      return page.evaluate(
        async ({ sessionId, message }) => {
          const r = await fetch("/api/chats/messages/chat/stream/", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ session_id: sessionId, message }),
          });
          return r.text();
        },
        { sessionId, message },
      );
    },
  };
}

/** A console page in a fresh context, recording every URL it requests. */
async function newConsole(viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1, acceptDownloads: true });
  context.setDefaultTimeout(WAIT);
  context.setDefaultNavigationTimeout(WAIT);
  context.on("request", (r) => requested.push(r.url()));
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  page.on("dialog", (d) => {
    console.error("unexpected dialog:", d.message());
    d.dismiss().catch(() => {});
  });
  // A flag the payloads would set, and every CSP violation, counted from the first script.
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`),
    );
  });
  await page.goto(`${api}/console/`);
  return page;
}

async function signIn(page, token = TOKEN) {
  await page.locator("#token").fill(token);
  await page.locator("#token").press("Enter");
}

async function signedIn(viewport) {
  const page = await newConsole(viewport);
  await signIn(page);
  await page.locator("#view-inbox").waitFor({ state: "visible" });
  return page;
}

async function openSession(page, uuid) {
  await page.evaluate((id) => (location.hash = `#session/${id}`), uuid);
  await page.locator(`#t-messages`).waitFor({ state: "attached" });
  await page.waitForFunction(
    (id) => document.querySelector("#t-session-id")?.textContent.includes(id),
    uuid,
    { timeout: WAIT },
  );
}

async function downloadText(page, button) {
  const [download] = await Promise.all([page.waitForEvent("download"), page.locator(button).click()]);
  const file = await download.path();
  return { name: download.suggestedFilename(), text: readFileSync(file, "utf8") };
}

/** Parses RFC 4180 CSV (every field quoted here). */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 1;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\r" && text[i + 1] === "\n") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      i += 1;
    } else field += c;
  }
  if (field || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

const screenshot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, name), fullPage: false });

// ---------------------------------------------------------------- tests

test("the console is served with a strict CSP and the security headers", { skip }, async () => {
  for (const p of ["/console/", "/console", "/console/console.js", "/console/uPlot.iife.min.js"]) {
    const r = await deadline(fetch(api + p), WAIT, p);
    assert.equal(r.status, 200, p);
    const csp = r.headers.get("content-security-policy") || "";
    assert.match(csp, /default-src 'self'/, p);
    assert.match(csp, /script-src 'self'/, p);
    assert.match(csp, /frame-ancestors 'none'/, p);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, p);
    assert.equal(r.headers.get("x-frame-options"), "DENY", p);
    assert.equal(r.headers.get("x-content-type-options"), "nosniff", p);
    assert.equal(r.headers.get("referrer-policy"), "no-referrer", p);
    await r.arrayBuffer();
  }
  const html = await (await fetch(`${api}/console/`)).text();
  assert.doesNotMatch(html, /<script>|<style|\sstyle=|\son[a-z]+=/i, "nothing inline");
});

test("a wrong token is told so; the right one signs in and stays out of URLs, cookies and localStorage", { skip }, async () => {
  const page = await newConsole();
  await signIn(page, "not-the-token-but-long-enough-0000000000");
  await page.waitForFunction(() => document.querySelector("#signin-error").textContent.includes("wrong"));
  assert.equal(await page.locator("#view-inbox").isVisible(), false);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, "a wrong token is not kept");

  await signIn(page);
  await page.locator("#view-inbox").waitFor({ state: "visible" });
  const stored = await page.evaluate(() => ({
    session: Object.values(sessionStorage),
    local: Object.keys(localStorage).length,
    cookie: document.cookie,
    url: location.href,
  }));
  assert.ok(stored.session.includes(TOKEN), "kept in sessionStorage");
  assert.equal(stored.local, 0, "nothing in localStorage");
  assert.equal(stored.cookie, "", "no cookie");
  assert.ok(!stored.url.includes(TOKEN), "not in the page's URL");

  // A reload stays signed in (the same tab); signing out forgets the token.
  await page.reload();
  await page.locator("#view-inbox").waitFor({ state: "visible" });
  await page.locator("#sign-out").click();
  await page.locator("#view-signin").waitFor({ state: "visible" });
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, "forgotten at sign-out");
  await page.context().close();
});

test("a visitor's conversation appears live, its answer streams in the transcript, an operator takes over", { skip }, async () => {
  const page = await signedIn();
  const visitor = await newVisitor();
  try {
    const session = await visitor.session({ external_user_id: "visitor-live" });
    // The visitor's first question; the inbox shows it within LIVE of being asked.
    const asked = visitor.chat(session.session_id, "Hello, is my parcel on its way?");
    await page
      .locator("#inbox-list a.row", { hasText: "Hello, is my parcel on its way?" })
      .waitFor({ timeout: LIVE });
    await asked;
    assert.ok(requested.some((u) => u.startsWith(`${api}/api/chats/inbox/`)), "the inbox endpoint");
    assert.equal(await page.locator("#inbox-note").isVisible(), false, "no fallback note");
    // Each row: first question, last message, count, when, state.
    const row = page.locator("#inbox-list a.row", { hasText: "Hello, is my parcel" });
    await page.waitForFunction(() =>
      [...document.querySelectorAll("#inbox-list a.row")].some(
        (r) => /2 messages/.test(r.textContent) && /Echo: Hello, is my parcel/.test(r.textContent),
      ),
    );
    assert.match(await row.locator(".row-meta").textContent(), /Active · 2 messages · visitor-live/);
    assert.match(await row.locator(".row-when time").getAttribute("datetime"), /^\d{4}-\d\d-\d\dT/);
    await row.click();
    await page.locator("#t-messages li.msg-assistant").waitFor();
    assert.match(await page.locator("#t-user").textContent(), /visitor-live/);

    // A second question: its answer is seen arriving, word by word, then stored.
    const words = "please tell me every step of the delivery from the warehouse to my door today";
    const answer = `Echo: ${words}`;
    const streamed = visitor.chat(session.session_id, words);
    await page.waitForFunction(
      (full) => {
        const text = document.querySelector("#t-messages .msg-streaming .msg-text")?.textContent || "";
        return text.length > 0 && text.length < full.length && full.startsWith(text);
      },
      answer,
      { timeout: WAIT },
    );
    await streamed;
    await page.waitForFunction(
      (full) => {
        const items = [...document.querySelectorAll("#t-messages li.msg-assistant")];
        return !document.querySelector(".msg-streaming") && items.at(-1)?.querySelector(".msg-text").textContent === full;
      },
      answer,
    );
    await screenshot(page, "console-streamed-1280x800.png");

    // Take over, reply as a named operator, hand back.
    await page.locator("#t-takeover").click();
    await page.locator("#t-handback").waitFor({ state: "visible" });
    assert.equal((await call("GET", `/api/chats/sessions/${session.id}/`)).body.responder, "human");
    await page.locator("#reply-name").fill("Ada");
    await page.locator("#reply-text").fill("Hi, I am Ada from support; I will check your parcel.");
    await page.locator("#reply-send").click();
    await page.locator("#t-messages li.msg-operator", { hasText: "I will check your parcel" }).waitFor();
    assert.match(await page.locator("#t-messages li.msg-operator .msg-role").textContent(), /Operator Ada/);
    const messages = (await call("GET", `/api/chats/messages/?session_id=${session.id}`)).body;
    const reply = messages.at(-1);
    assert.equal(reply.role, "assistant");
    assert.equal(reply.metadata.operator, "Ada");
    await page.locator("#t-handback").click();
    await page.locator("#t-takeover").waitFor({ state: "visible" });
    assert.equal((await call("GET", `/api/chats/sessions/${session.id}/`)).body.responder, "ai");
    assert.ok(
      requested.some((u) => u.includes(`/api/chats/sessions/${session.id}/events/`)),
      "the transcript follows the session's events",
    );
  } finally {
    await visitor.context.close();
    await page.context().close();
  }
});

test("a visitor asking for a person is listed first, as waiting; their new messages arrive live", { skip }, async () => {
  const page = await signedIn();
  const visitor = await newVisitor();
  try {
    const session = await visitor.session({ external_user_id: "visitor-waiting" });
    await visitor.chat(session.session_id, "I want to talk to a human");
    assert.equal(await visitor.handoff(session.session_id), 200);
    const first = page.locator("#inbox-list li:first-child a.row");
    await page.waitForFunction(() => {
      const row = document.querySelector("#inbox-list li:first-child a.row");
      return row?.textContent.includes("talk to a human") && row.querySelector(".state-waiting");
    });
    assert.equal(await page.locator("#waiting-badge").textContent(), "1");
    assert.match(await page.title(), /^\(1\)/);
    await first.click();
    await page.locator("#t-state .state-waiting").waitFor();
    // While a person is asked for, the visitor's message is stored without an answer
    // and shows in the open transcript as it happens.
    await visitor.chat(session.session_id, "Hello? Anyone there?");
    created.answers -= 1; // no answer is generated for this one
    await page.locator("#t-messages li.msg-user", { hasText: "Anyone there?" }).waitFor();
    assert.equal(await page.locator("#t-messages li.msg-assistant", { hasText: "Anyone there?" }).count(), 0);
    // The operator's reply answers the request: the session is with a person now.
    assert.equal(await page.locator("#t-takeover").isVisible(), false, "already with a person");
    await page.locator("#reply-name").fill("Linus");
    await page.locator("#reply-text").fill("Yes, I am here.");
    await page.locator("#reply-send").click();
    await page.locator("#t-state .state-human").waitFor();
    await page.locator("#t-handback").click();
    await page.locator("#t-state .state-active").waitFor();
  } finally {
    await visitor.context.close();
    await page.context().close();
  }
});

test("search finds a message by a word; exports match the API; delete removes it", { skip }, async () => {
  const visitor = await newVisitor();
  const page = await signedIn();
  try {
    const session = await visitor.session({ external_user_id: "visitor-search" });
    await visitor.chat(session.session_id, "My aardvark ate the invoice, can you resend it?");
    await visitor.chat(session.session_id, '=HYPERLINK("http://evil.example","click") and "quotes", commas\nnew line');

    await page.locator("#search-q").fill("aardvark");
    await page.locator("#search-q").press("Enter");
    const hit = page.locator("#search-list a.row", { hasText: "aardvark" }).first();
    await hit.waitFor();
    assert.equal(await hit.locator("mark").first().textContent(), "aardvark");
    assert.ok(
      requested.some((u) => u.startsWith(`${api}/api/chats/messages/search/?q=aardvark`)),
      "the search endpoint",
    );
    await hit.click();
    await page.waitForFunction((id) => document.querySelector("#t-session-id")?.textContent.includes(id), session.id);
    await page.locator("#t-messages li.msg-user", { hasText: "aardvark" }).waitFor();

    const fromApi = (await call("GET", `/api/chats/sessions/${session.id}/export/`)).body;
    assert.equal(fromApi.messages.length, 4);

    const json = await downloadText(page, "#t-export-json");
    assert.match(json.name, /\.json$/);
    assert.deepEqual(JSON.parse(json.text), fromApi, "the JSON export is the API's export");

    const csv = await downloadText(page, "#t-export-csv");
    assert.match(csv.name, /\.csv$/);
    assert.ok(csv.text.startsWith("\ufeff"), "a BOM for spreadsheets");
    const rows = parseCsv(csv.text.slice(1));
    assert.deepEqual(rows[0].slice(0, 7), ["session_id", "external_user_id", "message_id", "timestamp", "role", "operator", "message"]);
    assert.equal(rows.length, 1 + fromApi.messages.length);
    fromApi.messages.forEach((m, i) => {
      assert.equal(rows[i + 1][2], m.id);
      assert.equal(rows[i + 1][4], m.role);
      const expected = /^[=+\-@\t\r]/.test(m.message) ? `'${m.message}` : m.message;
      assert.equal(rows[i + 1][6], expected, "the text, a formula defused");
    });
    assert.ok(rows.some((r) => r[6].startsWith("'=HYPERLINK")), "formula injection defused");

    const md = await downloadText(page, "#t-export-md");
    assert.match(md.name, /\.md$/);
    for (const m of fromApi.messages) {
      for (const line of m.message.split("\n")) assert.ok(md.text.includes(`> ${line}`), line);
    }

    await page.locator("#t-delete").click();
    await page.locator("#t-confirm-yes").click();
    await page.locator("#view-inbox:not(.reading)").waitFor();
    assert.equal((await call("GET", `/api/chats/sessions/${session.id}/`)).status, 404);
  } finally {
    await visitor.context.close();
    await page.context().close();
  }
});

test("privacy: export then erase by external_user_id leaves nothing in the API", { skip }, async () => {
  const visitor = await newVisitor();
  const page = await signedIn();
  const user = "visitor-erase-<b>me</b>";
  try {
    const a = await visitor.session({ external_user_id: user });
    const b = await visitor.session({ external_user_id: user });
    await visitor.chat(a.session_id, "Please forget me");
    await visitor.chat(b.session_id, "Really, forget everything");
    await page.locator("#nav-privacy").click();
    await page.locator("#p-user").fill(user);
    await page.locator("#p-user").press("Enter");
    await page.waitForFunction(() => /2 sessions and 4 messages/.test(document.querySelector("#p-status").textContent));
    const exported = await downloadText(page, "#p-export");
    const fromApi = (await call("GET", `/api/chats/sessions/export/?external_user_id=${encodeURIComponent(user)}`)).body;
    assert.deepEqual(JSON.parse(exported.text), fromApi);
    await page.locator("#p-erase").click();
    await page.locator("#p-confirm-yes").click();
    await page.waitForFunction(() => /Erased 2 sessions and 4 messages/.test(document.querySelector("#p-result").textContent));
    const q = encodeURIComponent(user);
    assert.deepEqual((await call("GET", `/api/chats/sessions/?external_user_id=${q}`)).body, []);
    assert.deepEqual((await call("GET", `/api/chats/sessions/export/?external_user_id=${q}`)).body.sessions, []);
    for (const s of [a, b]) assert.equal((await call("GET", `/api/chats/sessions/${s.id}/`)).status, 404);
  } finally {
    await visitor.context.close();
    await page.context().close();
  }
});

test("stored XSS: visitor strings render as inert text in every view", { skip }, async () => {
  const payload = `<img src=x onerror="window.__xss='img'"><script>window.__xss='script'</script><b id="injected">bold</b>`;
  const session = (
    await call("POST", "/api/chats/sessions/", {
      session_id: "javascript:window.__xss",
      external_user_id: payload,
      metadata: { [payload]: payload, operator: payload },
    })
  ).body;
  created.sessions += 1;
  const user = (
    await call("POST", "/api/chats/messages/", { session_id: session.id, message: `xsscheck ${payload}`, metadata: { note: payload } })
  ).body;
  created.visitorMessages += 1;
  // An operator's name is at most 100 characters.
  const operator = `<img src=x onerror="window.__xss='op'">`;
  const answer = (
    await call("POST", "/api/chats/messages/", {
      session_id: session.id,
      role: "assistant",
      message: `xsscheck answer ${payload}`,
      metadata: {
        operator,
        sources: [
          { id: payload, title: payload, document: payload, uri: "javascript:window.__xss='href'" },
          { id: "ok", title: "A real page", uri: "https://example.com/faq?x=<b>" },
        ],
      },
    })
  ).body;
  assert.ok(session.id && user.id && answer.id, "the payloads were stored");
  const fb = await call("POST", `/api/chats/messages/${answer.id}/feedback/`, { rating: "down", comment: payload });
  assert.equal(fb.status, 200);
  created.down += 1;
  assert.ok(user.id);

  const page = await signedIn();
  const inert = async (where) => {
    const found = await page.evaluate(() => ({
      flag: window.__xss,
      injected: document.querySelectorAll("#injected, img[src='x'], b#injected").length,
      scripts: document.scripts.length,
      badLinks: [...document.querySelectorAll("a[href]")]
        .map((a) => a.getAttribute("href"))
        .filter((h) => !/^(#|https?:|blob:)/.test(h)),
      violations: window.__cspViolations,
    }));
    assert.equal(found.flag, undefined, `${where}: a payload ran`);
    assert.equal(found.injected, 0, `${where}: an injected element exists`);
    assert.equal(found.scripts, 2, `${where}: a script element was added`);
    assert.deepEqual(found.badLinks, [], `${where}: a link to a script`);
    assert.deepEqual(found.violations, [], `${where}: something tried to break the CSP`);
  };

  // Inbox
  await page.locator("#inbox-list a.row", { hasText: "xsscheck" }).waitFor();
  assert.ok((await page.locator("#inbox-list").textContent()).includes(payload), "shown as text");
  await inert("inbox");
  // Search results
  await page.locator("#search-q").fill("xsscheck");
  await page.locator("#search-q").press("Enter");
  await page.locator("#search-list a.row").first().waitFor();
  await inert("search");
  // Transcript
  await openSession(page, session.id);
  await page.locator("#t-messages li.msg-assistant .msg-feedback").waitFor();
  const transcriptText = await page.locator("#transcript").textContent();
  assert.ok(transcriptText.includes(`xsscheck ${payload}`), "the message as text");
  assert.ok(transcriptText.includes(`Operator ${operator}`), "the operator's name as text");
  assert.ok(transcriptText.includes("javascript:window.__xss"), "the session_id as text");
  assert.equal(await page.locator("#t-messages .msg-sources a").count(), 1, "only the https source is a link");
  await inert("transcript");
  // Privacy and the dashboard
  await page.locator("#nav-privacy").click();
  await page.locator("#p-user").fill(payload);
  await page.locator("#p-user").press("Enter");
  await page.waitForFunction(() => /1 session and 2 messages/.test(document.querySelector("#p-status").textContent));
  await inert("privacy");
  await page.locator("#nav-dashboard").click();
  await page.locator("#dash-totals dd").first().waitFor();
  await inert("dashboard");
  await page.context().close();
  // Out of the screenshots.
  assert.equal((await call("DELETE", `/api/chats/sessions/${session.id}/`)).status, 204);
});

test("an answer's sources show in the transcript; unanswerable questions are counted", { skip }, async () => {
  const visitor = await newVisitor();
  const page = await signedIn();
  try {
    const session = await visitor.session({ external_user_id: "visitor-rag" });
    await visitor.chat(session.session_id, "When does the courier come by?");
    await visitor.chat(session.session_id, "Do you sell xylophone lessons for toddlers?");
    await visitor.chat(session.session_id, "do you sell   XYLOPHONE lessons for toddlers");
    await openSession(page, session.id);
    const grounded = page.locator("#t-messages li.msg-assistant", { hasText: "When does the courier come" });
    const link = grounded.locator(".msg-sources a");
    await link.first().waitFor();
    assert.match(await link.first().getAttribute("href"), /^https:\/\/docs\.example\.com\/shipping\.md/);
    assert.match(await link.first().textContent(), /Delivery times/);
    const ungrounded = page.locator("#t-messages li.msg-assistant", { hasText: "xylophone" });
    assert.equal(await ungrounded.count(), 2);
    assert.match(await ungrounded.first().locator(".msg-sources").textContent(), /No sources/);
  } finally {
    await visitor.context.close();
    await page.context().close();
  }
});

test("the dashboard shows the counts the test created", { skip }, async () => {
  // One more rating, up this time, given by the operator.
  const live = (await call("GET", "/api/chats/sessions/?external_user_id=visitor-live")).body[0];
  const answers = (await call("GET", `/api/chats/messages/?session_id=${live.id}&role=assistant`)).body;
  assert.equal((await call("POST", `/api/chats/messages/${answers[0].id}/feedback/`, { rating: "up" })).status, 200);
  created.up += 1;

  const stats = (await call("GET", "/api/chats/stats/")).body;
  assert.equal(stats.totals.sessions, created.sessions, "the API counts what the test created");
  assert.equal(stats.totals.visitor_messages, created.visitorMessages);
  assert.equal(stats.totals.feedback_up, created.up);
  assert.equal(stats.totals.feedback_down, created.down);

  const page = await signedIn();
  await page.locator("#nav-dashboard").click();
  const total = async (key) =>
    Number((await page.locator(`#dash-totals [data-counter="${key}"] dd`).textContent()).replace(/\D/g, ""));
  await page.locator('#dash-totals [data-counter="sessions"] dd').waitFor();
  assert.equal(await total("sessions"), created.sessions);
  assert.equal(await total("visitor_messages"), created.visitorMessages);
  assert.equal(await total("answers"), stats.totals.answers);
  assert.ok(stats.totals.answers >= created.answers);
  assert.equal(await total("feedback_up"), created.up);
  assert.equal(await total("feedback_down"), created.down);
  assert.ok((await page.locator(".charts canvas").count()) >= 3, "uPlot drew the charts");
  assert.equal(await total("ungrounded"), stats.totals.ungrounded);
  assert.equal(await total("handoffs"), stats.totals.handoffs);
  assert.ok(stats.totals.ungrounded >= 2);
  const question = stats.ungrounded_questions.find((q) => q.text.includes("xylophone"));
  assert.equal(question?.count, 2, JSON.stringify(stats.ungrounded_questions));
  const row = page.locator("#ungrounded tbody tr", { hasText: question.text });
  assert.equal(await row.locator("td").nth(1).textContent(), "2");
  await screenshot(page, "console-dashboard-1280x800.png");
  await page.context().close();
});

test("keyboard only: sign in, open a conversation, take over and reply", { skip }, async () => {
  const page = await newConsole();
  const focused = () =>
    page.evaluate(() => {
      const el = document.activeElement;
      const style = getComputedStyle(el);
      return {
        id: el.id,
        tag: el.tagName,
        cls: el.className,
        text: (el.textContent || "").trim().slice(0, 60),
        visible: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0,
      };
    });
  /** Tabs until `pred(focused)` holds (at most `max` presses); every stop shows its focus. */
  const tabTo = async (pred, what, max = 40) => {
    for (let i = 0; i < max; i += 1) {
      await page.keyboard.press("Tab");
      const f = await focused();
      if (f.tag !== "BODY" && f.tag !== "H2" && f.tag !== "MAIN") assert.ok(f.visible, `no visible focus on ${JSON.stringify(f)}`);
      if (pred(f)) return f;
    }
    throw new Error(`Tab never reached ${what}`);
  };
  assert.equal((await focused()).id, "token", "the token field has focus first");
  await page.keyboard.type(TOKEN);
  await page.keyboard.press("Enter");
  await page.locator("#view-inbox").waitFor({ state: "visible" });
  await page.locator("#inbox-list a.row", { hasText: "parcel" }).waitFor();
  await tabTo((f) => f.tag === "A" && f.cls.includes("row") && f.text.includes("parcel"), "the conversation");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.activeElement?.id === "t-title");
  await page.locator("#t-messages li").first().waitFor();
  await tabTo((f) => f.id === "t-takeover", "Take over");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.activeElement?.id === "t-handback");
  await tabTo((f) => f.id === "reply-name", "the name field");
  await page.keyboard.type("Grace");
  await tabTo((f) => f.id === "reply-text", "the message field");
  await page.keyboard.type("Typed without a mouse.");
  await tabTo((f) => f.id === "reply-send", "Send");
  await page.keyboard.press("Enter");
  await page.locator("#t-messages li.msg-operator", { hasText: "Typed without a mouse." }).waitFor();
  await page.keyboard.press("Shift+Tab");
  // The nav is reachable from the keyboard too.
  await tabTo((f) => f.id === "nav-dashboard", "the dashboard link", 80);
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.activeElement?.id === "dash-title");
  // Buttons are buttons: nothing else is made clickable.
  const fake = await page.evaluate(
    () => document.querySelectorAll("[onclick], div[tabindex]:not([tabindex='-1']), span[role=button], div[role=button]").length,
  );
  assert.equal(fake, 0);
  await page.context().close();
});

test("a narrow screen (768×1024) shows the list, then the transcript alone", { skip }, async () => {
  const page = await signedIn({ width: 768, height: 1024 });
  await page.locator("#inbox-list a.row").first().waitFor();
  assert.equal(await page.locator("#transcript").isVisible(), false);
  await screenshot(page, "console-inbox-768x1024.png");
  await page.locator("#inbox-list a.row", { hasText: "parcel" }).click();
  await page.locator("#t-messages li").first().waitFor();
  assert.equal(await page.locator("#inbox-list").isVisible(), false);
  await page.locator(".back").waitFor({ state: "visible" });
  await screenshot(page, "console-transcript-768x1024.png");
  await page.locator(".back").click();
  await page.locator("#inbox-list").waitFor({ state: "visible" });
  await page.context().close();
});

test("filters narrow the inbox; screenshots of a busy inbox", { skip }, async () => {
  const visitor = await newVisitor();
  try {
    const rated = await visitor.session({ external_user_id: "customer-1187" });
    await visitor.chat(rated.session_id, "Can I change the delivery address after ordering?");
    const answer = (await call("GET", `/api/chats/messages/?session_id=${rated.id}&role=assistant`)).body[0];
    await call("POST", `/api/chats/messages/${answer.id}/feedback/`, { rating: "down", comment: "Not helpful" });
    created.down += 1;
    const waiting = await visitor.session({ external_user_id: "customer-2045" });
    await visitor.chat(waiting.session_id, "My order arrived damaged, I need a refund");
    assert.equal(await visitor.handoff(waiting.session_id), 200);

    const page = await signedIn();
    await page.locator("#inbox-list a.row", { hasText: "arrived damaged" }).waitFor();
    await page.locator("#inbox-list a.row", { hasText: "delivery address" }).waitFor();
    // State: waiting only.
    await page.locator("#filters summary").click();
    await page.locator("#f-state").selectOption("waiting");
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll("#inbox-list a.row")];
      return rows.length > 0 && rows.every((r) => r.querySelector(".state-waiting"));
    });
    assert.ok((await page.locator("#inbox-list").textContent()).includes("arrived damaged"));
    // Has a down-rated answer.
    await page.locator("#f-state").selectOption("");
    await page.locator("#f-down").check();
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll("#inbox-list a.row")];
      return rows.length === 1 && rows[0].textContent.includes("delivery address");
    });
    await page.locator("#f-down").uncheck();
    // A date range: nothing happened yesterday.
    const yesterday = new Date(Date.now() - 86400000).toISOString().slice(0, 10);
    await page.locator("#f-from").fill(yesterday);
    await page.locator("#f-to").fill(yesterday);
    await page.locator("#f-to").dispatchEvent("change");
    await page.locator("#inbox-list li.empty").waitFor();
    await page.locator("#f-from").fill("");
    await page.locator("#f-to").fill("");
    await page.locator("#f-to").dispatchEvent("change");
    // A visitor's id.
    await page.locator("#f-user").fill("customer-1187");
    await page.locator("#f-user").press("Enter");
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll("#inbox-list a.row")];
      return rows.length === 1 && rows[0].textContent.includes("delivery address");
    });
    await page.locator("#filter-form button[type=reset]").click();
    await page.locator("#filters summary").click();
    await page.locator("#inbox-list a.row", { hasText: "arrived damaged" }).waitFor();

    // The README's screenshot: the waiting conversation first, a transcript open.
    await page.locator("#inbox-list a.row", { hasText: "parcel" }).click();
    await page.locator("#t-messages li.msg-operator").first().waitFor();
    await page.evaluate(() => document.activeElement?.blur());
    await page.mouse.move(0, 0);
    await screenshot(page, "console-1280x800.png");
    await page.setViewportSize({ width: 768, height: 1024 });
    await screenshot(page, "console-768x1024.png");
    await page.context().close();
  } finally {
    await visitor.context.close();
  }
});

test("the token never appeared in a URL or in the server's log", { skip }, async () => {
  assert.ok(requested.length > 20, `only ${requested.length} requests recorded`);
  const leaks = requested.filter((u) => u.includes(TOKEN) || u.includes(encodeURIComponent(TOKEN)));
  assert.deepEqual(leaks, []);
  assert.ok(serverOutput.includes("served"), "the access log was on");
  assert.ok(!serverOutput.includes(TOKEN), "the token is in the server's output");
});
