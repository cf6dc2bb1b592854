// Browser test of the chat widget: the real `colloquy` binary, a host page on another
// origin that only holds the script tag, and headless Chromium (Debian's package)
// driven by playwright-core. Run with `npm ci && npm test` in this folder.
//
// Environment: COLLOQUY_BIN (default $CARGO_TARGET_DIR/debug/colloquy, then
// target/debug/colloquy), CHROMIUM (default: chromium on PATH), WIDGET_ARTIFACTS (where
// screenshots go; default <target>/widget-artifacts), COLLOQUY_REQUIRE_SERVICES=1 (a
// missing browser fails instead of skipping).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "../..");
const TARGET = process.env.CARGO_TARGET_DIR || path.join(REPO, "target");
const ARTIFACTS = process.env.WIDGET_ARTIFACTS || path.join(TARGET, "widget-artifacts");
const REQUIRED = ["1", "true"].includes(
  (process.env.COLLOQUY_REQUIRE_SERVICES || "").toLowerCase(),
);
const WAIT = 15_000; // every single wait
const SUITE_BUDGET = 280_000; // the whole file

const watchdog = setTimeout(() => {
  console.error(`widget test: over its ${SUITE_BUDGET / 1000} s budget, giving up`);
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
  assert.ok(
    found,
    `no colloquy binary (looked at ${candidates.join(", ")}); run cargo build -p colloquy-server`,
  );
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
  console.error("widget test: chromium is required (COLLOQUY_REQUIRE_SERVICES=1) but missing");
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

/** Starts the binary on a free loopback port; resolves with {child, base}. */
function startServer(bin, args) {
  const child = spawn(bin, ["--bind", "127.0.0.1:0", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, COLLOQUY_LOG_LEVEL: "warn" },
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const listening = new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /colloquy listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve({ child, base: m[1] });
    });
    child.on("exit", (code) => reject(new Error(`colloquy exited (${code}): ${stderr}`)));
  });
  return deadline(listening, 20_000, "colloquy to listen");
}

/** The host page: another origin, nothing but the script tag (and, for /hostile, rude CSS). */
function hostPage(api, hostile, attributes = "") {
  const css = hostile
    ? `<style>* { font-family: "Comic Sans MS", cursive !important; line-height: 3 !important;
         letter-spacing: 4px; box-sizing: content-box; } div, button { display: none !important;
         background: red !important; } textarea { width: 10px !important; }</style>`
    : "";
  const script = hostile
    ? `<script src="${api}/widget.js" defer></script>` // no data-api: the script's origin
    : `<script src="${api}/widget.js" data-api="${api}" data-external-user-id="visitor-42" ${attributes} defer></script>`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">${css}</head>
<body>${script}</body></html>`;
}

let server; // the colloquy process
let api; // its base URL
let slowServer; // another one, whose answers take seconds (a word every 200 ms)
let slowApi; // its base URL
let publicServer; // another one, in --access public mode with an admin token
let publicApi; // its base URL
const ADMIN = randomBytes(24).toString("hex"); // its admin token
let proxy; // a proxy to the public server, for dropped connections
let hurriedServer; // another public one, whose requests for a person time out after 2 s
let hurriedApi; // its base URL
const TIMEOUT_TEXT = "Sorry, nobody from the team is free right now. The assistant answers again.";
let host; // the host page's http server
let origin; // its origin
let browser;

before(async () => {
  if (skip) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  console.log(`screenshots and metrics: ${ARTIFACTS}`);
  host = http.createServer((req, res) => {
    const headers = { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" };
    if (req.url.startsWith("/csp")) {
      // A strict policy: nothing but the chat server's script and API.
      headers["content-security-policy"] =
        `default-src 'none'; script-src ${api}; connect-src ${api}`;
    }
    res.writeHead(200, headers);
    if (req.url.startsWith("/timeout")) return res.end(hostPage(hurriedApi, false));
    if (req.url.startsWith("/proxied")) return res.end(hostPage(proxy.base, false));
    if (req.url.startsWith("/public")) {
      // The public server's page; /public-nohandoff turns "Talk to a person" off.
      const off = req.url.startsWith("/public-nohandoff") ? 'data-handoff="off"' : "";
      return res.end(hostPage(publicApi, false, off));
    }
    const slow = req.url.startsWith("/slow"); // the page for the slow server
    res.end(hostPage(slow ? slowApi : api, req.url.startsWith("/hostile")));
  });
  await deadline(new Promise((r) => host.listen(0, "127.0.0.1", r)), WAIT, "host page server");
  origin = `http://127.0.0.1:${host.address().port}`;
  const started = await startServer(findBinary(), [
    "--store",
    "memory",
    "--echo-chunk-delay",
    "30ms",
    "--cors-origins",
    origin,
  ]);
  server = started.child;
  api = started.base;
  const slow = await startServer(findBinary(), [
    "--store",
    "memory",
    "--echo-chunk-delay",
    "200ms",
    "--cors-origins",
    origin,
  ]);
  slowServer = slow.child;
  slowApi = slow.base;
  const pub = await startServer(findBinary(), [
    "--store",
    "memory",
    "--access",
    "public",
    "--admin-token",
    ADMIN,
    "--echo-chunk-delay",
    "10ms",
    "--cors-origins",
    origin,
  ]);
  publicServer = pub.child;
  publicApi = pub.base;
  const hurried = await startServer(findBinary(), [
    "--store",
    "memory",
    "--access",
    "public",
    "--admin-token",
    ADMIN,
    "--handoff-timeout",
    "2s",
    "--handoff-timeout-message",
    TIMEOUT_TEXT,
    "--cors-origins",
    origin,
  ]);
  hurriedServer = hurried.child;
  hurriedApi = hurried.base;
  proxy = await cuttableProxy(publicApi);
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
  slowServer?.kill("SIGTERM");
  publicServer?.kill("SIGTERM");
  hurriedServer?.kill("SIGTERM");
  proxy?.close();
  host?.close();
  host?.closeAllConnections?.();
});
process.on("exit", () => {
  server?.kill("SIGKILL");
  slowServer?.kill("SIGKILL");
  publicServer?.kill("SIGKILL");
  hurriedServer?.kill("SIGKILL");
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => process.exit(1)); // runs the "exit" handler: no stray server
}

/** A fresh browser context (its own storage) and a page in it. */
async function newPage(viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  context.setDefaultTimeout(WAIT);
  context.setDefaultNavigationTimeout(WAIT);
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  return page;
}

// In the page: the widget's shadow root.
const shadow = () => document.querySelector("colloquy-chat").shadowRoot;

async function openPanel(page) {
  await page.locator(".launcher").click();
  await page.waitForFunction(() => {
    const root = document.querySelector("colloquy-chat").shadowRoot;
    const panel = root.querySelector(".panel");
    return (
      root.activeElement === root.querySelector("textarea") &&
      getComputedStyle(panel).opacity === "1" &&
      !root.querySelector(".log").hasAttribute("aria-busy") // the history has loaded
    );
  });
}

