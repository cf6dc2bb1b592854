/*! Colloquy chat widget | MIT OR Apache-2.0
 *
 * Add one tag to a page:
 *   <script src="https://chat.example.com/widget.js" data-api="https://chat.example.com" defer></script>
 *
 * Optional attributes: data-api (default: the origin this script is served from),
 * data-title, data-welcome, data-external-user-id, data-theme (light|dark|auto),
 * data-position (bottom-right|bottom-left).
 * Theming: set --colloquy-accent, --colloquy-accent-text, --colloquy-bg, --colloquy-text,
 * --colloquy-muted, --colloquy-border, --colloquy-bubble, --colloquy-font,
 * --colloquy-font-size, --colloquy-radius, --colloquy-z-index on `colloquy-chat` (or :root).
 *
 * Plain modern JavaScript, no dependencies, no build step. Everything lives in a
 * shadow root, so the page's CSS cannot reach it. Text from the visitor or the model
 * only ever becomes DOM text (textContent), never markup.
 */
(() => {
  "use strict";
  performance.mark?.("colloquy:start");

  const script = document.currentScript || document.querySelector('script[src*="widget.js"]');
  if (!script || document.querySelector("colloquy-chat")) return; // loaded twice

  // ---- settings --------------------------------------------------------------
  const data = script.dataset;
  const base = (() => {
    try {
      return new URL(
        data.api || new URL(script.src, location.href).origin,
        location.href,
      ).href.replace(/\/+$/, "");
    } catch {
      return location.origin;
    }
  })();
  const opts = {
    title: data.title || "Chat with us",
    welcome: data.welcome ?? "Hi! How can we help you today?",
    user: data.externalUserId || null,
    theme: ["light", "dark", "auto"].includes(data.theme) ? data.theme : "light",
    left: data.position === "bottom-left",
  };
  const API = base + "/api/chats/";
  const STREAM = API + "messages/chat/stream/";
  const KEY = "colloquy:" + base + ":session"; // localStorage, one session per API
  const JSON_HEADERS = { "Content-Type": "application/json" };

  const storage = {
    get() {
      try {
        return localStorage.getItem(KEY);
      } catch {
        return null; // storage blocked (sandboxed frame, privacy mode): no memory
      }
    },
    set(value) {
      try {
        if (value) localStorage.setItem(KEY, value);
        else localStorage.removeItem(KEY);
      } catch {
        /* ignored, see get() */
      }
    },
  };

  // ---- DOM helpers -------------------------------------------------------------
  /** An element; string children become text nodes (never markup). */
  const h = (tag, props = {}, ...kids) => {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (v == null || v === false) continue;
      if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    el.append(...kids);
    return el;
  };
  const SVG = "http://www.w3.org/2000/svg";
  const icon = (d, cls) => {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    if (cls) svg.setAttribute("class", cls);
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    svg.append(path);
    return svg;
  };
  const ICONS = {
    chat: "M21 11.5a8.4 8.4 0 0 1-.9 3.8 8.5 8.5 0 0 1-7.6 4.7 8.4 8.4 0 0 1-3.8-.9L3 21l1.9-5.7a8.4 8.4 0 0 1-.9-3.8 8.5 8.5 0 0 1 4.7-7.6 8.4 8.4 0 0 1 3.8-.9h.5a8.5 8.5 0 0 1 8 8v.5z",
    down: "M6 9l6 6 6-6",
    close: "M18 6 6 18M6 6l12 12",
    send: "M12 19V5M5 12l7-7 7 7",
    stop: "M7 7h10v10H7z",
    fresh: "M12 20h9M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4z",
  };

  // ---- safe Markdown subset ------------------------------------------------------
  // Paragraphs (single newlines are line breaks), bullet and numbered lists, fenced
  // code blocks, `code`, **bold**, *italic*, [links](https://...) and bare URLs.
  // Built from createElement/textContent only; links keep http(s) and mailto hrefs,
  // any other scheme (javascript:, data:, ...) is shown as plain text.
  const LIST = /^\s*([-*+]|\d{1,9}[.)])\s+(.*)$/;
  const FENCE = /^\s*(`{3,}|~{3,})/;
  const HEADING = /^\s*#{1,6}\s+(.*)$/;
  const INLINE = new RegExp(
    [
      /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/, // 1, 2: code
      /\[([^\]\n]+)\]\(\s*<?([^()\s<>]*(?:\([^()\s]*\)[^()\s<>]*)*)>?\s*\)/, // 3, 4: link
      /\*\*(?=\S)([\s\S]*?\S)\*\*|(?<!\w)__(?=\S)([\s\S]*?\S)__(?!\w)/, // 5, 6: bold
      /\*(?=[^\s*])([\s\S]*?[^\s*])\*|(?<!\w)_(?=[^\s_])([\s\S]*?[^\s_])_(?!\w)/, // 7, 8: italic
      /\b(https?:\/\/[^\s<>"]*[^\s<>".,:;!?'")\]])/, // 9: bare URL
    ]
      .map((r) => r.source)
      .join("|"),
    "g",
  );

  const link = (href, kids) => {
    let url;
    try {
      url = new URL(href); // relative or malformed: not a link
    } catch {
      return kids;
    }
    if (!["http:", "https:", "mailto:"].includes(url.protocol)) return kids;
    return [h("a", { href: url.href, target: "_blank", rel: "noopener noreferrer" }, ...kids)];
  };

  const inline = (text, links = true) => {
    const out = [];
    let last = 0;
    for (const m of text.matchAll(INLINE)) {
      out.push(text.slice(last, m.index));
      last = m.index + m[0].length;
      if (m[1]) out.push(h("code", { text: m[2] }));
      else if (m[3] != null) {
        const kids = inline(m[3], false);
        out.push(...(links ? link(m[4], kids) : kids));
      } else if (m[5] ?? m[6]) out.push(h("strong", {}, ...inline(m[5] ?? m[6], links)));
      else if (m[7] ?? m[8]) out.push(h("em", {}, ...inline(m[7] ?? m[8], links)));
      else out.push(...(links ? link(m[9], [m[9]]) : [m[9]]));
    }
    out.push(text.slice(last));
    return out.filter((x) => x !== "");
  };

  const markdown = (text) => {
    const out = document.createDocumentFragment();
    const lines = text.split(/\r\n?|\n/);
    const plain = (line) =>
      line.trim() && !LIST.test(line) && !FENCE.test(line) && !HEADING.test(line);
    for (let i = 0; i < lines.length;) {
      const line = lines[i];
      const fence = FENCE.exec(line);
      if (fence) {
        const code = [];
        for (i++; i < lines.length && !lines[i].trim().startsWith(fence[1]); i++) {
          code.push(lines[i]);
        }
        i++; // the closing fence (an unclosed one runs to the end, as while streaming)
        out.append(h("pre", {}, h("code", { text: code.join("\n") })));
      } else if (!line.trim()) {
        i++;
      } else if (LIST.test(line)) {
        const ordered = /\d/.test(LIST.exec(line)[1]);
        const list = h(ordered ? "ol" : "ul");
        const start = parseInt(LIST.exec(line)[1], 10);
        if (ordered && start !== 1) list.setAttribute("start", String(start));
        for (; i < lines.length; i++) {
          const m = LIST.exec(lines[i]);
          if (m && /\d/.test(m[1]) === ordered) list.append(h("li", {}, ...inline(m[2])));
          else if (!m && /^\s+\S/.test(lines[i]) && !FENCE.test(lines[i])) {
            list.lastChild.append(h("br"), ...inline(lines[i].trim())); // continuation
          } else break;
        }
        out.append(list);
      } else if (HEADING.test(line)) {
        out.append(h("p", {}, h("strong", {}, ...inline(HEADING.exec(line)[1]))));
        i++;
      } else {
        const p = h("p");
        for (; i < lines.length && plain(lines[i]); i++) {
          if (p.firstChild) p.append(h("br"));
          p.append(...inline(lines[i]));
        }
        out.append(p);
      }
    }
    return out;
  };

  // ---- styles ----------------------------------------------------------------------
  const CSS = `
:host{all:initial}
.w{all:initial;--a:var(--colloquy-accent,#4f46e5);--at:var(--colloquy-accent-text,#fff);--bg:var(--colloquy-bg,#fff);--fg:var(--colloquy-text,#1d2130);--mu:var(--colloquy-muted,#6b7084);--bd:var(--colloquy-border,#e3e5ec);--bb:var(--colloquy-bubble,#f1f2f7);--r:var(--colloquy-radius,18px);--z:var(--colloquy-z-index,2147483000);font:var(--colloquy-font-size,15px)/1.5 var(--colloquy-font,system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif);color:var(--fg);-webkit-font-smoothing:antialiased}
.w.dark{--bg:var(--colloquy-bg,#16171d);--fg:var(--colloquy-text,#e8e9f0);--mu:var(--colloquy-muted,#9a9db1);--bd:var(--colloquy-border,#2b2d38);--bb:var(--colloquy-bubble,#23252f)}
*,*::before,*::after{box-sizing:border-box}
svg{width:22px;height:22px;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round}
button{font:inherit;color:inherit;cursor:pointer}
:focus-visible{outline:2px solid var(--a);outline-offset:2px}
.launcher{position:fixed;bottom:20px;right:20px;z-index:var(--z);width:58px;height:58px;border:0;border-radius:50%;background:var(--a);color:var(--at);display:grid;place-items:center;box-shadow:0 8px 24px rgba(17,20,45,.28);transition:transform .15s ease}
.left .launcher{right:auto;left:20px}
.launcher:hover{transform:scale(1.06)}
.launcher svg{width:27px;height:27px;grid-area:1/1;transition:transform .2s ease,opacity .2s ease}
.launcher .ic-down,.open .launcher .ic-chat{opacity:0;transform:rotate(-60deg) scale(.6)}
.open .launcher .ic-down{opacity:1;transform:none}
.launcher:focus-visible{outline-offset:3px}
.panel{position:fixed;bottom:92px;right:20px;z-index:var(--z);width:384px;max-width:calc(100vw - 40px);height:620px;max-height:calc(100vh - 112px);max-height:calc(100dvh - 112px);display:flex;flex-direction:column;background:var(--bg);border:1px solid var(--bd);border-radius:var(--r);box-shadow:0 18px 56px rgba(17,20,45,.24);overflow:hidden;visibility:hidden;opacity:0;transform:translateY(14px) scale(.98);transform-origin:bottom right;transition:opacity .18s ease,transform .18s ease,visibility 0s .18s}
.left .panel{right:auto;left:20px;transform-origin:bottom left}
.panel:focus{outline:none}
.open .panel{visibility:visible;opacity:1;transform:none;transition-delay:0s}
.head{display:flex;align-items:center;gap:6px;padding:14px 10px 14px 18px;background:var(--a);color:var(--at)}
.avatar{flex:none;width:34px;height:34px;margin-right:4px;border-radius:50%;background:rgba(255,255,255,.18);display:grid;place-items:center}
.avatar svg{width:18px;height:18px}
.title{flex:1;margin:0;font-size:16px;font-weight:650;line-height:1.3;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.ib{flex:none;width:36px;height:36px;border:0;border-radius:10px;background:transparent;display:grid;place-items:center}
.ib:hover{background:rgba(255,255,255,.16)}
.ib svg{width:20px;height:20px}
.head :focus-visible{outline-color:var(--at);outline-offset:-2px}
.log{flex:1;overflow-y:auto;padding:18px 16px 8px;display:flex;flex-direction:column;gap:10px;overscroll-behavior:contain}
.log:focus-visible{outline-offset:-2px}
.msg{max-width:86%;padding:9px 14px;border-radius:18px;overflow-wrap:anywhere;animation:in .2s ease-out}
@keyframes in{from{opacity:0;transform:translateY(6px)}}
.user{align-self:flex-end;background:var(--a);color:var(--at);border-bottom-right-radius:6px;white-space:pre-wrap}
.bot{align-self:flex-start;background:var(--bb);border-bottom-left-radius:6px}
.bot p,.bot ul,.bot ol,.bot pre{margin:0 0 8px}
.bot>:last-child{margin-bottom:0}
.bot ul,.bot ol{padding-left:22px}
.bot li+li{margin-top:2px}
.bot a{color:inherit;text-decoration:underline;text-underline-offset:2px}
.bot code{font:.88em/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:rgba(127,127,137,.17);padding:1px 5px;border-radius:5px}
.bot pre{padding:10px 12px;background:rgba(127,127,137,.14);border-radius:10px;overflow-x:auto}
.bot pre code{padding:0;background:none;white-space:pre}
.note{display:block;margin-top:4px;font-size:12px;color:var(--mu)}
.typing{display:flex;gap:5px;padding:6px 2px}
.typing i{width:7px;height:7px;border-radius:50%;background:var(--mu);animation:dot 1.2s infinite ease-in-out}
.typing i:nth-child(2){animation-delay:.15s}
.typing i:nth-child(3){animation-delay:.3s}
@keyframes dot{0%,80%,100%{opacity:.35;transform:none}40%{opacity:1;transform:translateY(-3px)}}
.err{display:flex;align-items:center;gap:10px;padding:8px 10px 8px 12px;font-size:13.5px;line-height:1.4;color:#a4261b;background:#fef3f2;border:1px solid #fbd1cc;border-radius:12px}
.dark .err{color:#fdaaa2;background:#33181a;border-color:#5a2629}
.err span{flex:1}
.retry{flex:none;padding:5px 12px;border:1px solid currentColor;border-radius:9px;background:transparent;font-weight:600;font-size:13px}
.form{display:flex;align-items:flex-end;gap:8px;margin:0;padding:10px 12px 8px;border-top:1px solid var(--bd)}
textarea{flex:1;min-height:44px;max-height:140px;margin:0;padding:11px 14px;resize:none;border:1px solid var(--bd);border-radius:14px;background:var(--bg);color:inherit;font:inherit;line-height:1.4;outline:none}
textarea::placeholder{color:var(--mu)}
textarea:focus{border-color:var(--a);box-shadow:0 0 0 3px color-mix(in srgb,var(--a) 18%,transparent)}
textarea:focus-visible{outline:none}
.send{flex:none;width:44px;height:44px;border:0;border-radius:14px;background:var(--a);color:var(--at);display:grid;place-items:center;transition:opacity .15s}
.send:disabled{opacity:.4;cursor:default}
.send svg{width:20px;height:20px}
.send.stop svg{fill:currentColor;stroke-width:1}
.foot{padding:0 0 8px;text-align:center;font-size:11px;color:var(--mu)}
.sr{position:absolute;width:1px;height:1px;margin:-1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
@media (max-width:480px){
.w .panel{inset:0;width:auto;max-width:none;height:auto;max-height:none;border:0;border-radius:0;transform-origin:bottom center}
.open .launcher{display:none}
textarea{font-size:16px}
}
@media (prefers-reduced-motion:reduce){.panel,.launcher,.launcher svg{transition:none}.typing i,.msg{animation:none}}
`;

  // ---- the DOM ----------------------------------------------------------------------
  const host = document.createElement("colloquy-chat");
  const root = host.attachShadow({ mode: "open" });
  if (root.adoptedStyleSheets && "replaceSync" in CSSStyleSheet.prototype) {
    const sheet = new CSSStyleSheet(); // not subject to a page's style-src CSP
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    root.append(h("style", { text: CSS }));
  }

  const launcher = h(
    "button",
    {
      class: "launcher",
      type: "button",
      "aria-label": "Open chat",
      "aria-expanded": "false",
      "aria-controls": "panel",
      "aria-haspopup": "dialog",
    },
    icon(ICONS.chat, "ic-chat"),
    icon(ICONS.down, "ic-down"),
  );
  const log = h("div", {
    class: "log",
    role: "log",
    "aria-label": "Conversation",
    "aria-live": "off", // finished answers are announced once, by `live`
    tabindex: "0",
  });
  const input = h("textarea", {
    id: "input",
    rows: "1",
    placeholder: "Write a message…",
    "aria-label": "Message",
    enterkeyhint: "send",
  });
  const sendButton = h(
    "button",
    { class: "send", type: "submit", "aria-label": "Send", disabled: true },
    icon(ICONS.send),
  );
  const live = h("div", { class: "sr", role: "status", "aria-live": "polite" });
  const form = h("form", { class: "form" }, input, sendButton);
  const panel = h(
    "div",
    {
      class: "panel",
      id: "panel",
      role: "dialog",
      "aria-modal": "true",
      "aria-labelledby": "title",
      tabindex: "-1", // a click on its background keeps the focus (and the trap) inside
    },
    h(
      "div",
      { class: "head" },
      h("span", { class: "avatar", "aria-hidden": "true" }, icon(ICONS.chat)),
      h("h2", { class: "title", id: "title", text: opts.title }),
      h(
        "button",
        {
          class: "ib",
          type: "button",
          "aria-label": "New conversation",
          title: "New conversation",
          onclick: () => restart(),
        },
        icon(ICONS.fresh),
      ),
      h(
        "button",
        {
          class: "ib",
          type: "button",
          "aria-label": "Close chat",
          title: "Close",
          onclick: () => close(),
        },
        icon(ICONS.close),
      ),
    ),
    log,
    form,
    h("div", { class: "foot", text: "Powered by Colloquy" }),
    live,
  );
  const w = h("div", { class: "w" + (opts.left ? " left" : "") }, panel, launcher);
  root.append(w);

  const dark = matchMedia("(prefers-color-scheme: dark)");
  const applyTheme = () =>
    w.classList.toggle("dark", opts.theme === "dark" || (opts.theme === "auto" && dark.matches));
  dark.addEventListener?.("change", applyTheme);
  applyTheme();

  // ---- conversation view ----------------------------------------------------------------
  const nearBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 60;
  const add = (el, stick = nearBottom()) => {
    log.append(el);
    if (stick) log.scrollTop = log.scrollHeight;
    return el;
  };
  const userBubble = (text) => h("div", { class: "msg user", text });
  const botBubble = (text) => h("div", { class: "msg bot" }, markdown(text));
  const typing = () => h("div", { class: "typing", "aria-hidden": "true" }, h("i"), h("i"), h("i"));
  const welcome = () => (opts.welcome ? [botBubble(opts.welcome)] : []);
  const NOTES = { cancelled: "Stopped", error: "Interrupted" };
  const note = (bubble, text) => bubble.append(h("span", { class: "note", text }));

  /** A readable error line with a retry button; `retry` runs after the line is removed. */
  const errorLine = (message, retry) => {
    const line = h("div", { class: "err", role: "alert" }, h("span", { text: message }));
    line.append(
      h("button", {
        class: "retry",
        type: "button",
        text: "Retry",
        onclick: () => {
          const refocus = root.activeElement === line.lastChild;
          line.remove();
          if (refocus) input.focus();
          retry();
        },
      }),
    );
    return add(line, true);
  };

  // ---- HTTP ---------------------------------------------------------------------------------
  class HttpError extends Error {
    constructor(status, code, message) {
      super(message || `HTTP ${status}`);
      this.status = status;
      this.code = code;
    }
  }
  const httpError = async (res) => {
    const body = await res.json().catch(() => ({}));
    return new HttpError(res.status, body.code, body.error);
  };
  const READABLE = {
    429: "Too many messages right now. Please wait a moment and try again.",
    502: "The assistant is unavailable right now. Please try again.",
    503: "The chat service is temporarily unavailable. Please try again.",
    504: "The assistant took too long to answer. Please try again.",
  };
  const BY_CODE = {
    rate_limited: 429,
    llm_unavailable: 502,
    store_unavailable: 503,
    llm_timeout: 504,
  };
  const describe = (e) => {
    if (!navigator.onLine) return "You are offline. Check your connection and try again.";
    const status = e.status || BY_CODE[e.code];
    if (READABLE[status]) return READABLE[status];
    if (e.code === "lost") return "The connection was lost before the answer was complete.";
    if (e.code === "interrupted") return "The answer was interrupted. Please try again.";
    if (e instanceof HttpError && e.status >= 400 && e.status < 500 && e.message) return e.message;
    if (!(e instanceof HttpError)) return "Could not reach the chat service. Please try again.";
    return "Something went wrong. Please try again.";
  };

  let sessionId = storage.get();
  const setSession = (id) => storage.set((sessionId = id));

  const createSession = async () => {
    const res = await fetch(API + "sessions/", {
      method: "POST",
      headers: JSON_HEADERS,
      body: JSON.stringify(opts.user ? { external_user_id: opts.user } : {}),
    });
    if (!res.ok) throw await httpError(res);
    setSession((await res.json()).session_id);
  };

  /** The session, or null when it is gone. */
  const fetchSession = async () => {
    const res = await fetch(API + "sessions/" + encodeURIComponent(sessionId) + "/");
    if (res.status === 404) return null;
    if (!res.ok) throw await httpError(res);
    return res.json();
  };

  /** The newest page of the conversation, oldest first; null when the session is gone. */
  const fetchMessages = async () => {
    const url = API + "messages/?session_id=" + encodeURIComponent(sessionId);
    let res = await fetch(url + "&order=desc&limit=50");
    if (res.ok) return (await res.json()).reverse();
    if (res.status !== 404) res = await fetch(url + "&limit=100"); // a server refusing order=
    if (res.status === 404) return null;
    if (!res.ok) throw await httpError(res);
    return res.json();
  };

  let loaded = false;
  let loading = false; // sending waits for the history, so nothing is shown out of order
  /** Shows the stored conversation (or the welcome for a new visitor). */
  const loadHistory = async () => {
    loaded = true;
    const intro = welcome();
    if (turn) return; // an answer is arriving: leave the conversation as it is
    if (!sessionId) return log.replaceChildren(...intro);
    loading = true;
    log.setAttribute("aria-busy", "true");
    if (!log.children.length) log.append(...intro); // the welcome while the history loads
    try {
      // The session first: an answer that ends between the two requests is in the list.
      const session = await fetchSession();
      const messages = session && (await fetchMessages());
      if (!messages) setSession(null); // expired: a new one starts with the next message
      const active = messages && session.active_response_id; // being generated right now
      const shown = [];
      for (const m of messages || []) {
        if (m.id === active) continue; // shown arriving, below
        if (m.role === "user") shown.push(userBubble(m.message));
        else if (m.role === "assistant") {
          const bubble = botBubble(m.message);
          const why = NOTES[m.metadata?.finish_reason];
          if (why) note(bubble, why);
          shown.push(bubble);
        }
      }
      log.replaceChildren(...intro, ...shown);
      log.scrollTop = log.scrollHeight;
      if (active) attach(active);
    } catch (e) {
      errorLine(describe(e), loadHistory);
    } finally {
      loading = false;
      log.removeAttribute("aria-busy");
    }
  };

  // ---- chat -----------------------------------------------------------------------------------
  let turn = null; // the answer being received: {ctrl, id, last, text, bubble}

  /** Reads SSE events from `res` into `t` until the `done` event (true) or the end (false). */
  const readStream = async (res, t) => {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let dataLines = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      const text = buffer + decoder.decode(value, { stream: true });
      const cut = text.endsWith("\r") ? text.length - 1 : text.length; // maybe half a CRLF
      const lines = text.slice(0, cut).split(/\r\n|\r|\n/);
      buffer = lines.pop() + text.slice(cut);
      for (const line of lines) {
        if (line === "") {
          const payload = dataLines.join("\n");
          dataLines = [];
          if (payload && apply(t, JSON.parse(payload))) {
            reader.cancel().catch(() => {});
            return true;
          }
          continue;
        }
        const colon = line.indexOf(":");
        if (colon === 0) continue; // a comment: keep-alive
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") dataLines.push(value);
        else if (field === "id") t.last = value;
      }
    }
  };

  let frame = 0;
  const render = (t) => {
    const stick = nearBottom();
    t.bubble.replaceChildren(t.text ? markdown(t.text) : typing());
    if (stick) log.scrollTop = log.scrollHeight;
  };

  /** Applies one stream event; true on the last one. */
  const apply = (t, ev) => {
    t.id = ev.response_id || t.id;
    if (ev.chunk) {
      t.text += ev.chunk;
      if (!frame) {
        frame = requestAnimationFrame(() => {
          frame = 0;
          if (turn === t) render(t);
        });
      }
    }
    if (!ev.done) return false;
    if (ev.error) {
      const e = new Error(ev.error);
      e.code = ev.error in BY_CODE ? ev.error : "interrupted";
      throw e;
    }
    t.reason = ev.finish_reason;
    return true;
  };

  const setBusy = (busy) => {
    sendButton.classList.toggle("stop", busy);
    sendButton.setAttribute("aria-label", busy ? "Stop" : "Send");
    sendButton.replaceChildren(icon(busy ? ICONS.stop : ICONS.send));
    sendButton.disabled = !busy && !input.value.trim();
    sendButton.type = busy ? "button" : "submit";
  };

  const post = (message, t) =>
    fetch(STREAM, {
      method: "POST",
      headers: JSON_HEADERS,
      body: JSON.stringify({ session_id: sessionId, message }),
      signal: t.ctrl.signal,
    });

  const lost = () => Object.assign(new Error("lost"), { code: "lost" });

  /**
   * The events of answer `t` after `t.last` (all of them without it): true when the
   * stream reached the end or the server answered 204 (the client has it all).
   */
  const follow = async (t) => {
    let res;
    try {
      res = await fetch(STREAM + encodeURIComponent(t.id) + "/", {
        headers: t.last == null ? {} : { "Last-Event-ID": t.last },
        signal: t.ctrl.signal,
      });
    } catch (e) {
      if (t.ctrl.signal.aborted) throw e;
    }
    if (res?.status === 204) return true;
    if (!res?.ok) throw lost();
    return readStream(res, t);
  };

  /**
   * Streams an answer into a new bubble: `start(t)` gives true once it is complete
   * (else it is resumed); `retry` is offered after an error.
   */
  const run = async (start, retry, id = null) => {
    if (turn) return;
    const t = (turn = { ctrl: new AbortController(), id, last: null, text: "", reason: null });
    t.bubble = add(h("div", { class: "msg bot" }, typing()), true);
    setBusy(true);
    try {
      let complete = await start(t);
      for (let tries = 0; !complete && tries < 3; tries++) {
        if (!t.id) throw lost();
        complete = await follow(t); // after a dropped connection: resume
      }
      if (!complete) throw lost();
      finish(t);
    } catch (e) {
      if (t.ctrl.signal.aborted) t.reason = "cancelled";
      finish(t);
      // After a lost connection the answer is still stored by the server: reload it.
      if (!t.ctrl.signal.aborted) errorLine(describe(e), e.code === "lost" ? loadHistory : retry);
    } finally {
      if (turn === t) turn = null;
      setBusy(false);
    }
  };

  /** Asks for an answer to `message` (already shown) and streams it in. */
  const ask = (message) =>
    run(
      async (t) => {
        if (!sessionId) await createSession();
        let res = await post(message, t);
        if (res.status === 404) {
          await createSession(); // the session expired: start a new one, silently
          res = await post(message, t);
        }
        if (!res.ok) throw await httpError(res);
        return readStream(res, t);
      },
      () => ask(message),
    );

  /** Shows answer `id`, running now (a reload, a second tab), from its first event. */
  const attach = (id) => run(follow, loadHistory, id);

  const finish = (t) => {
    cancelAnimationFrame(frame);
    frame = 0;
    if (t.text) {
      render(t);
      if (NOTES[t.reason]) note(t.bubble, NOTES[t.reason]);
      live.textContent = "";
      live.textContent = t.text;
    } else t.bubble.remove();
  };

  const stop = () => {
    const t = turn;
    if (!t) return;
    if (t.id) {
      // Fire and forget: a server without the cancel endpoint answers 404.
      fetch(STREAM + encodeURIComponent(t.id) + "/cancel/", {
        method: "POST",
        keepalive: true,
      }).catch(() => {});
    }
    t.ctrl.abort();
  };

  const submit = () => {
    const message = input.value.trim();
    if (turn || loading || !message) return;
    input.value = "";
    grow();
    add(userBubble(message), true);
    ask(message);
  };

  const restart = () => {
    stop();
    setSession(null);
    log.replaceChildren(...welcome());
    input.focus();
  };

  // ---- open, close, keyboard ------------------------------------------------------------------
  const grow = () => {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 140) + "px";
    if (!turn) sendButton.disabled = !input.value.trim();
  };

  const isOpen = () => w.classList.contains("open");
  const open = () => {
    w.classList.add("open");
    launcher.setAttribute("aria-expanded", "true");
    launcher.setAttribute("aria-label", "Close chat");
    if (!loaded) loadHistory();
    input.focus();
  };
  const close = () => {
    w.classList.remove("open");
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-label", "Open chat");
    launcher.focus();
  };

  const focusable = () =>
    [...panel.querySelectorAll("button, textarea, a[href], [tabindex='0']")].filter(
      (el) => !el.disabled && el.getClientRects().length,
    );

  launcher.addEventListener("click", () => (isOpen() ? close() : open()));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (turn) stop();
    else submit();
  });
  sendButton.addEventListener("click", (e) => {
    if (turn) {
      e.preventDefault();
      stop();
    }
  });
  input.addEventListener("input", grow);
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  });
  panel.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      e.preventDefault();
      close();
    } else if (e.key === "Tab") {
      // Focus trap: Tab and Shift+Tab cycle inside the open panel.
      const items = focusable();
      const at = items.indexOf(root.activeElement);
      const next = e.shiftKey
        ? at <= 0
          ? items[items.length - 1]
          : null
        : at === items.length - 1 || at < 0
          ? items[0]
          : null;
      if (next) {
        e.preventDefault();
        next.focus();
      }
    }
  });

  const mount = () => {
    (document.body || document.documentElement).append(host);
    performance.mark?.("colloquy:ready");
  };
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
