// The operator's console of Colloquy: inbox, transcripts, dashboard, privacy requests.
// Plain JavaScript, no build step, served at /console/ under a strict CSP (nothing
// inline). Every string that comes from the API is put into the page as text (DOM
// APIs and textContent), never parsed as HTML. The admin token lives in this tab's
// sessionStorage only and travels as an Authorization header, never in a URL.
"use strict";

(() => {
  const TOKEN_KEY = "colloquy.console.token";
  const NAME_KEY = "colloquy.console.operator";
  const API = "/api/chats";
  const POLL_MS = 1000;
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  const STATE_LABEL = {
    waiting: "Waiting for a person",
    human: "With a person",
    active: "Active",
    closed: "Closed",
  };
  const STATE_RANK = { waiting: 0, human: 1, active: 2, closed: 3 };

  const $ = (id) => document.getElementById(id);

  /** An element with properties and children; strings become text nodes. */
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const sleep = (ms, signal) =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal?.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      });
    });

  // ---------------------------------------------------------------- token and API

  const token = {
    get: () => sessionStorage.getItem(TOKEN_KEY),
    set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
    clear: () => sessionStorage.removeItem(TOKEN_KEY),
  };

  class ApiError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  /** Whether `e` says the endpoint does not exist on this server (an older build). */
  const missingEndpoint = (e) =>
    e instanceof ApiError && e.status === 404 && (e.code === "not_found" || e.code === "message_not_found");
  /** Whether `e` says the server cannot do it: no such endpoint, or a store without it. */
  const unavailable = (e) => missingEndpoint(e) || (e instanceof ApiError && e.code === "not_supported");

  function describe(e) {
    if (e instanceof ApiError) {
      if (e.status === 429 || e.status === 503) {
        const wait = e.retryAfter ? ` Try again in ${e.retryAfter} s.` : "";
        return `${e.message}.${wait}`;
      }
      return `${e.message} (${e.code}).`;
    }
    if (e?.name === "AbortError") return "Cancelled.";
    return "The server could not be reached.";
  }

  /**
   * One API call with the admin token. `query` values that are empty are left out.
   * Resolves with the JSON body (null for 204), or the Response with `raw`.
   */
  async function api(method, path, { query, body, headers, signal, raw, tokenValue } = {}) {
    let url = API + path;
    if (query) {
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(query)) {
        if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
      }
      const text = params.toString();
      if (text) url += `?${text}`;
    }
    const init = {
      method,
      headers: { Authorization: `Bearer ${tokenValue ?? token.get() ?? ""}`, ...headers },
      signal,
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    if (!response.ok) {
      let data = null;
      try {
        data = await response.json();
      } catch {
        /* not JSON */
      }
      const error = new ApiError(
        response.status,
        data?.code || `http_${response.status}`,
        data?.error || response.statusText || "Request failed",
        response.headers.get("retry-after"),
      );
      if (response.status === 401 && tokenValue === undefined) signedOut("The server no longer accepts the token. Sign in again.");
      throw error;
    }
    if (raw) return response;
    if (response.status === 204) return null;
    return response.json();
  }

  /** Reads a text/event-stream response, calling `onEvent({event, data, id})`. */
  async function readSse(response, onEvent, signal) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const stop = () => reader.cancel().catch(() => {});
    signal?.addEventListener("abort", stop);
    let buffer = "";
    let event = "message";
    let data = [];
    let id = null;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
          const line = buffer.slice(0, end);
          buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
          if (line === "") {
            if (data.length) {
              if (onEvent({ event, data: data.join("\n"), id }) === false) return;
            }
            event = "message";
            data = [];
            id = null;
            continue;
          }
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? "" : line.slice(colon + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "event") event = val;
          else if (field === "data") data.push(val);
          else if (field === "id") id = val;
        }
      }
    } finally {
      signal?.removeEventListener("abort", stop);
    }
  }

  // ---------------------------------------------------------------- formatting

  function fmtTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso ?? "");
    return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function relTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return "";
    const s = Math.round((Date.now() - d.getTime()) / 1000);
    if (s < 45) return "just now";
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return d.toLocaleDateString(undefined, { dateStyle: "medium" });
  }

  const timeEl = (iso, text) =>
    h("time", { datetime: iso, title: fmtTime(iso) }, text ?? fmtTime(iso));

  function stateOf(session) {
    if (!session.is_active) return "closed";
    if (session.responder === "human") return session.handoff_requested_at ? "waiting" : "human";
    return "active";
  }

  const stateBadge = (state) =>
    h("span", { class: `state state-${STATE_LABEL[state] ? state : "active"}` }, STATE_LABEL[state] || String(state));

  const isOperator = (m) => typeof m.metadata?.operator === "string" && m.metadata.operator !== "";

  function roleLabel(m) {
    if (m.role === "user") return "Visitor";
    if (m.role === "system") return "System";
    if (typeof m.metadata?.notice === "string") return "Notice";
    if (isOperator(m)) return `Operator ${m.metadata.operator}`;
    return "AI";
  }

  const safeName = (s) => String(s).replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 80) || "session";

  function announce(text) {
    const el = $("announcer");
    el.textContent = "";
    // A fresh text node is announced even when the text repeats.
    setTimeout(() => (el.textContent = text), 30);
  }

  // ---------------------------------------------------------------- views and routing

  const views = ["signin", "inbox", "dashboard", "privacy"];
  let current = null;

  function showView(name, focusId) {
    for (const v of views) $(`view-${v}`).hidden = v !== name;
    for (const v of ["inbox", "dashboard", "privacy"]) {
      const link = $(`nav-${v}`);
      if (v === name) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    const signedIn = name !== "signin";
    $("nav").hidden = !signedIn;
    $("sign-out").hidden = !signedIn;
    current = name;
    const target = focusId && $(focusId);
    if (target && document.activeElement !== target) target.focus();
  }

  function route() {
    if (!token.get()) {
      stopAll();
      showView("signin", "token");
      return;
    }
    const hash = decodeURIComponent(location.hash.replace(/^#/, ""));
    const [name, arg] = hash.split("/");
    if (name === "dashboard") {
      stopInbox();
      closeTranscript();
      showView("dashboard", "dash-title");
      loadDashboard();
    } else if (name === "privacy") {
      stopInbox();
      closeTranscript();
      showView("privacy", "privacy-title");
    } else if (name === "session" && UUID.test(arg || "")) {
      showView("inbox");
      startInbox();
      openTranscript(arg.toLowerCase());
    } else {
      showView("inbox", "inbox-title");
      closeTranscript();
      startInbox();
    }
  }

  function stopAll() {
    stopInbox();
    closeTranscript();
  }

  function signedOut(message) {
    token.clear();
    stopAll();
    $("signin-error").textContent = message || "";
    if (location.hash) history.replaceState(null, "", location.pathname);
    showView("signin", "token");
  }

  // ---------------------------------------------------------------- sign in

  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("token");
    const value = input.value.trim();
    const error = $("signin-error");
    error.textContent = "";
    if (!value) {
      error.textContent = "Enter the admin token.";
      input.focus();
      return;
    }
    if (!/^[\x21-\x7e]+$/.test(value)) {
      error.textContent = "That token is wrong: the server's token has no spaces or special characters.";
      input.focus();
      return;
    }
    const button = $("signin-submit");
    button.disabled = true;
    try {
      await api("GET", "/stats/", { tokenValue: value });
      token.set(value);
      input.value = "";
      if (!location.hash || location.hash === "#") location.hash = "#inbox";
      else route();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) error.textContent = "That token is wrong.";
      else if (e instanceof ApiError && e.status === 429)
        error.textContent = `Too many wrong tokens from this address. Try again in ${e.retryAfter || 60} s.`;
      else error.textContent = describe(e);
      input.focus();
      input.select();
    } finally {
      button.disabled = false;
    }
  });

  $("sign-out").addEventListener("click", () => {
    signedOut("Signed out.");
  });

  // ---------------------------------------------------------------- inbox

  const inbox = {
    mode: null, // "inbox" (the inbox endpoint) or "sessions" (the session list, older servers)
    timer: null,
    running: false,
    rows: [],
    extra: [], // rows of pages loaded with "Load more"
    next: null,
    signature: "",
    searching: false,
    firstQuestions: new Map(), // session uuid -> first question (session-list mode)
    generation: 0,
  };

  function readFilters() {
    return {
      state: $("f-state").value,
      external_user_id: $("f-user").value.trim(),
      from: $("f-from").value,
      to: $("f-to").value,
      rating: $("f-down").checked ? "down" : "",
    };
  }

  function normalizeRow(r) {
    return {
      session: r.session,
      first_question: r.first_question ?? null,
      last_message: r.last_message ?? null,
      message_count: r.message_count ?? null,
      last_activity_at: r.last_activity_at || r.session.created_at,
      state: r.state || stateOf(r.session),
    };
  }

  async function fetchInbox(cursor) {
    const f = readFilters();
    if (inbox.mode !== "sessions") {
      try {
        const data = await api("GET", "/inbox/", { query: { ...f, limit: 50, cursor } });
        inbox.mode = "inbox";
        return { rows: (data.results || []).map(normalizeRow), next: data.next || null };
      } catch (e) {
        if (!unavailable(e)) throw e;
        inbox.mode = "sessions";
      }
    }
    // An older server without the inbox: the session list, filtered here.
    const query = { limit: 100, external_user_id: f.external_user_id };
    if (f.state === "closed") query.is_active = "false";
    else if (f.state) query.is_active = "true";
    const sessions = await api("GET", "/sessions/", { query });
    const from = f.from ? Date.parse(`${f.from}T00:00:00Z`) : -Infinity;
    const to = f.to ? Date.parse(`${f.to}T00:00:00Z`) + 86400000 : Infinity;
    let rows = sessions.map((s) =>
      normalizeRow({ session: s, first_question: inbox.firstQuestions.get(s.id) ?? null }),
    );
    rows = rows.filter((r) => {
      const t = Date.parse(r.last_activity_at);
      if (t < from || t >= to) return false;
      if (f.state === "human") return r.state === "human" || r.state === "waiting";
      return !f.state || r.state === f.state;
    });
    // First questions, fetched once per session.
    const missing = rows.filter((r) => !inbox.firstQuestions.has(r.session.id)).slice(0, 20);
    await Promise.all(
      missing.map(async (r) => {
        try {
          const first = await api("GET", "/messages/", {
            query: { session_id: r.session.id, role: "user", limit: 1 },
          });
          if (first.length) {
            inbox.firstQuestions.set(r.session.id, first[0].message.slice(0, 200));
            r.first_question = first[0].message.slice(0, 200);
          }
        } catch {
          /* shown without it */
        }
      }),
    );
    return { rows, next: null };
  }

  function sortRows(rows) {
    return rows
      .map((r, i) => [r, i])
      .sort(([a, i], [b, j]) => {
        const rank = (STATE_RANK[a.state] ?? 2) - (STATE_RANK[b.state] ?? 2);
        if (rank) return rank;
        const t = Date.parse(b.last_activity_at) - Date.parse(a.last_activity_at);
        return t || i - j;
      })
      .map(([r]) => r);
  }

  function inboxRow(r) {
    const s = r.session;
    const selected = transcript.id === s.id;
    const last = r.last_message;
    const lastText = last
      ? `${last.role === "user" ? "Visitor" : last.role === "assistant" ? "Answer" : "System"}: ${last.text}`
      : "";
    const meta = [
      stateBadge(r.state),
      r.message_count !== null ? ` · ${r.message_count} message${r.message_count === 1 ? "" : "s"}` : "",
      ` · ${s.external_user_id ?? "anonymous"}`,
      ` · ${s.session_id}`,
    ];
    return h(
      "li",
      null,
      h(
        "a",
        {
          class: "row",
          href: UUID.test(s.id) ? `#session/${s.id}` : "#inbox",
          "data-id": s.id,
          "aria-current": selected ? "true" : null,
        },
        h("span", { class: "row-title" }, r.first_question || "(no question yet)"),
        h("span", { class: "row-when" }, timeEl(r.last_activity_at, relTime(r.last_activity_at))),
        lastText ? h("span", { class: "row-last" }, lastText) : null,
        h("span", { class: "row-meta" }, meta),
      ),
    );
  }

  function renderInbox() {
    const seen = new Set();
    const rows = [];
    for (const r of [...sortRows(inbox.rows), ...inbox.extra]) {
      if (seen.has(r.session.id)) continue;
      seen.add(r.session.id);
      rows.push(r);
    }
    const signature = JSON.stringify([rows, transcript.id, Math.floor(Date.now() / 30000)]);
    const waiting = inbox.rows.filter((r) => r.state === "waiting").length;
    const badge = $("waiting-badge");
    badge.hidden = waiting === 0;
    badge.textContent = waiting ? String(waiting) : "";
    badge.setAttribute("aria-label", `${waiting} waiting for a person`);
    document.title = waiting ? `(${waiting}) Colloquy console` : "Colloquy console";
    const status = `${rows.length} conversation${rows.length === 1 ? "" : "s"}${
      waiting ? `, ${waiting} waiting for a person` : ""
    }`;
    if ($("inbox-status").textContent !== status) $("inbox-status").textContent = status;
    $("inbox-more").hidden = !inbox.next;
    const note = $("inbox-note");
    const noteText =
      inbox.mode === "sessions"
        ? `This server has no inbox: showing the newest sessions, by creation time${
            readFilters().rating ? " (it cannot filter by rating)" : ""
          }.`
        : "";
    note.hidden = !noteText;
    note.textContent = noteText;
    if (signature === inbox.signature) return;
    inbox.signature = signature;
    const list = $("inbox-list");
    const focused = list.contains(document.activeElement)
      ? document.activeElement.getAttribute("data-id")
      : null;
    list.replaceChildren(...rows.map(inboxRow));
    if (!rows.length) list.append(h("li", { class: "hint empty" }, "No conversations match."));
    if (focused) list.querySelector(`a[data-id="${CSS.escape(focused)}"]`)?.focus();
  }

  async function refreshInbox() {
    const generation = inbox.generation;
    try {
      const { rows, next } = await fetchInbox();
      if (generation !== inbox.generation) return;
      inbox.rows = rows;
      if (!inbox.extra.length) inbox.next = next;
      renderInbox();
    } catch (e) {
      if (generation !== inbox.generation) return;
      $("inbox-status").textContent = `Could not load the inbox: ${describe(e)}`;
    }
  }

  function startInbox() {
    if (inbox.running) return;
    inbox.running = true;
    const tick = async () => {
      if (!inbox.running) return;
      if (!document.hidden) await refreshInbox();
      if (inbox.running) inbox.timer = setTimeout(tick, POLL_MS);
    };
    tick();
  }

  function stopInbox() {
    inbox.running = false;
    clearTimeout(inbox.timer);
  }

  function filtersChanged() {
    inbox.generation += 1;
    inbox.extra = [];
    inbox.next = null;
    inbox.signature = "";
    if (inbox.running) refreshInbox();
  }

  $("filter-form").addEventListener("submit", (event) => {
    event.preventDefault();
    filtersChanged();
    announce("Filters applied.");
  });
  $("filter-form").addEventListener("reset", () => setTimeout(filtersChanged, 0));
  for (const id of ["f-state", "f-down", "f-from", "f-to"]) {
    $(id).addEventListener("change", filtersChanged);
  }

  $("inbox-more").addEventListener("click", async () => {
    if (!inbox.next) return;
    try {
      const { rows, next } = await fetchInbox(inbox.next);
      inbox.extra.push(...rows);
      inbox.next = next;
      renderInbox();
    } catch (e) {
      $("inbox-status").textContent = describe(e);
    }
  });

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && inbox.running) refreshInbox();
  });

  // ---------------------------------------------------------------- search

  /** `text` as text nodes, with every occurrence of `word` in a <mark>. */
  function highlighted(text, word) {
    const out = [];
    const lower = text.toLowerCase();
    const needle = word.toLowerCase();
    let at = 0;
    if (needle) {
      for (let i = lower.indexOf(needle); i >= 0 && out.length < 40; i = lower.indexOf(needle, at)) {
        out.push(text.slice(at, i), h("mark", null, text.slice(i, i + needle.length)));
        at = i + needle.length;
      }
    }
    out.push(text.slice(at));
    return out;
  }

  /** Around the first match: at most ~200 characters. */
  function snippet(text, word) {
    const i = text.toLowerCase().indexOf(word.toLowerCase());
    if (i < 0 || text.length <= 200) return text.slice(0, 200);
    const start = Math.max(0, i - 80);
    return `${start ? "…" : ""}${text.slice(start, start + 200)}…`;
  }

  async function searchMessages(q) {
    try {
      const data = await api("GET", "/messages/search/", { query: { q, limit: 50 } });
      return { results: data.results || [], note: "" };
    } catch (e) {
      if (!unavailable(e)) throw e;
    }
    // An older server: search the sessions in the list, one by one.
    const sessions = inbox.rows.map((r) => r.session).slice(0, 50);
    const results = [];
    for (let i = 0; i < sessions.length; i += 6) {
      const batch = sessions.slice(i, i + 6);
      const found = await Promise.all(
        batch.map((s) =>
          api("GET", "/messages/", { query: { session_id: s.id, search: q, limit: 20 } })
            .then((ms) => ms.map((message) => ({ message, session: s })))
            .catch(() => []),
        ),
      );
      results.push(...found.flat());
    }
    results.sort((a, b) => Date.parse(b.message.timestamp) - Date.parse(a.message.timestamp));
    return { results, note: "this server cannot search everything: searched the conversations listed" };
  }

  $("search-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const q = $("search-q").value.trim();
    if (!q) {
      clearSearch();
      return;
    }
    const list = $("search-list");
    $("search-results").hidden = false;
    $("inbox-list").hidden = true;
    $("inbox-more").hidden = true;
    $("search-clear").hidden = false;
    $("search-title").textContent = "Searching…";
    list.replaceChildren();
    try {
      const { results, note } = await searchMessages(q);
      $("search-title").textContent = `${results.length} message${results.length === 1 ? "" : "s"} found${
        note ? ` (${note})` : ""
      }`;
      list.replaceChildren(
        ...results.map(({ message, session }) =>
          h(
            "li",
            null,
            h(
              "a",
              {
                class: "row",
                href: UUID.test(session.id) ? `#session/${session.id}` : "#inbox",
                "data-id": session.id,
                "data-message-id": message.id,
              },
              h("span", { class: "row-title" }, highlighted(snippet(message.message, q), q)),
              h("span", { class: "row-when" }, timeEl(message.timestamp, relTime(message.timestamp))),
              h(
                "span",
                { class: "row-meta" },
                `${roleLabel(message)} · ${session.external_user_id ?? "anonymous"} · ${session.session_id}`,
              ),
            ),
          ),
        ),
      );
      announce($("search-title").textContent);
    } catch (e) {
      $("search-title").textContent = `Search failed: ${describe(e)}`;
    }
  });

  function clearSearch() {
    $("search-q").value = "";
    $("search-results").hidden = true;
    $("search-clear").hidden = true;
    $("inbox-list").hidden = false;
    $("search-list").replaceChildren();
    inbox.signature = "";
    renderInbox();
  }
  $("search-clear").addEventListener("click", () => {
    clearSearch();
    $("search-q").focus();
  });

  // ---------------------------------------------------------------- transcript

  const transcript = {
    id: null,
    session: null,
    controller: null, // aborts everything of the open transcript
    messages: new Map(), // id -> message
    cursor: null, // the last message id read from the list or the events (not our posts)
    streams: new Set(), // answer ids attached to
    gone: false,
  };

  function closeTranscript() {
    transcript.controller?.abort();
    transcript.controller = null;
    transcript.id = null;
    transcript.session = null;
    transcript.messages = new Map();
    transcript.streams = new Set();
    transcript.cursor = null;
    $("t-body").hidden = true;
    $("t-empty").hidden = false;
    $("view-inbox").classList.remove("reading");
    $("t-messages").replaceChildren();
    for (const a of document.querySelectorAll("#inbox-list a[aria-current]")) a.removeAttribute("aria-current");
  }

  function renderHead(session) {
    transcript.session = session;
    const state = stateOf(session);
    $("t-title").textContent = `Conversation ${session.session_id}`;
    $("t-session-id").textContent = `${session.session_id} (${session.id})`;
    $("t-user").textContent = session.external_user_id ?? "anonymous";
    $("t-state").replaceChildren(stateBadge(state));
    $("t-created").replaceChildren(timeEl(session.created_at));
    const human = session.responder === "human";
    const active = session.is_active && !transcript.gone;
    $("t-takeover").hidden = human;
    $("t-handback").hidden = !human;
    $("t-takeover").disabled = !active;
    $("t-handback").disabled = !active;
    $("reply-hint").textContent =
      state === "waiting"
        ? "The visitor is waiting for a person: your reply answers them (the AI is paused)."
        : human
          ? "You are answering this visitor; the AI is paused until you hand back."
          : "Take over first so the AI stops answering.";
    $("reply-send").disabled = !active;
  }

  function sourcesOf(m) {
    const sources = m.metadata?.sources;
    if (!Array.isArray(sources)) return null;
    if (!sources.length) return h("div", { class: "msg-sources" }, "No sources: the knowledge base had nothing on this.");
    const items = sources.slice(0, 20).map((s, i) => {
      const title = String(s?.title || s?.document || s?.id || `Source ${i + 1}`);
      let label = h("span", null, title);
      const uri = typeof s?.uri === "string" ? s.uri : "";
      try {
        const url = new URL(uri);
        if (url.protocol === "https:" || url.protocol === "http:") {
          label = h("a", { href: url.href, rel: "noopener noreferrer", target: "_blank" }, title);
        }
      } catch {
        /* not a link */
      }
      // The document's name when there is no link to it.
      const extra = label.tagName !== "A" && s?.document && s.document !== title ? ` — ${s.document}` : "";
      return h("li", null, label, extra);
    });
    return h("div", { class: "msg-sources" }, h("span", null, "Sources:"), h("ol", null, items));
  }

  function feedbackOf(m) {
    const fb = m.metadata?.feedback;
    if (!fb || typeof fb !== "object") return null;
    const up = fb.rating === "up";
    return h(
      "div",
      { class: "msg-feedback" },
      h("span", { class: up ? "fb-up" : "fb-down" }, up ? "Rated up" : "Rated down"),
      typeof fb.comment === "string" && fb.comment ? `: “${fb.comment}”` : "",
      fb.at ? h("span", null, " · ", timeEl(fb.at)) : "",
    );
  }

  function messageItem(m) {
    const role = ["user", "assistant", "system"].includes(m.role) ? m.role : "system";
    let cls = `msg msg-${role}`;
    if (role === "assistant" && isOperator(m)) cls += " msg-operator";
    if (role === "assistant" && typeof m.metadata?.notice === "string") cls = "msg msg-notice";
    const finish = m.metadata?.finish_reason;
    return h(
      "li",
      { class: cls, "data-id": m.id },
      h(
        "div",
        { class: "msg-head" },
        h("span", { class: "msg-role" }, roleLabel(m)),
        timeEl(m.timestamp),
      ),
      h("p", { class: "msg-text" }, m.message),
      role === "assistant" ? sourcesOf(m) : null,
      role === "assistant" ? feedbackOf(m) : null,
      typeof finish === "string" && finish !== "stop"
        ? h("div", { class: "msg-finish" }, `Ended: ${finish}`)
        : null,
    );
  }

  /** What scrolls the messages: their list on a wide screen, else the page. */
  function scroller() {
    const list = $("t-messages");
    return getComputedStyle(list).overflowY === "auto" ? list : document.scrollingElement;
  }

  /** Runs `change` on the transcript; if it was scrolled to its end, it stays there. */
  function keepAtEnd(change) {
    const pane = scroller();
    const atEnd = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 80;
    change();
    if (atEnd) pane.scrollTop = pane.scrollHeight;
  }

  /** Adds or replaces a message, before any answer still streaming. */
  function upsertMessage(m) {
    keepAtEnd(() => insertMessage(m));
  }

  function insertMessage(m) {
    if (!m || typeof m.id !== "string") return;
    const list = $("t-messages");
    transcript.messages.set(m.id, m);
    const item = messageItem(m);
    const existing = [...list.children].find((li) => li.getAttribute("data-id") === m.id);
    if (existing) {
      existing.replaceWith(item);
      return;
    }
    const streaming = list.querySelector(".msg-streaming");
    list.insertBefore(item, streaming);
  }

  function removeMessage(id) {
    transcript.messages.delete(id);
    for (const li of $("t-messages").children) {
      if (li.getAttribute("data-id") === id) li.remove();
    }
  }

  async function loadMessages(id, signal) {
    const all = [];
    let after;
    for (let page = 0; page < 20; page += 1) {
      const batch = await api("GET", "/messages/", {
        query: { session_id: id, limit: 1000, after },
        signal,
      });
      all.push(...batch);
      if (batch.length < 1000) break;
      after = batch[batch.length - 1].id;
    }
    return all;
  }

  async function openTranscript(id) {
    if (transcript.id === id) return;
    closeTranscript();
    const controller = new AbortController();
    transcript.controller = controller;
    transcript.id = id;
    transcript.gone = false;
    const { signal } = controller;
    $("view-inbox").classList.add("reading");
    $("t-empty").hidden = true;
    $("t-body").hidden = false;
    $("t-confirm").hidden = true;
    $("t-status").textContent = "Loading…";
    $("reply-error").textContent = "";
    $("reply-name").value = sessionStorage.getItem(NAME_KEY) || "";
    for (const a of document.querySelectorAll("#inbox-list a.row")) {
      if (a.getAttribute("data-id") === id) a.setAttribute("aria-current", "true");
      else a.removeAttribute("aria-current");
    }
    try {
      const session = await api("GET", `/sessions/${id}/`, { signal });
      if (signal.aborted) return;
      renderHead(session);
      const messages = await loadMessages(id, signal);
      if (signal.aborted) return;
      // The history is not read out; what arrives from now on is.
      const list = $("t-messages");
      list.setAttribute("aria-live", "off");
      messages.forEach(insertMessage);
      setTimeout(() => list.setAttribute("aria-live", "polite"), 0);
      transcript.cursor = messages.length ? messages[messages.length - 1].id : null;
      $("t-status").textContent = "";
      $("t-title").focus({ preventScroll: true });
      // The newest messages in view (the reply form under them).
      if (scroller() === list) list.scrollTop = list.scrollHeight;
      attach(session.active_response_id);
      follow(id, signal);
    } catch (e) {
      if (signal.aborted) return;
      $("t-status").textContent =
        e instanceof ApiError && e.status === 404 ? "This conversation does not exist (any more)." : describe(e);
      $("t-title").textContent = "Conversation";
      $("t-title").focus();
    }
  }

  function sessionGone(text) {
    transcript.gone = true;
    $("t-status").textContent = text;
    if (transcript.session) renderHead(transcript.session);
  }

  /** Follows the session: its events stream, or polling on a server without it. */
  async function follow(id, signal) {
    let failures = 0;
    while (!signal.aborted) {
      try {
        const headers = { Accept: "text/event-stream" };
        if (transcript.cursor) headers["Last-Event-ID"] = transcript.cursor;
        const response = await api("GET", `/sessions/${id}/events/`, { headers, signal, raw: true });
        failures = 0;
        let ended = false;
        await readSse(
          response,
          (ev) => {
            if (signal.aborted) return false;
            ended = onSessionEvent(ev) === false;
            return !ended;
          },
          signal,
        );
        if (ended) return;
      } catch (e) {
        if (signal.aborted) return;
        if (missingEndpoint(e)) return poll(id, signal);
        if (e instanceof ApiError && e.status === 404) return sessionGone("This conversation was deleted.");
        if (e instanceof ApiError && e.status === 401) return;
        failures += 1;
      }
      await sleep(Math.min(1000 * 2 ** failures, 15000), signal);
    }
  }

  function onSessionEvent(ev) {
    let data;
    try {
      data = JSON.parse(ev.data);
    } catch {
      return true;
    }
    switch (ev.event) {
      case "session":
        renderHead(data);
        attach(data.active_response_id);
        break;
      case "message":
        upsertMessage(data);
        transcript.cursor = data.id;
        break;
      case "message_deleted":
        removeMessage(data.id);
        break;
      case "session_deleted":
        sessionGone("This conversation was deleted.");
        return false;
      case "expired":
        sessionGone("This conversation has expired.");
        return false;
      default:
        break;
    }
    return true;
  }

  async function poll(id, signal) {
    while (!signal.aborted) {
      await sleep(POLL_MS, signal);
      if (signal.aborted || document.hidden) continue;
      try {
        const session = await api("GET", `/sessions/${id}/`, { signal });
        if (signal.aborted) return;
        renderHead(session);
        const fresh = await api("GET", "/messages/", {
          query: { session_id: id, limit: 1000, after: transcript.cursor },
          signal,
        });
        if (signal.aborted) return;
        fresh.forEach(upsertMessage);
        if (fresh.length) transcript.cursor = fresh[fresh.length - 1].id;
        attach(session.active_response_id);
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof ApiError && e.status === 404) return sessionGone("This conversation was deleted.");
      }
    }
  }

  /** Shows the answer `responseId` arriving, from its first chunk. */
  async function attach(responseId) {
    if (!responseId || transcript.streams.has(responseId) || transcript.messages.has(responseId)) return;
    const signal = transcript.controller?.signal;
    if (!signal) return;
    transcript.streams.add(responseId);
    const text = h("p", { class: "msg-text" });
    const bubble = h(
      "li",
      { class: "msg msg-assistant msg-streaming", "data-id": responseId, "aria-busy": "true" },
      h("div", { class: "msg-head" }, h("span", { class: "msg-role" }, "AI"), h("span", null, "answering…")),
      text,
    );
    keepAtEnd(() => $("t-messages").append(bubble));
    try {
      const response = await api("GET", `/messages/chat/stream/${responseId}/`, {
        headers: { Accept: "text/event-stream" },
        signal,
        raw: true,
      });
      if (response.status !== 204) {
        await readSse(
          response,
          (ev) => {
            let data;
            try {
              data = JSON.parse(ev.data);
            } catch {
              return true;
            }
            if (typeof data.chunk === "string" && data.chunk && bubble.isConnected) {
              keepAtEnd(() => text.append(data.chunk));
            }
            return !data.done;
          },
          signal,
        );
      }
    } catch {
      /* the stored answer is fetched below */
    }
    if (signal.aborted) return;
    try {
      const stored = await api("GET", `/messages/${responseId}/`, { signal });
      upsertMessage(stored);
    } catch {
      bubble.remove();
    }
  }

  $("t-takeover").addEventListener("click", () => setResponder("human"));
  $("t-handback").addEventListener("click", () => setResponder("ai"));

  async function setResponder(responder) {
    const id = transcript.id;
    if (!id) return;
    try {
      const session = await api("PATCH", `/sessions/${id}/`, { body: { responder } });
      if (transcript.id !== id) return;
      renderHead(session);
      const text = responder === "human" ? "You have taken over this conversation." : "Handed back to the AI.";
      $("t-status").textContent = text;
      (responder === "human" ? $("t-handback") : $("t-takeover")).focus();
    } catch (e) {
      $("t-status").textContent = describe(e);
    }
  }

  $("reply-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = transcript.id;
    const name = $("reply-name").value.trim();
    const message = $("reply-text").value;
    const error = $("reply-error");
    error.textContent = "";
    if (!name) {
      error.textContent = "Enter your name: the visitor sees it.";
      $("reply-name").focus();
      return;
    }
    if (!message.trim()) {
      error.textContent = "Write a message.";
      $("reply-text").focus();
      return;
    }
    sessionStorage.setItem(NAME_KEY, name);
    let sent = false;
    $("reply-send").disabled = true;
    try {
      const stored = await api("POST", "/messages/", {
        body: { session_id: id, message, role: "assistant", metadata: { operator: name } },
      });
      if (transcript.id === id) {
        upsertMessage(stored);
        $("reply-text").value = "";
        announce("Reply sent.");
        sent = true;
      }
    } catch (e) {
      error.textContent = describe(e);
    } finally {
      $("reply-send").disabled = !(transcript.session?.is_active && !transcript.gone);
      // Ready for the next reply (the button lost focus while disabled).
      if (sent) $("reply-text").focus();
    }
  });

  // Export

  function download(filename, type, text) {
    const url = URL.createObjectURL(new Blob([text], { type }));
    const a = h("a", { href: url, download: filename, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  /** One CSV field: always quoted, quotes doubled, and a leading =, +, -, @, tab or
   * carriage return defused with a ' so a spreadsheet never runs it as a formula. */
  function csvField(value) {
    let s = value === undefined || value === null ? "" : String(value);
    if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
    return `"${s.replace(/"/g, '""')}"`;
  }

  const CSV_COLUMNS = [
    "session_id", "external_user_id", "message_id", "timestamp", "role",
    "operator", "message", "feedback", "feedback_comment", "sources",
  ];

  function toCsv(exported) {
    const s = exported.session;
    const lines = [CSV_COLUMNS.map(csvField).join(",")];
    for (const m of exported.messages) {
      const fb = m.metadata?.feedback;
      const sources = Array.isArray(m.metadata?.sources)
        ? m.metadata.sources.map((x) => x?.uri || x?.document || x?.id || "").join(" ")
        : "";
      lines.push(
        [
          s.session_id, s.external_user_id, m.id, m.timestamp, m.role,
          isOperator(m) ? m.metadata.operator : "", m.message,
          fb?.rating ?? "", fb?.comment ?? "", sources,
        ]
          .map(csvField)
          .join(","),
      );
    }
    return `\ufeff${lines.join("\r\n")}\r\n`;
  }

  function toMarkdown(exported) {
    const s = exported.session;
    const code = (v) => `\`${String(v ?? "").replace(/`/g, "'")}\``;
    const out = [
      `# Conversation ${code(s.session_id)}`,
      "",
      `- Session: ${code(s.id)}`,
      `- Visitor: ${code(s.external_user_id ?? "anonymous")}`,
      `- Started: ${s.created_at}`,
      `- Exported: ${new Date().toISOString()}`,
      "",
    ];
    for (const m of exported.messages) {
      out.push(`## ${roleLabel(m).replace(/[\r\n]+/g, " ")} — ${m.timestamp}`, "");
      out.push(...String(m.message).split(/\r\n|\r|\n/).map((line) => `> ${line}`), "");
      const fb = m.metadata?.feedback;
      if (fb?.rating) out.push(`*Rated ${fb.rating}*${fb.comment ? `: ${String(fb.comment).replace(/[\r\n]+/g, " ")}` : ""}`, "");
      if (Array.isArray(m.metadata?.sources) && m.metadata.sources.length) {
        out.push("Sources:");
        for (const x of m.metadata.sources) out.push(`- ${code(x?.title || x?.document || x?.id || "")} ${code(x?.uri || "")}`);
        out.push("");
      }
    }
    return out.join("\n");
  }

  async function exportSession(format) {
    const id = transcript.id;
    if (!id) return;
    try {
      const exported = await api("GET", `/sessions/${id}/export/`);
      const base = `colloquy-${safeName(exported.session.session_id)}`;
      if (format === "json") {
        download(`${base}.json`, "application/json", `${JSON.stringify(exported, null, 2)}\n`);
      } else if (format === "csv") {
        download(`${base}.csv`, "text/csv;charset=utf-8", toCsv(exported));
      } else {
        download(`${base}.md`, "text/markdown;charset=utf-8", toMarkdown(exported));
      }
      $("t-status").textContent = `Exported ${exported.messages.length} messages as ${format.toUpperCase()}.`;
    } catch (e) {
      $("t-status").textContent = `Export failed: ${describe(e)}`;
    }
  }
  $("t-export-json").addEventListener("click", () => exportSession("json"));
  $("t-export-csv").addEventListener("click", () => exportSession("csv"));
  $("t-export-md").addEventListener("click", () => exportSession("md"));

  // Delete

  $("t-delete").addEventListener("click", () => {
    $("t-confirm").hidden = false;
    $("t-confirm-no").focus();
  });
  $("t-confirm-no").addEventListener("click", () => {
    $("t-confirm").hidden = true;
    $("t-delete").focus();
  });
  $("t-confirm").addEventListener("keydown", (event) => {
    if (event.key === "Escape") $("t-confirm-no").click();
  });
  $("t-confirm-yes").addEventListener("click", async () => {
    const id = transcript.id;
    if (!id) return;
    try {
      await api("DELETE", `/sessions/${id}/`);
      announce("Conversation deleted.");
      inbox.rows = inbox.rows.filter((r) => r.session.id !== id);
      inbox.extra = inbox.extra.filter((r) => r.session.id !== id);
      location.hash = "#inbox";
    } catch (e) {
      $("t-status").textContent = `Delete failed: ${describe(e)}`;
    }
  });

  // ---------------------------------------------------------------- privacy

  const privacy = { user: null, exported: null };

  async function lookUp(user) {
    const exported = await api("GET", "/sessions/export/", { query: { external_user_id: user } });
    privacy.user = user;
    privacy.exported = exported;
    const messages = exported.sessions.reduce((n, s) => n + s.messages.length, 0);
    $("p-status").textContent = `${exported.sessions.length} session${exported.sessions.length === 1 ? "" : "s"} and ${messages} message${
      messages === 1 ? "" : "s"
    } stored for this visitor${exported.truncated ? " (more than 1000 sessions: the export is cut)" : ""}.`;
    $("p-actions").hidden = false;
    $("p-erase").disabled = false;
    return { sessions: exported.sessions.length, messages };
  }

  $("privacy-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const user = $("p-user").value.trim();
    $("p-result").textContent = "";
    $("p-confirm").hidden = true;
    if (!user) {
      $("p-status").textContent = "Enter the visitor's external_user_id.";
      $("p-user").focus();
      return;
    }
    try {
      await lookUp(user);
    } catch (e) {
      $("p-actions").hidden = true;
      $("p-status").textContent = describe(e);
    }
  });

  $("p-export").addEventListener("click", async () => {
    if (!privacy.user) return;
    try {
      const exported = await api("GET", "/sessions/export/", { query: { external_user_id: privacy.user } });
      download(`colloquy-visitor-${safeName(privacy.user)}.json`, "application/json", `${JSON.stringify(exported, null, 2)}\n`);
      $("p-result").textContent = `Downloaded ${exported.sessions.length} sessions.`;
    } catch (e) {
      $("p-result").textContent = `Export failed: ${describe(e)}`;
    }
  });

  $("p-erase").addEventListener("click", () => {
    if (!privacy.user) return;
    $("p-confirm-text").textContent = `Erase every session and message of the visitor “${privacy.user}”? This is a hard delete and cannot be undone.`;
    $("p-confirm").hidden = false;
    $("p-confirm-no").focus();
  });
  $("p-confirm-no").addEventListener("click", () => {
    $("p-confirm").hidden = true;
    $("p-erase").focus();
  });
  $("p-confirm").addEventListener("keydown", (event) => {
    if (event.key === "Escape") $("p-confirm-no").click();
  });
  $("p-confirm-yes").addEventListener("click", async () => {
    const user = privacy.user;
    if (!user) return;
    try {
      const erased = await api("DELETE", "/sessions/", { query: { external_user_id: user } });
      $("p-confirm").hidden = true;
      $("p-result").textContent = `Erased ${erased.sessions} session${erased.sessions === 1 ? "" : "s"} and ${erased.messages} message${
        erased.messages === 1 ? "" : "s"
      }.`;
      await lookUp(user);
      $("p-erase").disabled = true;
      $("p-user").focus();
    } catch (e) {
      $("p-result").textContent = `Erase failed: ${describe(e)}`;
    }
  });

  // ---------------------------------------------------------------- dashboard

  const COUNTERS = [
    ["sessions", "Sessions"],
    ["visitor_messages", "Visitor messages"],
    ["answers", "AI answers"],
    ["handoffs", "Handoffs"],
    ["feedback_up", "Rated up"],
    ["feedback_down", "Rated down"],
    ["ungrounded", "Ungrounded"],
    ["tokens_in", "Tokens in"],
    ["tokens_out", "Tokens out"],
    ["cost", "Cost"],
  ];
  const charts = [];
  const utcDay = (d) => d.toISOString().slice(0, 10);

  function dashboardDefaults() {
    if (!$("d-to").value) $("d-to").value = utcDay(new Date());
    if (!$("d-from").value) $("d-from").value = utcDay(new Date(Date.now() - 6 * 86400000));
  }

  const fmtNumber = (key, v) =>
    key === "cost"
      ? Number(v).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 4 })
      : Number(v).toLocaleString();

  function renderTotals(totals) {
    const items = COUNTERS.filter(([key]) => typeof totals[key] === "number").map(([key, label]) =>
      h("div", { "data-counter": key }, h("dt", null, label), h("dd", null, fmtNumber(key, totals[key]))),
    );
    $("dash-totals").replaceChildren(...items);
  }

  function renderTable(buckets, hourly) {
    const table = $("dash-table");
    const keys = COUNTERS.filter(([key]) => buckets.some((b) => typeof b[key] === "number"));
    table.tHead.replaceChildren(
      h("tr", null, h("th", { scope: "col" }, "Start"), keys.map(([, label]) => h("th", { scope: "col", class: "num" }, label))),
    );
    table.tBodies[0].replaceChildren(
      ...buckets.map((b) =>
        h(
          "tr",
          null,
          h("th", { scope: "row" }, hourly ? fmtTime(b.start) : String(b.start).slice(0, 10)),
          keys.map(([key]) => h("td", { class: "num" }, typeof b[key] === "number" ? fmtNumber(key, b[key]) : "")),
        ),
      ),
    );
  }

  function cssVar(name, fallback) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
  }

  function drawChart(containerId, xs, series, buckets) {
    const container = $(containerId);
    container.replaceChildren();
    const present = series.filter(([key]) => buckets.some((b) => typeof b[key] === "number"));
    if (typeof uPlot !== "function" || !present.length || !xs.length) {
      container.append(h("p", { class: "hint" }, present.length ? "Charts are unavailable." : "No data."));
      return;
    }
    const axis = cssVar("--muted", "#59636e");
    const grid = cssVar("--line", "#d6dae0");
    const width = Math.max(280, Math.floor(container.getBoundingClientRect().width) || 480);
    const opts = {
      width,
      height: 220,
      scales: { x: { time: true } },
      // Buckets start at UTC midnight or on the UTC hour: the axis reads in UTC.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      series: [{}, ...present.map(([, label, color]) => ({ label, stroke: color, width: 2, points: { show: true, size: 5 } }))],
      axes: [
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
      ],
      legend: { show: true },
    };
    const data = [xs, ...present.map(([key]) => buckets.map((b) => (typeof b[key] === "number" ? b[key] : null)))];
    charts.push({ container, plot: new uPlot(opts, data, container) });
  }

  function resizeCharts() {
    for (const { container, plot } of charts) {
      const width = Math.max(280, Math.floor(container.getBoundingClientRect().width));
      if (width && plot.width !== width) plot.setSize({ width, height: 220 });
    }
  }
  let resizeTimer;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(resizeCharts, 150);
  });

  async function loadDashboard() {
    dashboardDefaults();
    const from = $("d-from").value;
    const to = $("d-to").value;
    const bucket = $("d-bucket").value;
    const status = $("dash-status");
    status.textContent = "Loading…";
    try {
      const stats = await api("GET", "/stats/", { query: { from, to, bucket } });
      if (current !== "dashboard") return;
      const buckets = stats.buckets || [];
      renderTotals(stats.totals || {});
      renderTable(buckets, bucket === "hour");
      for (const { plot } of charts.splice(0)) plot.destroy();
      const xs = buckets.map((b) => Math.floor(Date.parse(b.start) / 1000));
      drawChart("c-volume", xs, [
        ["sessions", "Sessions", "#2457c5"],
        ["visitor_messages", "Visitor messages", "#067647"],
        ["answers", "AI answers", "#b54708"],
      ], buckets);
      drawChart("c-quality", xs, [
        ["feedback_up", "Rated up", "#067647"],
        ["feedback_down", "Rated down", "#b42318"],
        ["ungrounded", "Ungrounded", "#b54708"],
        ["handoffs", "Handoffs", "#6941c6"],
      ], buckets);
      drawChart("c-tokens", xs, [
        ["tokens_in", "Tokens in", "#2457c5"],
        ["tokens_out", "Tokens out", "#b54708"],
      ], buckets);
      const questions = stats.ungrounded_questions || [];
      const body = $("ungrounded").tBodies[0];
      body.replaceChildren(
        ...questions.map((q) => h("tr", null, h("td", null, String(q.text)), h("td", { class: "num" }, String(q.count)))),
      );
      if (!questions.length) body.append(h("tr", null, h("td", { colspan: 2, class: "hint" }, "None in this range.")));
      const t = stats.totals || {};
      status.textContent = `${from} to ${to}: ${t.sessions ?? 0} sessions, ${t.visitor_messages ?? 0} visitor messages, ${t.answers ?? 0} answers.`;
    } catch (e) {
      status.textContent = `Could not load the stats: ${describe(e)}`;
    }
  }

  $("dash-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadDashboard();
  });

  // ---------------------------------------------------------------- start

  window.addEventListener("hashchange", route);
  route();
})();