/** Sends `text` with Enter and waits for the complete echo answer. */
async function sendAndWait(page, text, rendered = `Echo: ${text}`) {
  const input = page.locator("textarea");
  await input.fill(text);
  await input.press("Enter");
  await waitForAnswer(page, rendered);
}

async function waitForAnswer(page, expected) {
  await page.waitForFunction((expected) => {
    const root = document.querySelector("colloquy-chat").shadowRoot;
    const bots = [...root.querySelectorAll(".msg.bot")];
    const send = root.querySelector(".send");
    return (
      bots.some((b) => b.textContent === expected) && send.getAttribute("aria-label") === "Send"
    );
  }, expected);
}

const bubbles = (page) =>
  page.evaluate(() =>
    [...document.querySelector("colloquy-chat").shadowRoot.querySelectorAll(".msg")].map((m) => ({
      role: m.classList.contains("user") ? "user" : "bot",
      text: m.textContent,
    })),
  );

/** Resolves with the first truthy value `check()` gives, polling for at most WAIT. */
async function until(check, what) {
  const end = Date.now() + WAIT;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out after ${WAIT} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100)); // between two polls
  }
}

/** The stored messages of a session, oldest first. */
async function storedMessages(base, sessionId, token) {
  const res = await fetch(`${base}/api/chats/messages/?session_id=${sessionId}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  assert.equal(res.status, 200);
  return res.json();
}

const storedSession = (page, base) =>
  page.evaluate((key) => localStorage.getItem(key), `colloquy:${base}:session`);

/** Records, at every change of the conversation, [answer length, send button label]. */
const recordAnswer = (page) =>
  page.evaluate(() => {
    const root = document.querySelector("colloquy-chat").shadowRoot;
    window.__answer = [];
    new MutationObserver(() => {
      const bots = root.querySelectorAll(".msg.bot");
      const last = bots[bots.length - 1];
      if (last?.textContent.startsWith("Echo:")) {
        const label = root.querySelector(".send").getAttribute("aria-label");
        window.__answer.push([last.textContent.length, label]);
      }
    }).observe(root.querySelector(".log"), { subtree: true, childList: true, characterData: true });
  });

/** Sends `text` with Enter and waits until some of the answer is shown, not all of it. */
async function sendAndWaitForChunk(page, text) {
  await page.locator("textarea").fill(text);
  await page.locator("textarea").press("Enter");
  await page.waitForFunction((full) => {
    const bots = document.querySelector("colloquy-chat").shadowRoot.querySelectorAll(".msg.bot");
    const shown = bots[bots.length - 1].textContent;
    return shown.startsWith("Echo:") && shown.length < full.length;
  }, `Echo: ${text}`);
}

const metrics = {};

test("the demo page serves the widget and it is interactive quickly", { skip }, async () => {
  const page = await newPage();
  await page.goto(`${api}/widget/demo`);
  await page.locator(".launcher").waitFor({ state: "visible" });
  const load = await page.evaluate(() => {
    const script = performance
      .getEntriesByType("resource")
      .find((e) => e.name.endsWith("/widget.js"));
    const start = performance.getEntriesByName("colloquy:start")[0];
    const ready = performance.getEntriesByName("colloquy:ready")[0];
    return {
      requested: script.startTime,
      loaded: script.responseEnd,
      start: start.startTime,
      ready: ready.startTime,
    };
  });
  // Click to an open panel with the cursor in the text box, measured in the page.
  const openMs = await page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const root = document.querySelector("colloquy-chat").shadowRoot;
        const t0 = performance.now();
        root.querySelector(".launcher").click();
        const check = () => {
          if (root.activeElement === root.querySelector("textarea"))
            resolve(performance.now() - t0);
          else if (performance.now() - t0 > 5000) reject(new Error("panel not interactive in 5 s"));
          else requestAnimationFrame(check);
        };
        check();
      }),
  );
  metrics.scriptRequestToReadyMs = +(load.ready - load.requested).toFixed(1);
  metrics.scriptLoadedToReadyMs = +(load.ready - load.loaded).toFixed(1);
  metrics.scriptRunToReadyMs = +(load.ready - load.start).toFixed(1);
  metrics.clickToInteractivePanelMs = +openMs.toFixed(1);
  metrics.scriptRequestToInteractivePanelMs = +(load.ready - load.requested + openMs).toFixed(1);
  console.log(
    `widget timing on the demo page: script request -> launcher ready ${metrics.scriptRequestToReadyMs} ms ` +
      `(script loaded -> ready ${metrics.scriptLoadedToReadyMs} ms, of which the widget's own ` +
      `set-up ${metrics.scriptRunToReadyMs} ms); click -> interactive panel ` +
      `${metrics.clickToInteractivePanelMs} ms; total ${metrics.scriptRequestToInteractivePanelMs} ms`,
  );
  const title = await page.evaluate(
    () => document.querySelector("colloquy-chat").shadowRoot.querySelector(".title").textContent,
  );
  assert.equal(title, "Colloquy demo");
  // A short conversation for the screenshot in the README.
  await sendAndWait(page, "Hello! Do you stream your answers word by word?");
  await page.waitForTimeout(250); // let the caret blink settle; not a synchronisation
  await page.screenshot({ path: path.join(ARTIFACTS, "demo.png") });
  await page.context().close();
});

test("chat from another origin: streamed answer, restored after a reload", { skip }, async () => {
  const page = await newPage();
  await page.goto(`${origin}/`);
  await openPanel(page);
  const welcome = await bubbles(page);
  assert.deepEqual(
    welcome.map((b) => b.role),
    ["bot"],
    "only the welcome message",
  );

  // Record the answer's length at every change of the conversation.
  await page.evaluate(() => {
    const root = document.querySelector("colloquy-chat").shadowRoot;
    window.__lengths = [];
    new MutationObserver(() => {
      const bots = root.querySelectorAll(".msg.bot");
      const last = bots[bots.length - 1];
      if (last?.textContent.startsWith("Echo:")) window.__lengths.push(last.textContent.length);
    }).observe(root.querySelector(".log"), { subtree: true, childList: true, characterData: true });
  });
  const message =
    "Tell me about your pricing plans for small teams, please, and whether there is a free trial";
  await sendAndWait(page, message);
  const expected = `Echo: ${message}`;
  const lengths = await page.evaluate(() => window.__lengths);
  const partial = new Set(lengths.filter((n) => n > 0 && n < expected.length));
  assert.ok(partial.size >= 2, `the answer grew in steps before completing: ${lengths}`);
  assert.equal(Math.max(...lengths), expected.length);
  const announced = await page.evaluate(
    () =>
      document.querySelector("colloquy-chat").shadowRoot.querySelector("[role=status]").textContent,
  );
  assert.equal(announced, expected, "the finished answer is in the live region");

  const sessionId = await page.evaluate(
    (key) => localStorage.getItem(key),
    `colloquy:${api}:session`,
  );
  assert.ok(sessionId, "the session id is kept in localStorage, keyed by the API");
  const session = await (await fetch(`${api}/api/chats/sessions/${sessionId}/`)).json();
  assert.equal(session.external_user_id, "visitor-42", "data-external-user-id reaches the session");

  await page.reload();
  await openPanel(page);
  await page.waitForFunction(
    () => document.querySelector("colloquy-chat").shadowRoot.querySelectorAll(".msg").length === 3,
  );
  assert.deepEqual(await bubbles(page), [
    welcome[0],
    { role: "user", text: message },
    { role: "bot", text: expected },
  ]);
  await page.context().close();
});

