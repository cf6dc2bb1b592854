/*! Colloquy chat widget | MIT OR Apache-2.0
 *
 * Add one tag to a page:
 *   <script src="https://chat.example.com/widget.js" data-api="https://chat.example.com" defer></script>
 *
 * Optional attributes: data-api (default: the origin this script is served from),
 * data-title, data-welcome, data-external-user-id, data-theme (light|dark|auto),
 * data-position (bottom-right|bottom-left), data-handoff ("off" hides "Talk to a person").
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
    handoff: data.handoff !== "off",
  };
  const API = base + "/api/chats/";
  const STREAM = API + "messages/chat/stream/";
  const KEY = "colloquy:" + base + ":session"; // localStorage, one session per API
  const PENDING = "colloquy:" + base + ":handoff"; // "1" while a person is asked for or answering
  const JSON_HEADERS = { "Content-Type": "application/json" };

  const stored = (key) => ({
    get() {
      try {
        return localStorage.getItem(key);
      } catch {
        return null; // storage blocked (sandboxed frame, privacy mode): no memory
      }
    },
    set(value) {
      try {
        if (value) localStorage.setItem(key, value);
        else localStorage.removeItem(key);
      } catch {
        /* ignored, see get() */
      }
    },
  });
  const storage = stored(KEY);
  const pendingFlag = stored(PENDING);
  // When this visitor asked for a person ({"session", "at": [times]}): the session keeps
  // only a pending request, the notice stays in the conversation after it.
  const askedStore = stored("colloquy:" + base + ":asked");

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
    up: "M7 10v11M15 5.9 14 10h5.8a2 2 0 0 1 1.9 2.6l-2.3 7A2 2 0 0 1 17.5 21H4a1 1 0 0 1-1-1v-9a1 1 0 0 1 1-1h3l4-8a3 3 0 0 1 3 3.9z",
    thumbDown:
      "M17 14V3M9 18.1 10 14H4.2a2 2 0 0 1-1.9-2.6l2.3-7A2 2 0 0 1 6.5 3H20a1 1 0 0 1 1 1v9a1 1 0 0 1-1 1h-3l-4 8a3 3 0 0 1-3-3.9z",
    person: "M20 21v-2a4 4 0 0 0-4-4H8a4 4 0 0 0-4 4v2M12 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8z",
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
.fb{align-self:flex-start;display:flex;gap:2px;margin:-6px 0 0 4px}
.thumb{width:30px;height:30px;border:0;border-radius:8px;background:transparent;color:var(--mu);display:grid;place-items:center}
.thumb svg{width:16px;height:16px}
.thumb:hover{background:var(--bb);color:var(--fg)}
.thumb[aria-pressed=true]{color:var(--a);background:color-mix(in srgb,var(--a) 12%,transparent)}
.thumb[aria-pressed=true] svg{fill:color-mix(in srgb,var(--a) 25%,transparent)}
.who{display:block;margin-bottom:2px;font-size:12px;font-weight:650;color:var(--mu)}
.op{border:1px solid var(--bd)}
.notice{align-self:center;max-width:92%;overflow-wrap:anywhere;padding:2px 10px;font-size:12.5px;line-height:1.4;text-align:center;color:var(--mu)}
.sent{align-self:flex-end;margin-top:-6px;font-size:12px;color:var(--mu)}
.offline{flex-wrap:wrap;color:var(--fg);background:var(--bb);border-color:var(--bd)}
.offline span{flex-basis:100%}
.dark .offline{color:var(--fg);background:var(--bb);border-color:var(--bd)}
.bar{display:flex;align-items:center;justify-content:flex-end;gap:8px;min-height:0;padding:6px 12px 0;font-size:12.5px;color:var(--mu)}
.bar:empty,.bar[hidden]{display:none}
.bar span{flex:1;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.human{display:flex;align-items:center;gap:6px;padding:4px 10px;border:1px solid var(--bd);border-radius:99px;background:transparent;font-size:12.5px;font-weight:600;color:var(--fg)}
.human svg{width:14px;height:14px}
.human:hover{border-color:var(--a)}
.human[hidden]{display:none}
.human:disabled{opacity:.5;cursor:default}
.unread::after{content:"";position:absolute;top:4px;right:4px;width:12px;height:12px;border-radius:50%;background:#e5484d;border:2px solid var(--bg)}
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
@media (forced-colors:active){.thumb[aria-pressed=true]{outline:2px solid CanvasText}}
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
  const humanButton = h(
    "button",
    { class: "human", type: "button", onclick: () => talkToPerson() },
    icon(ICONS.person),
    "Talk to a person",
  );
  const barText = h("span");
  const bar = h("div", { class: "bar" }, barText, humanButton);
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
    bar,
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
  const addAll = (els) => {
    const stick = nearBottom();
    for (const el of els) add(el, stick);
  };
  const userBubble = (text) => h("div", { class: "msg user", text });
  const botBubble = (text) => h("div", { class: "msg bot" }, markdown(text));
  /** A person's message: their name (as text), then the message. */
  const operatorBubble = (name, text) =>
    h("div", { class: "msg bot op" }, h("span", { class: "who", text: name }), markdown(text));
  const noticeLine = (text) => h("div", { class: "notice", text });
  const sentLine = () => h("div", { class: "sent", text: "Sent to the team" });
  const typing = () => h("div", { class: "typing", "aria-hidden": "true" }, h("i"), h("i"), h("i"));
  const welcome = () => (opts.welcome ? [botBubble(opts.welcome)] : []);
  const NOTES = { cancelled: "Stopped", error: "Interrupted" };
  const note = (bubble, text) => bubble.append(h("span", { class: "note", text }));
  /** Says `text` once to screen readers (the polite live region). */
  const announce = (text) => {
    live.textContent = "";
    live.textContent = text;
  };

  /** A readable error line with a retry button; `retry` runs after the line is removed. */
  const errorLine = (message, retry, label = "Retry", cls = "") => {
    const line = h("div", { class: "err" + cls, role: "alert" }, h("span", { text: message }));
    if (retry) {
      line.append(
        h("button", {
          class: "retry",
          type: "button",
          text: label,
          onclick: () => {
            const refocus = root.activeElement === line.lastChild;
            line.remove();
            if (refocus) input.focus();
            retry();
          },
        }),
      );
    }
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
    budget_exhausted: 503,
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
  const enc = encodeURIComponent;

  let sessionId = storage.get();
  const setSession = (id) => storage.set((sessionId = id));

  const createSession = async () => {
    const res = await fetch(API + "sessions/", {
      method: "POST",
      headers: JSON_HEADERS,
      body: JSON.stringify(opts.user ? { external_user_id: opts.user } : {}),
    });
    if (!res.ok) throw await httpError(res);
    closeEvents();
    forget();
    setSession((await res.json()).session_id);
    syncEvents();
  };

  /** The session, or null when it is gone. */
  const fetchSession = async () => {
    const res = await fetch(API + "sessions/" + enc(sessionId) + "/");
    if (res.status === 404) return null;
    if (!res.ok) throw await httpError(res);
    return res.json();
  };

  /** The newest page of the conversation, oldest first; null when the session is gone. */
  const fetchMessages = async () => {
    const url = API + "messages/?session_id=" + enc(sessionId);
    let res = await fetch(url + "&order=desc&limit=50");
    if (res.ok) return (await res.json()).reverse();
    if (res.status !== 404) res = await fetch(url + "&limit=100"); // a server refusing order=
    if (res.status === 404) return null;
    if (!res.ok) throw await httpError(res);
    return res.json();
  };

  // ---- who answers: the model or a person ----------------------------------------------------
  // The conversation's state, rebuilt from the stored messages and the session on every
  // load, then kept by the session's events: "ai"; "waiting" (the visitor asked for a
  // person, nobody has written yet); "human" (a person answers; `operator` is their name).
  let mode = "ai";
  let operator = null;
  let session = null; // the last session JSON seen
  let requested = null; // the handoff_requested_at whose notice is shown
  let lastId = null; // the newest stored message held: where the events stream resumes
  const shown = new Set(); // ids of the stored messages in the log
  const elements = new Map(); // message id -> its elements (for message_deleted)
  let unsent = []; // the visitor's bubbles not yet matched to a stored message: {text, el}

  const forget = () => {
    mode = "ai";
    operator = null;
    session = null;
    requested = null;
    lastId = null;
    shown.clear();
    elements.clear();
    pendingFlag.set(null);
    renderBar();
  };

  const renderBar = () => {
    const text =
      mode === "waiting"
        ? "Waiting for a person…"
        : mode === "human"
          ? operator
            ? "You are chatting with " + operator
            : "A person is answering"
          : "";
    barText.textContent = text;
    humanButton.hidden = !opts.handoff || mode !== "ai";
    bar.hidden = !text && humanButton.hidden;
  };

  const isAnswer = (m) =>
    m.role === "assistant" &&
    typeof m.metadata?.operator !== "string" &&
    typeof m.metadata?.notice !== "string";

  const left = () =>
    (operator || "The person") + " left the conversation. The assistant answers again.";

  /**
   * The elements for stored message `m` (updating the state); [] for other roles.
   * `answered`: the model answered it (the next stored message), so the person had
   * left before it was sent.
   */
  const messageEls = (m, answered = false) => {
    const meta = m.metadata || {};
    const els = [];
    if (m.role === "user" && answered && mode !== "ai") {
      if (mode === "human") els.push(noticeLine(left()));
      mode = "ai";
      operator = null;
    }
    if (m.role === "user") {
      els.push(userBubble(m.message));
      if (mode !== "ai") els.push(sentLine());
    } else if (m.role === "assistant" && typeof meta.notice === "string") {
      els.push(noticeLine(m.message)); // e.g. nobody answered the request for a person in time
      mode = "ai";
      operator = null;
    } else if (m.role === "assistant" && typeof meta.operator === "string") {
      if (mode !== "human" || operator !== meta.operator) {
        els.push(noticeLine(meta.operator + " joined the conversation"));
      }
      mode = "human";
      operator = meta.operator;
      els.push(operatorBubble(meta.operator, m.message));
    } else if (m.role === "assistant") {
      if (mode === "human") els.push(noticeLine(left()));
      mode = "ai";
      operator = null;
      const bubble = botBubble(m.message);
      const why = NOTES[meta.finish_reason];
      if (why) note(bubble, why);
      els.push(bubble, thumbs(m.id, meta.feedback?.rating));
    }
    shown.add(m.id);
    elements.set(m.id, els);
    return els;
  };

  /** The notice for the visitor's request for a person made at `at` (once). */
  const requestEls = (at) => {
    if (at === requested) {
      if (mode === "ai") mode = "waiting"; // still pending (after an older snapshot said "ai")
      return [];
    }
    requested = at;
    if (mode === "human") return []; // a person is already here
    mode = "waiting";
    return [
      noticeLine(
        "You asked for a person. Someone from the team will answer here; you can keep writing.",
      ),
    ];
  };

  /** The times this visitor asked for a person in the current session, oldest first. */
  const asks = () => {
    try {
      const kept = JSON.parse(askedStore.get());
      return kept?.session === sessionId && Array.isArray(kept.at) ? kept.at : [];
    } catch {
      return [];
    }
  };
  const remember = (at) => {
    const at2 = asks();
    if (at2.includes(at)) return;
    askedStore.set(JSON.stringify({ session: sessionId, at: [...at2, at].slice(-20) }));
  };

  /** The notices for the session `s` as it is now (updating the state). */
  const sessionEls = (s) => {
    session = s;
    const els = [];
    if (s.responder === "human") {
      const at = s.handoff_requested_at;
      if (at) {
        remember(at);
        els.push(...requestEls(at));
      } else if (mode === "ai") {
        mode = "human";
        els.push(noticeLine("A person joined the conversation"));
      }
    } else if (mode === "human") {
      els.push(noticeLine(left()));
      mode = "ai";
      operator = null;
    } else {
      mode = "ai"; // a request nobody took: the timeout's own message says so
    }
    pendingFlag.set(mode === "ai" ? null : "1");
    renderBar();
    return els;
  };

  let loaded = false;
  let loading = false; // sending waits for the history, so nothing is shown out of order
  /** Shows the stored conversation (or the welcome for a new visitor). */
  const loadHistory = async () => {
    loaded = true;
    const intro = welcome();
    if (turn) return; // an answer is arriving: leave the conversation as it is
    closeEvents();
    forget();
    unsent = [];
    if (!sessionId) return log.replaceChildren(...intro);
    loading = true;
    log.setAttribute("aria-busy", "true");
    if (!log.children.length) log.append(...intro); // the welcome while the history loads
    try {
      // The session first: an answer that ends between the two requests is in the list.
      const s = await fetchSession();
      const messages = s && (await fetchMessages());
      if (!messages) setSession(null); // expired: a new one starts with the next message
      const active = messages && s.active_response_id; // being generated right now
      const els = [];
      const times = asks();
      if (s?.responder === "human" && s.handoff_requested_at) times.push(s.handoff_requested_at);
      times.sort((a, b) => Date.parse(a) - Date.parse(b));
      let next = 0; // the requests for a person, each where it was made
      for (const [i, m] of (messages || []).entries()) {
        lastId = m.id;
        while (next < times.length && Date.parse(times[next]) <= Date.parse(m.timestamp)) {
          els.push(...requestEls(times[next++]));
        }
        if (m.id === active) continue; // shown arriving, below
        const reply = messages[i + 1];
        els.push(...messageEls(m, reply != null && isAnswer(reply)));
      }
      while (messages && next < times.length) els.push(...requestEls(times[next++]));
      if (s) els.push(...sessionEls(s));
      log.replaceChildren(...intro, ...els);
      log.scrollTop = log.scrollHeight;
      if (active) attach(active);
    } catch (e) {
      errorLine(describe(e), loadHistory);
    } finally {
      loading = false;
      log.removeAttribute("aria-busy");
      syncEvents();
    }
  };

  // ---- the session's events (live messages of people, the handoff state) ------------------------
  // Open only while the panel is open or a person is asked for or answering: a closed
  // widget costs the server nothing.
  let events = null;
  let eventsTimer = 0;
  let eventsFailures = 0;
  let ended = null; // a session whose stream said it is deleted or expired

  const closeEvents = () => {
    events?.close();
    events = null;
    clearTimeout(eventsTimer);
    eventsTimer = 0;
  };

  // With the panel closed, one tab of the site listens for a person (a Web Lock elects
  // it; the next one takes over when it closes): a browser holds at most 6 HTTP/1.1
  // connections per server, and every open stream is one.
  const LOCK = "colloquy:" + base + ":events";
  let lockAsk = null; // the pending or granted request for the lock
  let lockHeld = false;
  let unlock = null; // releases a granted lock
  const takeLock = () => {
    if (lockAsk || !navigator.locks) return;
    lockAsk = new AbortController();
    navigator.locks
      .request(LOCK, { signal: lockAsk.signal }, () => {
        lockHeld = true;
        syncEvents();
        return new Promise((resolve) => (unlock = resolve));
      })
      .catch(() => {}); // aborted before it was granted
  };
  const dropLock = () => {
    lockAsk?.abort();
    unlock?.();
    lockAsk = unlock = null;
    lockHeld = false;
  };

  const syncEvents = () => {
    const pending = mode !== "ai";
    const want = sessionId && sessionId !== ended && loaded && !loading && (isOpen() || pending);
    if (want && pending) takeLock();
    else dropLock();
    if (!want || (!isOpen() && !lockHeld && navigator.locks)) closeEvents();
    else if (!events && !eventsTimer) openEvents();
  };

  const openEvents = () => {
    const url =
      API +
      "sessions/" +
      enc(sessionId) +
      "/events/" +
      (lastId ? "?last_event_id=" + enc(lastId) : "");
    let es;
    try {
      es = new EventSource(url);
    } catch {
      return; // refused by the page (a policy): no live events
    }
    events = es;
    const on = (type, handle) =>
      es.addEventListener(type, (e) => {
        if (events !== es) return;
        let body;
        try {
          body = JSON.parse(e.data);
        } catch {
          return; // not ours
        }
        handle(body, e);
      });
    on("session", (s) => {
      eventsFailures = 0;
      onSession(s);
    });
    on("message", (m, e) => {
      if (e.lastEventId) lastId = e.lastEventId;
      onMessage(m);
    });
    on("message_deleted", ({ id }) => {
      for (const el of elements.get(id) || []) el.remove();
      elements.delete(id);
    });
    const end = () => {
      ended = sessionId;
      closeEvents();
    };
    on("session_deleted", end);
    on("expired", end);
    es.addEventListener("error", () => {
      if (events !== es || es.readyState !== EventSource.CLOSED) return; // it reconnects itself
      // Refused (an error status) or given up: try again later, less and less often.
      events = null;
      const wait = Math.min(60_000, 1000 * 2 ** eventsFailures++);
      eventsTimer = setTimeout(() => {
        eventsTimer = 0;
        syncEvents();
      }, wait);
    });
  };

  const markUnread = () => {
    if (isOpen()) return;
    launcher.classList.add("unread");
    launcher.setAttribute("aria-label", "Open chat (new message)");
  };

  const onSession = (s) => {
    const els = sessionEls(s);
    addAll(els);
    for (const el of els) announce(el.textContent);
    if (els.length) markUnread();
    const active = s.active_response_id;
    // An answer started elsewhere (a second tab): show it arriving.
    if (active && !turn && !shown.has(active) && !loading) attach(active);
    syncEvents();
  };

  const onMessage = (m) => {
    if (!m?.id || shown.has(m.id)) return;
    if (turn && (turn.id === m.id || isAnswer(m))) {
      turn.later.push(m); // after the answer being shown (which may be this one)
      return;
    }
    if (m.role === "user") {
      const mine = unsent.findIndex((u) => u.text === m.message);
      if (mine >= 0) {
        bind(unsent[mine].el, m.id);
        return;
      }
    }
    const els = messageEls(m);
    addAll(els);
    if (m.role === "assistant") {
      const name = m.metadata?.operator;
      announce(typeof name === "string" ? name + ": " + m.message : m.message);
      markUnread();
    }
    pendingFlag.set(mode === "ai" ? null : "1");
    renderBar();
    syncEvents();
  };

  /** The visitor's bubble `el` is stored message `id`. */
  const bind = (el, id) => {
    unsent = unsent.filter((u) => u.el !== el);
    shown.add(id);
    elements.set(id, [el]);
  };

  const requestHandoff = async () => {
    if (!sessionId) await createSession();
    const call = () =>
      fetch(API + "sessions/" + enc(sessionId) + "/handoff/", {
        method: "POST",
        headers: JSON_HEADERS,
        body: "{}",
      });
    let res = await call();
    if (res.status === 404 && (await fetchSession()) === null) {
      await createSession(); // the session expired: ask in a new one
      res = await call();
    }
    if (!res.ok) throw await httpError(res);
    onSession(await res.json());
  };

  let asking = false;
  const talkToPerson = async () => {
    if (asking) return;
    asking = true;
    humanButton.disabled = true;
    try {
      await requestHandoff();
      input.focus();
    } catch (e) {
      errorLine(describe(e), talkToPerson);
    } finally {
      asking = false;
      humanButton.disabled = false;
    }
  };

  /** Thumbs up and down under answer `id`; `rating` is the stored choice. */
  const thumbs = (id, rating) => {
    const group = h("div", { class: "fb", role: "group", "aria-label": "Rate this answer" });
    const press = (value) => {
      for (const b of group.children) b.setAttribute("aria-pressed", String(b.value === value));
    };
    const rate = async (value) => {
      const was = [...group.children].find((b) => b.getAttribute("aria-pressed") === "true");
      if (was?.value === value) return;
      press(value);
      try {
        const res = await fetch(API + "messages/" + enc(id) + "/feedback/", {
          method: "POST",
          headers: JSON_HEADERS,
          body: JSON.stringify({ rating: value, session_id: sessionId }),
        });
        if (!res.ok) throw await httpError(res);
        press((await res.json()).metadata?.feedback?.rating);
        announce("Thanks for your feedback.");
      } catch {
        press(was?.value);
        announce("Your feedback could not be sent. Please try again.");
      }
    };
    for (const [value, label, d] of [
      ["up", "Good answer", ICONS.up],
      ["down", "Bad answer", ICONS.thumbDown],
    ]) {
      group.append(
        h(
          "button",
          {
            class: "thumb",
            type: "button",
            value,
            title: label,
            "aria-label": label,
            "aria-pressed": String(rating === value),
            onclick: () => rate(value),
          },
          icon(d),
        ),
      );
    }
    return group;
  };

  // ---- chat -----------------------------------------------------------------------------------
  // The answer being received: {ctrl, id, last, text, bubble, reason, responder,
  // user: the visitor's bubble it answers, later: stored messages to show after it}.
  let turn = null;

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
    if (t.id) shown.add(t.id);
    if (ev.message_id && t.user && !t.bound) {
      bind(t.user, ev.message_id); // the visitor's message is stored
      t.bound = true;
    }
    if (ev.responder) t.responder = ev.responder;
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
  const run = async (start, retry, id = null, user = null) => {
    if (turn) return;
    const t = (turn = {
      ctrl: new AbortController(),
      id,
      last: null,
      text: "",
      reason: null,
      responder: null,
      user,
      later: [],
    });
    if (id) shown.add(id);
    // While a person answers, nothing is generated: no typing dots.
    t.bubble = add(h("div", { class: "msg bot" }, mode === "ai" ? typing() : ""), true);
    setBusy(true);
    try {
      let complete = await start(t);
      for (let tries = 0; !complete && tries < 3; tries++) {
        if (!t.id) throw lost();
        complete = await follow(t); // after a dropped connection: resume
      }
      if (!complete) throw lost();
      finish(t, true);
    } catch (e) {
      const stopped = t.ctrl.signal.aborted;
      if (stopped) t.reason = "cancelled";
      finish(t, stopped);
      if (stopped) {
        /* the visitor stopped it */
      } else if (e.code === "budget_exhausted") offline(retry);
      // After a lost connection the answer is still stored by the server: reload it.
      else errorLine(describe(e), e.code === "lost" ? loadHistory : retry);
    } finally {
      if (turn === t) turn = null;
      setBusy(false);
      for (const m of t.later) onMessage(m); // what the events stream held back meanwhile
    }
  };

  /** The model's budget is spent: say so, and offer a person instead (when offered). */
  const offline = (retry) => {
    const text = "The assistant is offline right now.";
    if (opts.handoff) {
      errorLine(
        text + " A person can answer your message instead.",
        async () => {
          try {
            await requestHandoff();
            retry(); // the same message again: now it is stored for the team
          } catch (e) {
            errorLine(describe(e), () => offline(retry));
          }
        },
        "Leave a message for a person",
        " offline",
      );
    } else errorLine(text + " Please try again later.", retry, "Retry", " offline");
    announce(text);
  };

  /** Asks for an answer to `message` (already shown) and streams it in. */
  const ask = (message, user) =>
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
      () => ask(message, user),
      null,
      user,
    );

  /** Shows answer `id`, running now (a reload, a second tab), from its first event. */
  const attach = (id) => run(follow, loadHistory, id);

  /** Shows the end of answer `t`; `stored` when it is kept by the server (thumbs). */
  const finish = (t, stored) => {
    cancelAnimationFrame(frame);
    frame = 0;
    if (t.text) {
      render(t);
      if (NOTES[t.reason]) note(t.bubble, NOTES[t.reason]);
      if (stored && t.id) {
        const rating = thumbs(t.id);
        t.bubble.after(rating);
        elements.set(t.id, [t.bubble, rating]);
      }
      announce(t.text);
    } else t.bubble.remove();
    if (t.responder === "human") {
      // Nothing was generated: the message waits for a person.
      const mine = t.user || [...log.querySelectorAll(".msg.user")].pop();
      mine?.after(sentLine());
      announce("Sent to the team. A person will answer here.");
      if (mode === "ai" && session)
        onSession({ ...session, responder: "human", active_response_id: null });
    }
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
    const el = add(userBubble(message), true);
    unsent.push({ text: message, el });
    ask(message, el);
  };

  const restart = () => {
    stop();
    closeEvents();
    forget();
    unsent = [];
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
    launcher.classList.remove("unread");
    launcher.setAttribute("aria-expanded", "true");
    launcher.setAttribute("aria-label", "Close chat");
    if (!loaded) loadHistory();
    else syncEvents();
    input.focus();
  };
  const close = () => {
    w.classList.remove("open");
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-label", "Open chat");
    syncEvents();
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
    renderBar();
    // A person was asked for (or answers) on an earlier page: listen for them even with
    // the panel closed, and show a dot on the launcher when they write.
    if (sessionId && pendingFlag.get()) loadHistory();
    performance.mark?.("colloquy:ready");
  };
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