test("model and visitor text render inert: no markup, no javascript: links", { skip }, async () => {
  const page = await newPage();
  await page.goto(`${origin}/`);
  await openPanel(page);
  const payload =
    'Look <img src=x onerror="window.__xss=1"> and [x](javascript:window.__xss=2) ' +
    "or [y](JAVASCRIPT:window.__xss=3) but [docs](https://example.com/docs) and **bold** and `<b>code</b>`";
  await sendAndWait(
    page,
    payload,
    'Echo: Look <img src=x onerror="window.__xss=1"> and x or y but docs and bold and <b>code</b>',
  );
  await page.waitForTimeout(300); // give a broken image's onerror the chance to run (it must not)
  const found = await page.evaluate(() => {
    const root = document.querySelector("colloquy-chat").shadowRoot;
    const bot = [...root.querySelectorAll(".msg.bot")].pop();
    return {
      xss: window.__xss,
      imgs: root.querySelectorAll("img").length + document.querySelectorAll("img").length,
      links: [...root.querySelectorAll("a")].map((a) => ({
        text: a.textContent,
        href: a.getAttribute("href"),
        rel: a.rel,
        target: a.target,
      })),
      bold: bot.querySelector("strong")?.textContent,
      code: bot.querySelector("code")?.textContent,
      text: bot.textContent,
      user: root.querySelector(".msg.user").textContent,
    };
  });
  assert.equal(found.xss, undefined, "nothing executed");
  assert.equal(found.imgs, 0, "no img element anywhere");
  assert.deepEqual(found.links, [
    {
      text: "docs",
      href: "https://example.com/docs",
      rel: "noopener noreferrer",
      target: "_blank",
    },
  ]);
  assert.equal(found.bold, "bold");
  assert.equal(found.code, "<b>code</b>");
  assert.ok(
    found.text.includes('<img src=x onerror="window.__xss=1">'),
    "the tag is shown as text",
  );
  assert.equal(found.user, payload, "the visitor's message is shown exactly as typed");
  await page.context().close();
});

test("the Markdown subset becomes elements", { skip }, async () => {
  const page = await newPage();
  await page.goto(`${origin}/`);
  await openPanel(page);
  const message = [
    "Plans:",
    "",
    "- *Starter* with `api`",
    "- **Team**",
    "",
    "3. three",
    "4. four",
    "",
    "```",
    "let a = 1 < 2;",
    "```",
    "See https://example.com/pricing. Or mail [us](mailto:hi@example.com)",
  ].join("\n");
  await page.locator("textarea").fill(message);
  await page.locator("textarea").press("Enter");
  await page.waitForFunction(() => {
    const root = document.querySelector("colloquy-chat").shadowRoot;
    return (
      root.querySelector(".msg.bot pre") &&
      root.querySelector(".send").getAttribute("aria-label") === "Send"
    );
  });
  const shape = await page.evaluate(() => {
    const bot = [
      ...document.querySelector("colloquy-chat").shadowRoot.querySelectorAll(".msg.bot"),
    ].pop();
    return {
      blocks: [...bot.children].map((el) => el.tagName.toLowerCase()),
      bullets: [...bot.querySelectorAll("ul > li")].map((li) => li.innerHTML),
      numbered: [...bot.querySelectorAll("ol > li")].map((li) => li.textContent),
      start: bot.querySelector("ol").getAttribute("start"),
      code: bot.querySelector("pre > code").textContent,
      links: [...bot.querySelectorAll("a")].map((a) => [a.textContent, a.getAttribute("href")]),
    };
  });
  assert.deepEqual(shape, {
    blocks: ["p", "ul", "ol", "pre", "p"],
    bullets: ["<em>Starter</em> with <code>api</code>", "<strong>Team</strong>"],
    numbered: ["three", "four"],
    start: "3",
    code: "let a = 1 < 2;",
    links: [
      ["https://example.com/pricing", "https://example.com/pricing"],
      ["us", "mailto:hi@example.com"],
    ],
  });
  await page.context().close();
});

for (const [width, height] of [
  [360, 640],
  [1280, 800],
]) {
  test(`the open panel fits a ${width}x${height} viewport`, { skip }, async () => {
    const page = await newPage({ width, height });
    await page.goto(`${origin}/`);
    await openPanel(page);
    await sendAndWait(page, "Does this fit on my screen?");
    const layout = await page.evaluate(() => {
      const root = document.querySelector("colloquy-chat").shadowRoot;
      const box = (sel) => {
        const r = root.querySelector(sel).getBoundingClientRect();
        return {
          left: r.left,
          top: r.top,
          right: r.right,
          bottom: r.bottom,
          width: r.width,
          height: r.height,
        };
      };
      return {
        panel: box(".panel"),
        input: box("textarea"),
        send: box(".send"),
        launcherShown: root.querySelector(".launcher").getClientRects().length > 0,
        inputFont: getComputedStyle(root.querySelector("textarea")).fontSize,
        scrollWidth: document.documentElement.scrollWidth,
      };
    });
    const shot = path.join(ARTIFACTS, `panel-${width}x${height}.png`);
    await page.screenshot({ path: shot });
    const inside = (b, what) => {
      assert.ok(
        b.left >= 0 && b.top >= 0 && b.right <= width && b.bottom <= height,
        `${what} inside the viewport: ${JSON.stringify(b)}`,
      );
      assert.ok(b.width > 0 && b.height > 0, `${what} has a size`);
    };
    inside(layout.panel, "panel");
    inside(layout.input, "text box");
    inside(layout.send, "send button");
    assert.ok(layout.scrollWidth <= width, "no horizontal scrolling");
    if (width <= 480) {
      assert.equal(layout.panel.width, width, "full width on a phone");
      assert.equal(layout.panel.height, height, "full height on a phone");
      assert.equal(layout.launcherShown, false, "the launcher hides behind the full-screen panel");
      assert.equal(layout.inputFont, "16px", "16px text box: no zoom on focus in mobile Safari");
      assert.ok(
        layout.send.right <= width - 8 && layout.input.left >= 8,
        "composer keeps its margins",
      );
    } else {
      assert.ok(layout.panel.width >= 340 && layout.panel.width <= 400, "a side panel on desktop");
      assert.equal(layout.launcherShown, true);
    }
    await page.context().close();
  });
}

test(
  "keyboard only: Tab to the launcher, Enter opens, focus stays inside, Esc returns",
  { skip },
  async () => {
    const page = await newPage();
    await page.goto(`${origin}/`);
    await page.locator(".launcher").waitFor({ state: "visible" });
    const focused = () =>
      page.evaluate(() => {
        const root = document.querySelector("colloquy-chat").shadowRoot;
        const el = root.activeElement;
        if (document.activeElement !== document.querySelector("colloquy-chat") || !el)
          return "outside";
        if (el.classList.contains("launcher")) return "launcher";
        return root.querySelector(".panel").contains(el)
          ? `panel:${el.tagName.toLowerCase()}`
          : "other";
      });
    await page.keyboard.press("Tab");
    assert.equal(await focused(), "launcher");
    await page.keyboard.press("Enter");
    await page.waitForFunction(
      () =>
        document.querySelector("colloquy-chat").shadowRoot.activeElement?.tagName === "TEXTAREA",
    );
    assert.equal(
      await page.evaluate(() =>
        document
          .querySelector("colloquy-chat")
          .shadowRoot.querySelector(".launcher")
          .getAttribute("aria-expanded"),
      ),
      "true",
    );
    // Shift+Enter is a new line, Enter sends.
    await page.keyboard.type("first line");
    await page.keyboard.press("Shift+Enter");
    await page.keyboard.type("second line");
    assert.equal(await page.locator("textarea").inputValue(), "first line\nsecond line");
    await page.keyboard.press("Enter");
    await waitForAnswer(page, "Echo: first linesecond line"); // the newline is a <br>
    const seen = new Set();
    for (let i = 0; i < 8; i++) {
      await page.keyboard.press("Tab");
      const where = await focused();
      assert.match(where, /^panel:/, `Tab ${i + 1} stays inside the panel`);
      seen.add(where);
    }
    for (let i = 0; i < 8; i++) {
      await page.keyboard.press("Shift+Tab");
      assert.match(await focused(), /^panel:/, `Shift+Tab ${i + 1} stays inside the panel`);
    }
    assert.ok(
      seen.has("panel:textarea") && seen.has("panel:button"),
      `Tab cycles through the panel: ${[...seen]}`,
    );
    await page.keyboard.press("Escape");
    assert.equal(await focused(), "launcher", "Esc returns focus to the launcher");
    await page.waitForFunction(
      () =>
        getComputedStyle(document.querySelector("colloquy-chat").shadowRoot.querySelector(".panel"))
          .visibility === "hidden",
    );
    const state = await page.evaluate(() => {
      const root = document.querySelector("colloquy-chat").shadowRoot;
      return {
        expanded: root.querySelector(".launcher").getAttribute("aria-expanded"),
        visibility: getComputedStyle(root.querySelector(".panel")).visibility,
        dialog: root.querySelector(".panel").getAttribute("role"),
        log: root.querySelector(".log").getAttribute("role"),
      };
    });
    assert.deepEqual(state, {
      expanded: "false",
      visibility: "hidden",
      dialog: "dialog",
      log: "log",
    });
    await page.context().close();
  },
);

test(
  "errors show a readable line with a working retry, never a blank panel",
  { skip },
  async () => {
    const page = await newPage();
    await page.goto(`${origin}/`);
    await openPanel(page);
    const errorText = () =>
      page.evaluate(
        () =>
          document.querySelector("colloquy-chat").shadowRoot.querySelector(".err span")
            ?.textContent ?? null,
      );

    // A 503 from the server.
    await page.route("**/api/chats/messages/chat/stream/", (route) =>
      route.fulfill({
        status: 503,
        headers: { "access-control-allow-origin": origin, "retry-after": "1" },
        contentType: "application/json",
        body: JSON.stringify({ error: "store unavailable", code: "store_unavailable" }),
      }),
    );
    await page.locator("textarea").fill("are you there?");
    await page.locator("textarea").press("Enter");
    await page.locator(".err").waitFor();
    assert.match(await errorText(), /temporarily unavailable/);
    await page.unroute("**/api/chats/messages/chat/stream/");
    await page.locator(".retry").click();
    await waitForAnswer(page, "Echo: are you there?");
    assert.equal(await errorText(), null, "the error line is gone after a successful retry");

    // Offline.
    await page.context().setOffline(true);
    await page.locator("textarea").fill("offline now");
    await page.locator("textarea").press("Enter");
    await page.locator(".err").waitFor();
    assert.match(await errorText(), /offline/);
    await page.context().setOffline(false);
    await page.locator(".retry").click();
    await waitForAnswer(page, "Echo: offline now");

    // A connection that drops mid-answer: the widget resumes from the last event it had.
    const STREAM = "**/api/chats/messages/chat/stream/";
    const RESUME = /\/chat\/stream\/[0-9a-f-]{36}\/$/;
    /** Serves the real answer to the POST, cut by `cut(events)` (the SSE blocks). */
    const cutStream = (cut) =>
      page.route(STREAM, async (route) => {
        const real = await route.fetch();
        const events = (await real.text()).split("\n\n").filter(Boolean); // [retry, event...]
        await route.fulfill({ response: real, body: cut(events) });
      });
    const idOf = (event) => /^id: (.*)$/m.exec(event)[1];
    let firstId;
    await cutStream((events) => {
      firstId = idOf(events[1]);
      return events.slice(0, 2).join("\n\n") + "\n\n"; // retry and the first event
    });
    const resume = page.waitForRequest((r) => RESUME.test(r.url()) && r.method() === "GET");
    await page.locator("textarea").fill("this connection will drop");
    await page.locator("textarea").press("Enter");
    await waitForAnswer(page, "Echo: this connection will drop");
    assert.match(firstId, /^[0-9a-f-]{36}:0:\d+$/);
    assert.equal(
      (await resume).headers()["last-event-id"],
      firstId,
      "resume asks for the events after the first one, by its full id",
    );
    assert.equal(await errorText(), null, "a resumed answer is no error");

    // Dropped after the last event's id but before its data: the client has the whole
    // answer, the resume is answered 204, and that is a complete answer.
    let lastId;
    await page.unroute(STREAM);
    await cutStream((events) => {
      lastId = idOf(events[events.length - 1]);
      return events.slice(0, -1).join("\n\n") + `\n\nid: ${lastId}\n`;
    });
    const noContent = page.waitForResponse((r) => RESUME.test(r.url()));
    await page.locator("textarea").fill("all but the end");
    await page.locator("textarea").press("Enter");
    await waitForAnswer(page, "Echo: all but the end");
    const answered = await noContent;
    assert.equal(answered.status(), 204);
    assert.equal(answered.request().headers()["last-event-id"], lastId);
    assert.equal(await errorText(), null, "a 204 resume is a complete answer, not a lost one");

    // A resume that fails too: the widget offers to reload the stored answer.
    await page.unroute(STREAM);
    await cutStream((events) => events.slice(0, 2).join("\n\n") + "\n\n");
    await page.route(RESUME, (route) => route.abort());
    await page.locator("textarea").fill("this connection is gone");
    await page.locator("textarea").press("Enter");
    await page.locator(".err").waitFor();
    assert.match(await errorText(), /connection was lost/);
    await page.unroute(STREAM);
    await page.unroute(RESUME);
    await page.locator(".retry").click(); // reloads the conversation, with the stored answer
    await waitForAnswer(page, "Echo: this connection is gone");
    assert.equal(await errorText(), null);
    await page.context().close();
  },
);

test("stop aborts the answer and asks the server to cancel", { skip }, async () => {
  const page = await newPage();
  await page.goto(`${origin}/`);
  await openPanel(page);
  const cancel = page.waitForRequest((r) => r.url().endsWith("/cancel/") && r.method() === "POST");
  const words = Array.from({ length: 60 }, (_, i) => `word${i}`).join(" ");
  await page.locator("textarea").fill(words);
  await page.locator("textarea").press("Enter");
  await page.waitForFunction(() => {
    const bots = document.querySelector("colloquy-chat").shadowRoot.querySelectorAll(".msg.bot");
    return bots[bots.length - 1].textContent.includes("word2");
  });
  await page.locator('.send[aria-label="Stop"]').click();
  await page.waitForFunction(
    () =>
      document
        .querySelector("colloquy-chat")
        .shadowRoot.querySelector(".send")
        .getAttribute("aria-label") === "Send",
  );
  const text = await page.evaluate(
    () =>
      [...document.querySelector("colloquy-chat").shadowRoot.querySelectorAll(".msg.bot")].pop()
        .textContent,
  );
  assert.ok(text.endsWith("Stopped") && !text.includes("word59"), `stopped partway: ${text}`);
  assert.match(
    (await cancel).url(),
    /\/api\/chats\/messages\/chat\/stream\/[0-9a-f-]{36}\/cancel\/$/,
  );
  await page.context().close();
});

test(
  "a reload mid-answer shows the answer arriving, once; a second tab too",
  { skip },
  async () => {
    const page = await newPage();
    await page.goto(`${origin}/slow`);
    await openPanel(page);
    const welcome = (await bubbles(page))[0];
    const message =
      "Please tell me slowly and word by word what your opening hours are on public holidays " +
      "and whether I can book an appointment online before I come to the shop";
    const expected = `Echo: ${message}`;
    await sendAndWaitForChunk(page, message);
    const sessionId = await storedSession(page, slowApi);

    const second = await page.context().newPage(); // shares localStorage: the same session
    await second.goto(`${origin}/slow`);
    await page.reload();
    for (const p of [page, second]) {
      await p.locator(".launcher").waitFor({ state: "visible" });
      await recordAnswer(p);
      await openPanel(p);
    }
    for (const [p, name] of [
      [page, "reloaded page"],
      [second, "second tab"],
    ]) {
      await waitForAnswer(p, expected);
      const seen = await p.evaluate(() => window.__answer);
      const partial = new Set(
        seen.filter(([n, label]) => n < expected.length && label === "Stop").map(([n]) => n),
      );
      assert.ok(
        partial.size >= 2,
        `${name}: the answer grew in steps, with a stop button: ${seen}`,
      );
      assert.equal(Math.max(...seen.map(([n]) => n)), expected.length, `${name}: all of it`);
      assert.deepEqual(
        await bubbles(p),
        [welcome, { role: "user", text: message }, { role: "bot", text: expected }],
        `${name}: the question once, the answer once`,
      );
    }
    const stored = await storedMessages(slowApi, sessionId);
    assert.deepEqual(
      stored.map((m) => [m.role, m.message, m.metadata.finish_reason]),
      [
        ["user", message, undefined],
        ["assistant", expected, "stop"],
      ],
    );
    await page.context().close();
  },
);

test("stop on an answer reattached after a reload cancels it", { skip }, async () => {
  const page = await newPage();
  await page.goto(`${origin}/slow`);
  await openPanel(page);
  const message = Array.from({ length: 40 }, (_, i) => `word${i}`).join(" ");
  const expected = `Echo: ${message}`;
  await sendAndWaitForChunk(page, message);
  const sessionId = await storedSession(page, slowApi);
  await page.reload();
  await openPanel(page);
  await page.waitForFunction(() => {
    const root = document.querySelector("colloquy-chat").shadowRoot;
    const bots = root.querySelectorAll(".msg.bot");
    return (
      bots[bots.length - 1].textContent.includes("word1") &&
      root.querySelector(".send").getAttribute("aria-label") === "Stop"
    );
  });
  const cancel = page.waitForRequest((r) => r.url().endsWith("/cancel/") && r.method() === "POST");
  await page.locator('.send[aria-label="Stop"]').click();
  await page.waitForFunction(
    () =>
      document
        .querySelector("colloquy-chat")
        .shadowRoot.querySelector(".send")
        .getAttribute("aria-label") === "Send",
  );
  const shown = (await bubbles(page)).pop().text;
  assert.ok(shown.endsWith("Stopped") && !shown.includes("word39"), `stopped partway: ${shown}`);
  const responseId = /\/chat\/stream\/([0-9a-f-]{36})\/cancel\/$/.exec((await cancel).url())?.[1];
  assert.ok(responseId, "the cancel names the answer");
  const answer = await until(
    async () => (await storedMessages(slowApi, sessionId)).find((m) => m.role === "assistant"),
    "the cancelled answer to be stored",
  );
  assert.equal(answer.id, responseId, "the reattached answer is the one cancelled");
  assert.equal(answer.metadata.finish_reason, "cancelled");
  assert.ok(
    expected.startsWith(answer.message) && answer.message.length < expected.length,
    `the stored answer is the part generated before the stop: ${answer.message}`,
  );
  assert.equal((await storedMessages(slowApi, sessionId)).length, 2, "one question, one answer");
  await page.context().close();
});

test("an expired session starts a new one silently", { skip }, async () => {
  const page = await newPage();
  await page.goto(`${origin}/`);
  const key = `colloquy:${api}:session`;
  await page.evaluate((key) => localStorage.setItem(key, "gone-long-ago"), key);
  await page.reload();
  await openPanel(page);
  assert.equal((await bubbles(page)).length, 1, "just the welcome");
  assert.equal(await page.locator(".err").count(), 0, "no error shown");
  await sendAndWait(page, "hello again");
  const id = await page.evaluate((key) => localStorage.getItem(key), key);
  assert.ok(id && id !== "gone-long-ago", "a new session id is stored");
  await page.context().close();
});

test("the host page's CSS cannot reach the widget", { skip }, async () => {
  const page = await newPage();
  await page.goto(`${origin}/hostile`);
  await openPanel(page);
  await sendAndWait(page, "still looking good?");
  const look = await page.evaluate(() => {
    const root = document.querySelector("colloquy-chat").shadowRoot;
    const launcher = getComputedStyle(root.querySelector(".launcher"));
    const input = root.querySelector("textarea").getBoundingClientRect();
    const style = getComputedStyle(root.querySelector(".msg.user"));
    return {
      launcher: [launcher.width, launcher.height],
      input: input.width,
      font: style.fontFamily,
      spacing: style.letterSpacing,
    };
  });
  await page.screenshot({ path: path.join(ARTIFACTS, "hostile-css.png") });
  assert.deepEqual(look.launcher, ["58px", "58px"]);
  assert.ok(look.input > 200, `the text box keeps its width: ${look.input}`);
  assert.ok(!/comic/i.test(look.font), `own font: ${look.font}`);
  assert.equal(look.spacing, "normal");
  await page.context().close();
});

test("a strict Content-Security-Policy on the host page is enough", { skip }, async () => {
  const page = await newPage();
  const violations = [];
  page.on("console", (m) => /Content Security Policy/i.test(m.text()) && violations.push(m.text()));
  await page.goto(`${origin}/csp`);
  await openPanel(page);
  await sendAndWait(page, "works under CSP?");
  const width = await page.evaluate(
    () =>
      getComputedStyle(
        document.querySelector("colloquy-chat").shadowRoot.querySelector(".launcher"),
      ).width,
  );
  assert.equal(width, "58px", "the widget's styles apply");
  assert.deepEqual(violations, []);
  await page.context().close();
});

/** In the page: the rating buttons under the last answer, as [label, aria-pressed]. */
const lastThumbs = (page) =>
  page.evaluate(() => {
    const root = document.querySelector("colloquy-chat").shadowRoot;
    const group = [...root.querySelectorAll(".fb")].pop();
    if (!group) return null;
    return {
      group: group.getAttribute("aria-label"),
      after: group.previousElementSibling?.textContent,
      buttons: [...group.querySelectorAll("button")].map((b) => [
        b.getAttribute("aria-label"),
        b.getAttribute("aria-pressed"),
      ]),
    };
  });

test(
  "thumbs down on an answer, with the keyboard: kept across a reload and stored",
  { skip },
  async () => {
    const page = await newPage();
    await page.goto(`${origin}/public`);
    await openPanel(page);
    assert.equal(
      await page.locator(".fb").count(),
      0,
      "no thumbs under the welcome (it is not a stored answer)",
    );
    await sendAndWait(page, "was this helpful?");
    assert.deepEqual(await lastThumbs(page), {
      group: "Rate this answer",
      after: "Echo: was this helpful?",
      buttons: [
        ["Good answer", "false"],
        ["Bad answer", "false"],
      ],
    });
    // Keyboard only: focus the thumbs-down button and press Enter.
    const down = page.locator('.fb button[aria-label="Bad answer"]');
    await down.focus();
    await page.keyboard.press("Enter");
    await page.waitForFunction(
      () =>
        document
          .querySelector("colloquy-chat")
          .shadowRoot.querySelector('.fb button[aria-label="Bad answer"]')
          .getAttribute("aria-pressed") === "true",
    );
    await page.waitForFunction(
      () =>
        document.querySelector("colloquy-chat").shadowRoot.querySelector("[role=status]")
          .textContent === "Thanks for your feedback.",
    );
    const sessionId = await storedSession(page, publicApi);
    const answer = (await storedMessages(publicApi, sessionId, ADMIN)).find(
      (m) => m.role === "assistant",
    );
    assert.equal(answer.metadata.feedback?.rating, "down", "the API returns the choice");

    await page.reload();
    await openPanel(page);
    await page.locator(".fb").waitFor();
    assert.deepEqual(
      (await lastThumbs(page)).buttons,
      [
        ["Good answer", "false"],
        ["Bad answer", "true"],
      ],
      "the choice is shown after a reload",
    );
    // Changing one's mind: the last choice wins, in the page and in the store.
    await page.locator('.fb button[aria-label="Good answer"]').click();
    await until(
      async () =>
        (await storedMessages(publicApi, sessionId, ADMIN)).find((m) => m.role === "assistant")
          .metadata.feedback?.rating === "up",
      "the new rating to be stored",
    );
    assert.deepEqual((await lastThumbs(page)).buttons, [
      ["Good answer", "true"],
      ["Bad answer", "false"],
    ]);
    await page.context().close();
  },
);

/** The conversation as shown: each element of the log as [class, text]. */
const logItems = (page) =>
  page.evaluate(() =>
    [...document.querySelector("colloquy-chat").shadowRoot.querySelector(".log").children].map(
      (el) => [
        el.className,
        el.classList.contains("fb")
          ? [...el.children].map((b) => b.getAttribute("aria-pressed")).join(",")
          : el.textContent,
      ],
    ),
  );

/** A context whose pages count the EventSources the widget opens and closes. */
async function countingPage() {
  const page = await newPage();
  await page.context().addInitScript(() => {
    const Native = window.EventSource;
    window.__streams = [];
    window.EventSource = class extends Native {
      constructor(...args) {
        super(...args);
        window.__streams.push(this);
      }
    };
  });
  return page;
}
/** In the page: how many event streams are open (or connecting). */
const openStreams = (page) =>
  page.evaluate(() => window.__streams.filter((s) => s.readyState !== 2).length);
const waitStreams = (page, n, why) =>
  until(async () => (await openStreams(page)) === n, `${n} open event streams: ${why}`);

const barText = (page) =>
  page.evaluate(
    () => document.querySelector("colloquy-chat").shadowRoot.querySelector(".bar span").textContent,
  );
const liveText = (page) =>
  page.evaluate(
    () =>
      document.querySelector("colloquy-chat").shadowRoot.querySelector("[role=status]").textContent,
  );

/** Posts an operator's reply through the API, as a console would. */
async function operatorSays(sessionId, name, message) {
  const res = await fetch(`${publicApi}/api/chats/messages/`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify({
      session_id: sessionId,
      message,
      role: "assistant",
      metadata: { operator: name },
    }),
  });
  const text = await res.text();
  assert.equal(res.status, 201, text);
  return JSON.parse(text);
}

const ASKED =
  "You asked for a person. Someone from the team will answer here; you can keep writing.";

test(
  "Talk to a person: the operator's reply appears live with its name, and after a reload",
  { skip },
  async () => {
    const page = await countingPage();
    await page.goto(`${origin}/public`);
    await page.locator(".launcher").waitFor({ state: "visible" });
    assert.equal(await openStreams(page), 0, "a closed widget opens no stream");
    await openPanel(page);
    await sendAndWait(page, "I need a refund");
    const sessionId = await storedSession(page, publicApi);
    await waitStreams(page, 1, "the panel is open");
    await page.keyboard.press("Escape");
    await waitStreams(page, 0, "the panel is closed and no person is asked for");
    await openPanel(page);
    await waitStreams(page, 1, "the panel is open again");

    // The visitor asks for a person.
    await page.locator("button.human").click();
    await page.waitForFunction(
      (text) =>
        [...document.querySelector("colloquy-chat").shadowRoot.querySelectorAll(".notice")].some(
          (n) => n.textContent === text,
        ),
      ASKED,
    );
    assert.equal(await barText(page), "Waiting for a person…");
    assert.equal(await page.locator("button.human").isVisible(), false, "asked once");
    assert.equal(await liveText(page), ASKED, "announced");
    const asked = await (
      await fetch(`${publicApi}/api/chats/sessions/${sessionId}/`, {
        headers: { authorization: `Bearer ${ADMIN}` },
      })
    ).json();
    assert.equal(asked.responder, "human");
    assert.ok(asked.handoff_requested_at, "the request is stored");
    await page.keyboard.press("Escape");
    assert.equal(
      await openStreams(page),
      1,
      "a pending request keeps the stream with the panel closed",
    );
    await openPanel(page);

    // A message now waits for a person: no answer from the model.
    const botsBefore = await page.locator(".msg.bot").count();
    await page.locator("textarea").fill("My order 1234 never arrived");
    await page.locator("textarea").press("Enter");
    await page.locator(".sent").waitFor();
    await page.waitForFunction(
      () =>
        document
          .querySelector("colloquy-chat")
          .shadowRoot.querySelector(".send")
          .getAttribute("aria-label") === "Send",
    );
    assert.equal(await page.locator(".msg.bot").count(), botsBefore, "no answer from the model");
    const waiting = await storedMessages(publicApi, sessionId, ADMIN);
    assert.deepEqual(
      waiting.slice(-1).map((m) => [m.role, m.message]),
      [["user", "My order 1234 never arrived"]],
    );

    // The operator answers through the API: shown live, with the name.
    const reply = "Hi, I'm Alice. Let me check order 1234 for you.";
    const posted = Date.now();
    await operatorSays(sessionId, "Alice", reply);
    await page.waitForFunction(
      (reply) =>
        [...document.querySelector("colloquy-chat").shadowRoot.querySelectorAll(".msg.op")].some(
          (m) =>
            m.querySelector(".who")?.textContent === "Alice" && m.textContent === "Alice" + reply,
        ),
      reply,
    );
    metrics.operatorReplyToWidgetMs = Date.now() - posted;
    console.log(
      `operator reply posted -> shown in the widget: ${metrics.operatorReplyToWidgetMs} ms`,
    );
    assert.equal(await liveText(page), `Alice: ${reply}`, "the reply is announced with the name");
    assert.equal(await barText(page), "You are chatting with Alice");
    const live = await logItems(page);
    assert.deepEqual(live.slice(-6), [
      ["fb", "false,false"],
      ["notice", ASKED],
      ["msg user", "My order 1234 never arrived"],
      ["sent", "Sent to the team"],
      ["notice", "Alice joined the conversation"],
      ["msg bot op", "Alice" + reply],
    ]);
    await page.screenshot({ path: path.join(ARTIFACTS, "handoff.png") });

    // After a reload: the same conversation, rebuilt from the session and the history;
    // with a person answering, the stream opens even with the panel closed.
    await page.reload();
    await page.locator(".launcher").waitFor({ state: "visible" });
    await waitStreams(page, 1, "a person answers: listening with the panel closed");
    const name = "Alice <b>&amp;</b>"; // shown as text, never markup
    await operatorSays(sessionId, "Alice", "Found it: it ships today.");
    await page.waitForFunction(() =>
      document.querySelector("colloquy-chat").shadowRoot.querySelector(".launcher.unread"),
    );
    assert.equal(
      await page.locator(".launcher").getAttribute("aria-label"),
      "Open chat (new message)",
    );
    await openPanel(page);
    assert.deepEqual(await logItems(page), [
      ...live,
      ["msg bot op", "AliceFound it: it ships today."],
    ]);

    // Another person, whose name is markup-like text: joins, shown as text.
    await operatorSays(sessionId, name, "I can help too.");
    await page.waitForFunction(
      (text) =>
        [...document.querySelector("colloquy-chat").shadowRoot.querySelectorAll(".notice")].some(
          (n) => n.textContent === text,
        ),
      `${name} joined the conversation`,
    );
    assert.equal(await page.locator(".msg.op b").count(), 0, "no element from the name");

    // The operator hands back: a notice, and the model answers again.
    const back = await fetch(`${publicApi}/api/chats/sessions/${sessionId}/`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify({ responder: "ai" }),
    });
    assert.equal(back.status, 200, await back.text());
    const left = `${name} left the conversation. The assistant answers again.`;
    await page.waitForFunction(
      (text) =>
        [...document.querySelector("colloquy-chat").shadowRoot.querySelectorAll(".notice")].some(
          (n) => n.textContent === text,
        ),
      left,
    );
    assert.equal(
      await page.locator("button.human").isVisible(),
      true,
      "a person can be asked again",
    );
    await sendAndWait(page, "thanks, one more question");
    const end = await logItems(page);
    await page.reload();
    await openPanel(page); // waits for the history
    assert.deepEqual(await logItems(page), end, "all of it, after a reload");
    await page.keyboard.press("Escape");
    await waitStreams(page, 0, "the model answers and the panel is closed");
    await page.context().close();
  },
);

test(
  "a request nobody takes: the timeout's notice, live and after a reload",
  { skip },
  async () => {
    const page = await newPage();
    await page.goto(`${origin}/timeout`);
    await openPanel(page);
    await sendAndWait(page, "anyone there?");
    const sessionId = await storedSession(page, hurriedApi);
    await page.locator("button.human").click();
    await page.locator(".notice").waitFor();
    // The server's --handoff-timeout (2 s): back to the model, and a stored notice.
    await page.waitForFunction(
      (text) =>
        [...document.querySelector("colloquy-chat").shadowRoot.querySelectorAll(".notice")].some(
          (n) => n.textContent === text,
        ),
      TIMEOUT_TEXT,
    );
    assert.equal(await liveText(page), TIMEOUT_TEXT, "announced");
    await page.locator("button.human").waitFor({ state: "visible" }); // a person can be asked again
    assert.equal(await barText(page), "");
    const stored = await storedMessages(hurriedApi, sessionId, ADMIN);
    assert.deepEqual(
      stored.slice(-1).map((m) => [m.role, m.message, m.metadata.notice]),
      [["assistant", TIMEOUT_TEXT, "handoff_timeout"]],
    );
    const shown = await logItems(page);
    assert.deepEqual(shown.slice(-2), [
      ["notice", ASKED],
      ["notice", TIMEOUT_TEXT],
    ]);
    assert.equal(await page.locator(".fb").count(), 1, "no thumbs under a notice");
    await page.reload();
    await openPanel(page);
    assert.deepEqual(await logItems(page), shown, "the same after a reload");
    await sendAndWait(page, "ok, then you"); // the model answers again
    await page.context().close();
  },
);

test(
  "with the panel closed, one tab listens for a person; another takes over",
  { skip },
  async () => {
    const first = await countingPage();
    await first.goto(`${origin}/public`);
    await openPanel(first);
    await first.locator("button.human").click(); // asks for a person in a new session
    await first.locator(".notice").waitFor();
    const sessionId = await storedSession(first, publicApi);
    assert.ok(sessionId, "a session was made for the request");
    await first.keyboard.press("Escape");
    await waitStreams(first, 1, "the first tab listens");
    const second = await first.context().newPage(); // the same visitor, another tab
    await second.goto(`${origin}/public`);
    // It loads the conversation with its panel closed (a person is asked for) ...
    await second.waitForFunction(
      (text) =>
        [...document.querySelector("colloquy-chat").shadowRoot.querySelectorAll(".notice")].some(
          (n) => n.textContent === text,
        ) && !document.querySelector("colloquy-chat").shadowRoot.querySelector("[aria-busy]"),
      ASKED,
    );
    // ... but leaves the listening to the first.
    assert.equal(await openStreams(second), 0, "one background stream per browser");
    assert.equal(await openStreams(first), 1);
    await first.close();
    await waitStreams(second, 1, "the second tab takes over");
    await operatorSays(sessionId, "Bob", "Hello from Bob");
    await second.waitForFunction(() =>
      document.querySelector("colloquy-chat").shadowRoot.querySelector(".launcher.unread"),
    );
    await second.context().close();
  },
);

/**
 * A TCP proxy to the public server whose connections the test can cut: `cut()` drops
 * every connection and holds new ones until `resume()`. `heads` are the first bytes
 * of every request seen.
 */
async function cuttableProxy(target) {
  const { hostname, port } = new URL(target);
  const sockets = new Set();
  const held = [];
  const heads = [];
  let paused = false;
  const pipe = (client) => {
    const upstream = net.connect(Number(port), hostname);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", drop);
      s.on("close", drop);
    }
    client.on("data", (d) => heads.push(d.toString("latin1", 0, Math.min(d.length, 4096))));
    client.pipe(upstream).pipe(client);
  };
  const server = net.createServer((client) => (paused ? held.push(client) : pipe(client)));
  await deadline(new Promise((r) => server.listen(0, "127.0.0.1", r)), WAIT, "proxy");
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    heads,
    held,
    cut() {
      paused = true;
      for (const s of sockets) s.destroy();
    },
    resume() {
      paused = false;
      for (const client of held.splice(0)) pipe(client);
    },
    close() {
      for (const s of [...sockets, ...held]) s.destroy();
      server.close();
    },
  };
}

test(
  "a dropped events stream resumes from the last message: the missed reply, once",
  { skip },
  async () => {
    const page = await newPage();
    await page.goto(`${origin}/proxied`);
    await openPanel(page);
    await page.locator("button.human").click();
    await page.locator(".notice").waitFor();
    const sessionId = await storedSession(page, proxy.base);
    const shownReplies = () =>
      page.evaluate(() =>
        [...document.querySelector("colloquy-chat").shadowRoot.querySelectorAll(".msg.op")].map(
          (m) => m.textContent,
        ),
      );
    const first = await operatorSays(sessionId, "Carol", "One moment please.");
    await until(async () => (await shownReplies()).length === 1, "the first reply");
    proxy.cut(); // the connection drops; reconnects wait
    await operatorSays(sessionId, "Carol", "Found your order.");
    await until(() => proxy.held.length > 0, "the widget to reconnect");
    proxy.resume();
    await until(async () => (await shownReplies()).length === 2, "the reply sent during the drop");
    assert.deepEqual(await shownReplies(), ["CarolOne moment please.", "CarolFound your order."]);
    const resumed = proxy.heads.find((h) => h.startsWith("GET ") && /last-event-id:/i.test(h));
    assert.match(
      resumed ?? "",
      new RegExp(`^last-event-id: ${first.id}\\r$`, "im"),
      "the reconnect names the last message it had",
    );
    assert.equal(await page.locator(".notice").count(), 2, "no notice twice: asked, Carol joined");
    await page.context().close();
  },
);

/** The next chat answers 503 `budget_exhausted`, as a server whose token budget is spent. */
const budgetSpent = (page) =>
  page.route(
    "**/api/chats/messages/chat/stream/",
    (route) =>
      route.fulfill({
        status: 503,
        headers: { "access-control-allow-origin": origin, "retry-after": "3600" },
        contentType: "application/json",
        body: JSON.stringify({ error: "the token budget is spent", code: "budget_exhausted" }),
      }),
    { times: 1 },
  );

test(
  "budget spent: the assistant is offline, and the message can be left for a person",
  { skip },
  async () => {
    const page = await newPage();
    await page.goto(`${origin}/public`);
    await openPanel(page);
    await sendAndWait(page, "first question");
    const sessionId = await storedSession(page, publicApi);
    await budgetSpent(page);
    await page.locator("textarea").fill("please call me back about my invoice");
    await page.locator("textarea").press("Enter");
    await page.locator(".err.offline").waitFor();
    assert.equal(
      await page.locator(".err.offline span").textContent(),
      "The assistant is offline right now. A person can answer your message instead.",
    );
    assert.equal(await liveText(page), "The assistant is offline right now.");
    const offer = page.locator(".err.offline button");
    assert.equal(await offer.textContent(), "Leave a message for a person");
    await offer.focus();
    await page.keyboard.press("Enter"); // keyboard accessible
    await page.locator(".sent").waitFor();
    assert.equal(await page.locator(".err").count(), 0, "the notice is gone");
    assert.equal(await barText(page), "Waiting for a person…");
    const stored = await storedMessages(publicApi, sessionId, ADMIN);
    assert.deepEqual(
      stored.slice(-1).map((m) => [m.role, m.message]),
      [["user", "please call me back about my invoice"]],
      "the message is stored for the team, once",
    );
    const s = await (
      await fetch(`${publicApi}/api/chats/sessions/${sessionId}/`, {
        headers: { authorization: `Bearer ${ADMIN}` },
      })
    ).json();
    assert.equal(s.responder, "human");
    await page.context().close();
  },
);

test(
  'data-handoff="off": no "Talk to a person"; a spent budget offers a retry',
  { skip },
  async () => {
    const page = await newPage();
    await page.goto(`${origin}/public-nohandoff`);
    await openPanel(page);
    await sendAndWait(page, "no people here?");
    assert.equal(await page.locator("button.human").count(), 1);
    assert.equal(await page.locator("button.human").isVisible(), false);
    await budgetSpent(page);
    await page.locator("textarea").fill("still there?");
    await page.locator("textarea").press("Enter");
    await page.locator(".err.offline").waitFor();
    assert.equal(
      await page.locator(".err.offline span").textContent(),
      "The assistant is offline right now. Please try again later.",
    );
    await page.locator(".err.offline button").click(); // Retry: the budget is back
    await waitForAnswer(page, "Echo: still there?");
    await page.context().close();
  },
);

test("metrics are written", { skip }, () => {
  assert.ok(metrics.clickToInteractivePanelMs >= 0);
  writeFileSync(path.join(ARTIFACTS, "metrics.json"), JSON.stringify(metrics, null, 2) + "\n");
});
