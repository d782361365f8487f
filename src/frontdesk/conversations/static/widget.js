/*
 * Frontdesk website chat widget.
 *
 * Embed with:
 *   <script src="https://frontdesk.example.com/chat/widget.js" data-workspace="PUBLIC_KEY" async></script>
 *
 * Plain JavaScript without dependencies or a build step. The server's origin is read from this
 * script's own src. Everything is drawn inside a shadow root, so the page's styles do not apply
 * to the widget and the widget's styles do not apply to the page. The browser keeps one item in
 * localStorage per workspace key: the visitor token and whether the visitor declined the email
 * form.
 */
(() => {
  "use strict";

  const script =
    document.currentScript ||
    document.querySelector('script[data-workspace][src*="/chat/widget.js"]');
  const KEY = script && script.dataset.workspace;
  if (!KEY) {
    console.warn("Frontdesk chat: the script tag needs a data-workspace attribute.");
    return;
  }
  const loaded = (window.__frontdeskChat = window.__frontdeskChat || {});
  if (loaded[KEY]) return;
  loaded[KEY] = true;

  const SERVER = new URL(script.src, document.baseURI).origin;
  const API = `${SERVER}/chat/${encodeURIComponent(KEY)}`;
  const REALTIME_URL = `${SERVER.replace(/^http/, "ws")}/api/v1/realtime`;
  const STORAGE_KEY = `frontdesk-chat:${KEY}`;

  const PAGE_SIZE = 30;
  // While the visitor types, "typing start" is repeated at most this often, and "typing stop"
  // follows this long after the last keystroke.
  const TYPING_REPEAT_MS = 3000;
  const TYPING_IDLE_MS = 4000;
  // docs/realtime-protocol.md: browsers send "ping" about every 30 s and reconnect when a
  // ping got no "pong" by the time the next one is due.
  const PING_INTERVAL_MS = 25000;
  // Reconnect delays: exponential from 1 s up to 30 s, each drawn at random below its cap
  // ("full jitter"), so that many widgets do not reconnect in step after a server restart.
  const BACKOFF_BASE_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  // A WebSocket "send" without "sent" after this long goes again over REST.
  const SEND_TIMEOUT_MS = 10000;
  const REST_RETRIES = 4;
  // Close codes of the realtime gateway for visitors: the visitor was revoked, or the
  // workspace turned its chat off. Reconnecting is useless after either.
  const CLOSE_VISITOR_REVOKED = 4003;
  const CLOSE_CHAT_DISABLED = 4004;
  // How near the end of the message list, in pixels, counts as having seen the newest message.
  const BOTTOM_SLACK_PX = 40;

  // --- Browser storage -------------------------------------------------------------------------

  let memoryStore = {};

  function loadStored() {
    try {
      return JSON.parse(localStorage.getItem(STORAGE_KEY) || "{}") || {};
    } catch {
      // Storage is blocked (privacy settings, sandboxed frames): keep the state in memory only.
      return memoryStore;
    }
  }

  function saveStored(values) {
    const next = { ...loadStored(), ...values };
    for (const [name, value] of Object.entries(next)) {
      if (value === null || value === undefined) delete next[name];
    }
    memoryStore = next;
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(next));
    } catch {
      // Memory only, as above.
    }
  }

  // --- Helpers ---------------------------------------------------------------------------------

  function newClientMessageId() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    // crypto.randomUUID exists only in secure contexts (https or localhost); an http page
    // still has getRandomValues, which gives the same random version 4 UUID.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  function element(tag, attributes = {}, children = []) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === false || value === null || value === undefined) continue;
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) node.append(child);
    return node;
  }

  function formatSize(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
    return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
  }

  function readableTextColor(hex) {
    // WCAG relative luminance; white text unless black contrasts better with the background.
    const channels = [1, 3, 5].map((i) => {
      const c = parseInt(hex.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    const luminance = 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2];
    return (1.05 / (luminance + 0.05)) >= ((luminance + 0.05) / 0.05) ? "#ffffff" : "#111111";
  }

  const ALLOWED_LINK = /^(https?:|mailto:|tel:)/i;
  const REMOVED_TAGS = "script,style,iframe,object,embed,form,input,button,textarea,select,link,meta,img,svg,math";

  // Put the server's sanitized body_html into ``target``. The server already cleaned it; this
  // pass drops anything active again in case an older server or a proxy changed the markup.
  function setServerHtml(target, html) {
    const parsed = new DOMParser().parseFromString(html || "", "text/html");
    for (const node of parsed.body.querySelectorAll(REMOVED_TAGS)) node.remove();
    for (const node of parsed.body.querySelectorAll("*")) {
      for (const attribute of Array.from(node.attributes)) {
        const name = attribute.name.toLowerCase();
        if (name.startsWith("on") || name === "style" || name === "srcdoc") {
          node.removeAttribute(attribute.name);
        }
      }
      if (node.tagName === "A") {
        if (!ALLOWED_LINK.test(node.getAttribute("href") || "")) node.removeAttribute("href");
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer nofollow ugc");
      }
    }
    target.replaceChildren(...Array.from(parsed.body.childNodes));
  }

  // --- HTTP ------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `Request failed (${status}).`);
      this.status = status;
      this.problem = problem || {};
      const first = (this.problem.errors || [])[0];
      this.field = first ? first.field : null;
      this.fieldMessage = first ? first.message : null;
    }
  }

  async function api(method, path, { json, raw, contentType, auth = true } = {}) {
    const headers = {};
    if (auth) headers.Authorization = `Bearer ${state.token}`;
    let body;
    if (raw !== undefined) {
      body = raw;
      headers["Content-Type"] = contentType || "application/octet-stream";
    } else if (json !== undefined) {
      body = JSON.stringify(json);
      headers["Content-Type"] = "application/json";
    }
    const response = await fetch(API + path, {
      method,
      headers,
      body,
      mode: "cors",
      credentials: "omit",
    });
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      const error = new ApiError(response.status, data);
      if (response.status === 401 && auth) forgetVisitor();
      if (response.status === 404 && error.problem.code === "chat_disabled") disableChat();
      throw error;
    }
    return data;
  }

  function isRetryable(error) {
    // fetch rejects with a TypeError when the network fails; 5xx and 429 may pass later.
    return !(error instanceof ApiError) || error.status >= 500 || error.status === 429;
  }

  function backoffDelay(attempt) {
    return Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  }

  // --- State -----------------------------------------------------------------------------------

  const stored = loadStored();
  const state = {
    config: null,
    token: stored.visitor_token || null,
    visitor: null,
    conversationId: null,
    conversationStatus: null,
    // Set when the workspace turned its chat off while this page was open.
    disabled: false,
    open: false,
    // Messages by key: the server id, or the client_message_id of the visitor's own messages.
    entries: new Map(),
    hasBefore: false,
    historyLoaded: false,
    staffReadSeq: 0,
    visitorReadSeq: 0,
    readSent: 0,
    lastEventId: null,
    staged: [],
  };
  const blobUrls = new Map();

  // --- Styles ----------------------------------------------------------------------------------

  const CSS = `
:host { all: initial; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
.root { position: fixed; bottom: 20px; right: 20px; z-index: 2147483000;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; }
.root.left { right: auto; left: 20px; }
button, input, textarea { font: inherit; color: inherit; }
button { cursor: pointer; }
:focus-visible { outline: 3px solid var(--fd-focus); outline-offset: 2px; }
.bubble { position: relative; width: 56px; height: 56px; border-radius: 50%; border: 0;
  background: var(--fd-accent); color: var(--fd-on-accent);
  box-shadow: 0 4px 14px rgba(0,0,0,.25); display: grid; place-items: center;
  transition: transform .15s ease; }
.bubble:hover { transform: scale(1.06); }
.bubble svg { width: 28px; height: 28px; fill: currentColor; }
.badge { position: absolute; top: -4px; right: -4px; min-width: 22px; height: 22px;
  padding: 0 6px; border-radius: 11px; background: #b42318; color: #fff; font-size: 12px;
  font-weight: 700; line-height: 22px; text-align: center; }
.panel { position: absolute; bottom: 72px; right: 0; width: min(370px, calc(100vw - 40px));
  height: min(560px, calc(100vh - 120px)); display: flex; flex-direction: column;
  background: #fff; border-radius: 12px; overflow: hidden;
  box-shadow: 0 12px 40px rgba(0,0,0,.28); transition: opacity .15s ease, transform .15s ease; }
.root.left .panel { right: auto; left: 0; }
header { background: var(--fd-accent); color: var(--fd-on-accent); padding: 12px 14px;
  display: flex; align-items: center; gap: 8px; }
header .heading { flex: 1; }
header :focus-visible { outline-color: currentColor; }
header h2 { font-size: 16px; margin: 0; }
header p { margin: 0; font-size: 12px; opacity: .9; }
.close { background: transparent; border: 0; color: inherit; width: 32px; height: 32px;
  border-radius: 6px; font-size: 22px; line-height: 1; }
.body { flex: 1; overflow-y: auto; padding: 12px; background: #f6f7f9; }
.greeting { margin: 0 0 10px; padding: 8px 10px; background: #fff; border-radius: 10px;
  border: 1px solid #e4e7eb; }
.older { display: block; margin: 0 auto 10px; background: #fff; border: 1px solid #c9ced6;
  border-radius: 14px; padding: 4px 12px; font-size: 13px; }
ol.log { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 8px; }
.message { max-width: 85%; padding: 8px 10px; border-radius: 12px; background: #fff;
  border: 1px solid #e4e7eb; overflow-wrap: anywhere; }
.message.own { align-self: flex-end; background: var(--fd-accent); color: var(--fd-on-accent);
  border-color: transparent; }
.message .author { display: block; font-size: 12px; font-weight: 600; color: #57606a; }
.message .text p { margin: 0 0 6px; }
.message .text p:last-child { margin-bottom: 0; }
.message .text a { color: inherit; }
.message .meta { display: block; font-size: 11px; opacity: .8; margin-top: 2px; text-align: right; }
.message.deleted .text { font-style: italic; opacity: .75; }
.message[data-status="failed"] { outline: 2px solid #b42318; }
.retry { margin-left: 6px; background: #fff; color: #b42318; border: 0; border-radius: 4px;
  font-size: 12px; padding: 1px 6px; }
.files { display: flex; flex-direction: column; gap: 6px; margin-top: 6px; }
.files img { display: block; max-width: 100%; max-height: 220px; border-radius: 8px; background: #ddd; }
.file { background: #fff; color: #1f2328; border: 1px solid #c9ced6; border-radius: 6px;
  padding: 4px 8px; text-align: left; }
.typing { min-height: 20px; padding: 0 14px; font-size: 13px; color: #57606a; background: #f6f7f9; }
.alert { margin: 0; padding: 6px 14px; font-size: 13px; color: #b42318; background: #fff4f2; }
.alert:empty { display: none; }
.email { padding: 8px 14px; border-top: 1px solid #e4e7eb; font-size: 13px; }
.email label { display: block; margin-bottom: 4px; }
.email .row { display: flex; gap: 6px; }
.email input { flex: 1; min-width: 0; padding: 5px 8px; border: 1px solid #8c959f; border-radius: 6px; }
.email input[aria-invalid="true"] { border-color: #b42318; }
.email .error { color: #b42318; margin: 4px 0 0; }
.email button { border: 1px solid #8c959f; background: #fff; border-radius: 6px; padding: 4px 10px; }
.staged { display: flex; flex-wrap: wrap; gap: 6px; padding: 6px 12px 0; }
.staged:empty { display: none; }
.chip { display: inline-flex; align-items: center; gap: 4px; font-size: 12px; background: #eef1f4;
  border-radius: 12px; padding: 2px 4px 2px 10px; }
.chip button { border: 0; background: transparent; width: 22px; height: 22px; border-radius: 50%; }
form.composer { display: flex; align-items: flex-end; gap: 6px; padding: 10px 12px;
  border-top: 1px solid #e4e7eb; background: #fff; }
.composer textarea { flex: 1; resize: none; min-height: 40px; max-height: 120px; padding: 8px 10px;
  border: 1px solid #8c959f; border-radius: 8px; }
.icon { width: 40px; height: 40px; border-radius: 8px; border: 1px solid #8c959f; background: #fff;
  display: grid; place-items: center; }
.icon svg { width: 20px; height: 20px; fill: #57606a; }
.send { height: 40px; padding: 0 14px; border: 0; border-radius: 8px; background: var(--fd-accent);
  color: var(--fd-on-accent); font-weight: 600; }
.visually-hidden { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
@media (prefers-reduced-motion: reduce) {
  *, *::before, *::after { transition: none !important; animation: none !important;
    scroll-behavior: auto !important; }
  .bubble:hover { transform: none; }
}
`;

  const CHAT_ICON =
    '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H8l-5 4V5a2 2 0 0 1 2-2z"/></svg>';
  const CLIP_ICON =
    '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5H9v9a3 3 0 0 0 6 0V5a4.5 4.5 0 0 0-9 0v11.5a6 6 0 0 0 12 0v-10z"/></svg>';

  // --- DOM -------------------------------------------------------------------------------------

  const host = element("div", { "data-frontdesk-chat": "" });
  const shadow = host.attachShadow({ mode: "open" });
  const ui = {};

  function applyStyles() {
    // A constructed stylesheet is not an inline <style>, so it works on pages whose
    // Content-Security-Policy forbids inline styles.
    if ("adoptedStyleSheets" in shadow && typeof CSSStyleSheet.prototype.replaceSync === "function") {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      shadow.adoptedStyleSheets = [sheet];
    } else {
      shadow.append(element("style", { text: CSS }));
    }
  }

  function build(config) {
    const accent = /^#[0-9a-f]{6}$/i.test(config.color || "") ? config.color : "#2563eb";
    const onAccent = readableTextColor(accent);
    const root = element("div", { class: config.position === "left" ? "root left" : "root" });
    root.style.setProperty("--fd-accent", accent);
    root.style.setProperty("--fd-on-accent", onAccent);
    root.style.setProperty("--fd-focus", onAccent === "#ffffff" ? accent : "#1f2328");

    ui.badge = element("span", { class: "badge", hidden: true });
    ui.bubble = element("button", {
      type: "button",
      class: "bubble",
      "aria-expanded": "false",
      "aria-controls": "fd-panel",
      "aria-label": config.title,
    });
    ui.bubble.innerHTML = CHAT_ICON;
    ui.bubble.append(ui.badge);

    ui.title = element("h2", { id: "fd-title", text: config.title });
    ui.subtitle = element("p", {
      text: config.staff_online ? "We're online." : "We'll reply here or by email.",
    });
    ui.close = element("button", { type: "button", class: "close", "aria-label": "Close chat", text: "×" });
    const heading = element("div", { class: "heading" }, [ui.title, ui.subtitle]);
    const header = element("header", {}, [heading, ui.close]);

    ui.greeting = element("p", { class: "greeting", text: config.greeting });
    ui.older = element("button", { type: "button", class: "older", hidden: true, text: "Load older messages" });
    ui.log = element("ol", { class: "log", id: "fd-log", role: "log", "aria-live": "polite", "aria-relevant": "additions", "aria-label": "Messages" });
    ui.body = element("div", { class: "body" }, [ui.greeting, ui.older, ui.log]);
    ui.typing = element("div", { class: "typing", role: "status", "aria-live": "polite" });
    ui.alert = element("p", { class: "alert", role: "alert" });

    ui.emailForm = buildEmailForm();

    ui.staged = element("div", { class: "staged", "aria-label": "Files to send", role: "list" });
    ui.file = element("input", { type: "file", class: "visually-hidden", tabindex: "-1", "aria-hidden": "true" });
    ui.attach = element("button", { type: "button", class: "icon", "aria-label": "Attach a file" });
    ui.attach.innerHTML = CLIP_ICON;
    ui.input = element("textarea", { id: "fd-input", rows: "1", placeholder: "Write a message…", maxlength: "10000" });
    ui.send = element("button", { type: "submit", class: "send", text: "Send" });
    ui.composer = element("form", { class: "composer" }, [
      element("label", { for: "fd-input", class: "visually-hidden", text: "Message" }),
      ui.file,
      ui.attach,
      ui.input,
      ui.send,
    ]);

    ui.panel = element("section", {
      id: "fd-panel",
      class: "panel",
      role: "dialog",
      "aria-labelledby": "fd-title",
      hidden: true,
    }, [header, ui.body, ui.typing, ui.alert, ui.emailForm, ui.staged, ui.composer]);

    root.append(ui.panel, ui.bubble);
    shadow.append(root);
    wireEvents();
  }

  function buildEmailForm() {
    const input = element("input", {
      type: "email",
      id: "fd-email",
      autocomplete: "email",
      required: true,
      "aria-describedby": "fd-email-error",
    });
    const error = element("p", { class: "error", id: "fd-email-error" });
    const save = element("button", { type: "submit", text: "Save" });
    const skip = element("button", { type: "button", text: "No thanks" });
    const form = element("form", { class: "email", hidden: true, novalidate: true }, [
      element("label", { for: "fd-email", text: "Leave your email so we can reply if you leave the page." }),
      element("div", { class: "row" }, [input, save, skip]),
      error,
    ]);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      input.removeAttribute("aria-invalid");
      const email = input.value.trim();
      if (!email) {
        input.setAttribute("aria-invalid", "true");
        error.textContent = "Enter your email address.";
        input.focus();
        return;
      }
      save.disabled = true;
      try {
        state.visitor = await api("PATCH", "/visitor", { json: { email } });
        form.replaceChildren(element("p", { role: "status", text: `Thanks, we'll reply to ${email}.` }));
      } catch (failure) {
        input.setAttribute("aria-invalid", "true");
        error.textContent =
          failure instanceof ApiError ? failure.fieldMessage || failure.message : "Could not save your email. Try again.";
        input.focus();
      } finally {
        save.disabled = false;
      }
    });
    skip.addEventListener("click", () => {
      saveStored({ email_declined: true });
      form.hidden = true;
      ui.input.focus();
    });
    return form;
  }

  // --- Opening and closing ---------------------------------------------------------------------

  function openPanel() {
    if (state.open) return;
    state.open = true;
    ui.panel.hidden = false;
    ui.bubble.setAttribute("aria-expanded", "true");
    ui.input.focus();
    updateBadge();
    startSession().catch(showError);
  }

  function closePanel() {
    if (!state.open) return;
    state.open = false;
    stopTyping();
    ui.panel.hidden = true;
    ui.bubble.setAttribute("aria-expanded", "false");
    ui.bubble.focus();
  }

  function wireEvents() {
    ui.bubble.addEventListener("click", () => (state.open ? closePanel() : openPanel()));
    ui.close.addEventListener("click", closePanel);

    ui.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        closePanel();
      }
    });
    ui.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      submitComposer();
    });
    ui.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submitComposer();
      }
    });
    ui.input.addEventListener("input", () => {
      ui.input.style.height = "auto";
      ui.input.style.height = `${Math.min(ui.input.scrollHeight, 120)}px`;
      noteTyping();
    });

    ui.attach.addEventListener("click", () => ui.file.click());
    ui.file.addEventListener("change", () => {
      const files = Array.from(ui.file.files || []);
      ui.file.value = "";
      for (const file of files) stageFile(file);
    });
    ui.older.addEventListener("click", () => loadOlder().catch(showError));
    ui.body.addEventListener("scroll", () => maybeMarkRead(), { passive: true });

    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") {
        maybeMarkRead();
        if (!socket && state.token) connectNow();
      }
    });
    window.addEventListener("online", () => {
      if (!socket && state.token) connectNow();
    });
  }

  function showError(failure) {
    console.warn("Frontdesk chat:", failure);
    ui.alert.textContent =
      failure instanceof ApiError ? failure.message : "The chat could not reach the server. It will try again.";
  }

  function clearError() {
    ui.alert.textContent = "";
  }

  // --- Visitor and conversation ----------------------------------------------------------------

  // Hide the widget for the rest of this page view because the chat was turned off. The
  // visitor token stays: the next page load shows the widget again once the chat is back on.
  function disableChat() {
    if (state.disabled) return;
    state.disabled = true;
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (socket) socket.close(1000);
    closePanel();
    host.style.display = "none";
  }

  function forgetVisitor() {
    // The visitor was revoked, so the next message starts a new visitor.
    state.token = null;
    state.conversationId = null;
    saveStored({ visitor_token: null });
    if (socket) socket.close(1000);
  }

  let sessionStarting = null;

  // Load the visitor's latest conversation when the panel opens. A visitor without a token
  // stays anonymous until they send something, so opening the panel creates nothing.
  function startSession() {
    if (!sessionStarting) {
      sessionStarting = (async () => {
        if (!state.token) return;
        connect();
        if (!state.visitor) state.visitor = await api("GET", "/visitor");
        if (!state.conversationId) {
          const list = await api("GET", "/conversations?limit=1");
          const latest = (list.items || list)[0];
          if (latest) useConversation(latest);
        }
        if (state.conversationId && !state.historyLoaded) await loadNewest();
        offerEmailForm();
      })().finally(() => {
        sessionStarting = null;
      });
    }
    return sessionStarting;
  }

  async function ensureVisitor() {
    if (state.token) return;
    const created = await api("POST", "/visitors", { json: {}, auth: false });
    state.token = created.visitor_token;
    state.visitor = created.visitor;
    saveStored({ visitor_token: state.token });
    connect();
  }

  let conversationStarting = null;

  async function ensureConversation() {
    await ensureVisitor();
    if (state.conversationId && state.conversationStatus !== "resolved") return;
    if (!conversationStarting) {
      conversationStarting = api("POST", "/conversations", { json: {} })
        .then((conversation) => useConversation(conversation))
        .finally(() => {
          conversationStarting = null;
        });
    }
    await conversationStarting;
  }

  function useConversation(conversation) {
    const changed = conversation.id !== state.conversationId;
    state.conversationId = conversation.id;
    state.conversationStatus = conversation.status;
    state.staffReadSeq = Math.max(state.staffReadSeq, conversation.staff_read_seq || 0);
    state.visitorReadSeq = Math.max(state.visitorReadSeq, conversation.visitor_read_seq || 0);
    state.readSent = Math.max(state.readSent, state.visitorReadSeq);
    if (changed) {
      // Seq numbers start again in each conversation, so the previous one's messages go;
      // messages still on their way stay and are sent into the new conversation.
      for (const [key, entry] of state.entries) {
        if (outbox.has(entry.key)) continue;
        state.entries.delete(key);
        if (entry.element) entry.element.remove();
      }
      state.historyLoaded = false;
      state.hasBefore = false;
      ui.older.hidden = true;
      subscribed = null;
    }
    subscribe();
  }

  // --- History ---------------------------------------------------------------------------------

  function messagesPath(query) {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE), ...query });
    return `/conversations/${encodeURIComponent(state.conversationId)}/messages?${params}`;
  }

  async function loadNewest() {
    const page = await api("GET", messagesPath({}));
    const pageLowest = Math.min(...page.items.map((message) => message.seq));
    // After a resync the newest page may end above older pages loaded before; those keep
    // their own "load older" state.
    if (!state.historyLoaded || pageLowest <= lowestSeq()) state.hasBefore = page.has_before;
    state.historyLoaded = true;
    for (const message of page.items) upsertMessage(message);
    ui.older.hidden = !state.hasBefore;
    scrollToEnd();
    maybeMarkRead();
  }

  async function loadNewer(afterSeq) {
    let after = afterSeq;
    for (;;) {
      const page = await api("GET", messagesPath({ after: String(after) }));
      for (const message of page.items) upsertMessage(message);
      if (!page.has_after || page.items.length === 0) break;
      after = page.items[page.items.length - 1].seq;
    }
    maybeMarkRead();
  }

  let loadingOlder = false;

  async function loadOlder() {
    const lowest = lowestSeq();
    if (!lowest || loadingOlder) return;
    // A flag rather than the disabled attribute, because disabling the focused button would
    // drop the keyboard focus.
    loadingOlder = true;
    try {
      const before = ui.body.scrollHeight - ui.body.scrollTop;
      const page = await api("GET", messagesPath({ before: String(lowest) }));
      for (const message of page.items) upsertMessage(message);
      state.hasBefore = page.has_before;
      ui.older.hidden = !state.hasBefore;
      // Keep the message that was on screen in place.
      ui.body.scrollTop = ui.body.scrollHeight - before;
      // The button keeps focus while more pages exist. Once it hides, focus moves to the
      // oldest message rather than being lost with the button.
      const first = ui.log.querySelector("li");
      if (ui.older.hidden && first) first.focus({ preventScroll: true });
    } finally {
      loadingOlder = false;
    }
  }

  function storedEntries() {
    return Array.from(state.entries.values()).filter((entry) => entry.seq);
  }

  function lowestSeq() {
    return storedEntries().reduce((low, entry) => (low === 0 || entry.seq < low ? entry.seq : low), 0);
  }

  function highestSeq() {
    return storedEntries().reduce((high, entry) => Math.max(high, entry.seq), 0);
  }

  // --- Messages --------------------------------------------------------------------------------

  // Add or update a stored message from the server (REST page, "sent" frame or event).
  function upsertMessage(message) {
    if (state.conversationId && message.conversation_id && message.conversation_id !== state.conversationId) return;
    const own = message.author && message.author.type === "visitor";
    const key = own && message.client_message_id && state.entries.has(message.client_message_id)
      ? message.client_message_id
      : message.id;
    const entry = state.entries.get(key) || state.entries.get(message.id) || { key, own };
    Object.assign(entry, {
      id: message.id,
      seq: message.seq,
      own,
      message,
      status: own ? "delivered" : "received",
      error: null,
    });
    state.entries.set(entry.key, entry);
    if (entry.key !== message.id) state.entries.set(message.id, entry);
    // The event can arrive before the "sent" frame; either one ends the wait for the other.
    clearTimeout(entry.timer);
    if (entry.inFlight === "ws") entry.inFlight = null;
    outbox.delete(entry.key);
    renderEntry(entry);
    if (!own) {
      hideTyping();
      // The server moves a member's read position to each message they send, without a
      // read event, so a staff reply means everything before it was read.
      if (!message.deleted && message.seq > state.staffReadSeq) {
        state.staffReadSeq = message.seq;
        refreshOwnStatuses();
      }
    }
    updateBadge();
    return entry;
  }

  function renderEntry(entry) {
    let item = entry.element;
    const isNew = !item;
    if (isNew) {
      item = element("li", { class: entry.own ? "message own" : "message", tabindex: "-1" });
      entry.element = item;
    }
    const message = entry.message;
    const deleted = message && message.deleted;
    item.classList.toggle("deleted", Boolean(deleted));
    item.dataset.status = statusOf(entry);
    if (entry.seq) item.dataset.seq = String(entry.seq);

    const parts = [];
    if (!entry.own) {
      const name = (message.author && message.author.name) || "Support";
      parts.push(element("span", { class: "author", text: name }));
    }
    const text = element("div", { class: "text" });
    if (deleted) text.textContent = "This message was deleted.";
    else if (message) setServerHtml(text, message.body_html);
    // A message still on its way shows the visitor's own text as plain text, never as HTML.
    else text.textContent = entry.body;
    const hasText = deleted || Boolean(message ? message.body : entry.body);
    if (hasText) parts.push(text);

    let attachments = [];
    if (message && !deleted) attachments = message.attachments || [];
    else if (!message) attachments = entry.attachments || [];
    if (attachments.length) parts.push(renderFiles(attachments, Boolean(message)));
    parts.push(renderMeta(entry));
    item.replaceChildren(...parts);

    if (isNew) insertInOrder(item, entry);
    else if (entry.seq && item.dataset.placed !== String(entry.seq)) insertInOrder(item, entry);
  }

  function insertInOrder(item, entry) {
    // Stored messages sit in seq order; messages still on their way stay at the end.
    const stick = nearBottom();
    item.dataset.placed = entry.seq ? String(entry.seq) : "";
    if (!entry.seq) {
      ui.log.append(item);
    } else {
      const after = Array.from(ui.log.children).find(
        (other) => other !== item && (!other.dataset.seq || Number(other.dataset.seq) > entry.seq),
      );
      if (after) ui.log.insertBefore(item, after);
      else ui.log.append(item);
    }
    if (stick || entry.own) scrollToEnd();
  }

  function statusOf(entry) {
    if (!entry.own) return "received";
    if (entry.status === "failed") return "failed";
    if (!entry.seq) return "pending";
    return state.staffReadSeq >= entry.seq ? "read" : "delivered";
  }

  const STATUS_TEXT = { pending: "Sending…", delivered: "Delivered", read: "Read", failed: "Not sent" };

  function renderMeta(entry) {
    const meta = element("span", { class: "meta" });
    const created = entry.message && entry.message.created_at;
    if (created) {
      const time = new Date(created);
      meta.append(
        element("time", {
          datetime: created,
          text: time.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
        }),
      );
    }
    if (entry.own) {
      const status = statusOf(entry);
      meta.append(document.createTextNode(`${created ? " · " : ""}${STATUS_TEXT[status]}`));
      if (status === "failed") {
        if (entry.error) meta.append(document.createTextNode(`: ${entry.error}`));
        const retry = element("button", { type: "button", class: "retry", text: "Retry" });
        retry.addEventListener("click", () => {
          entry.status = "pending";
          entry.error = null;
          entry.attempts = 0;
          outbox.set(entry.key, entry);
          renderEntry(entry);
          sendEntry(entry);
          ui.input.focus();
        });
        meta.append(retry);
      }
    }
    return meta;
  }

  function refreshOwnStatuses() {
    for (const entry of new Set(state.entries.values())) {
      if (entry.own && entry.element && entry.element.dataset.status !== statusOf(entry)) renderEntry(entry);
    }
  }

  function renderFiles(attachments, stored) {
    const list = element("div", { class: "files" });
    for (const attachment of attachments) {
      const label = `${attachment.filename} (${formatSize(attachment.size)})`;
      if (attachment.kind === "image") {
        const image = element("img", { alt: attachment.filename });
        list.append(image);
        const local = localFiles.get(attachment.object_id);
        if (local) image.src = local;
        else if (stored) loadImage(image, attachment).catch((failure) => {
          console.warn("Frontdesk chat: image preview failed", failure);
          image.replaceWith(downloadButton(attachment, label));
        });
      } else if (stored) {
        list.append(downloadButton(attachment, label));
      } else {
        list.append(element("span", { class: "file", text: label }));
      }
    }
    return list;
  }

  function attachmentPath(attachment, preview) {
    const base = `/conversations/${encodeURIComponent(state.conversationId)}/attachments/${encodeURIComponent(attachment.object_id)}`;
    return preview ? `${base}/preview` : base;
  }

  async function fetchBlob(path) {
    const response = await fetch(API + path, {
      headers: { Authorization: `Bearer ${state.token}` },
      mode: "cors",
      credentials: "omit",
    });
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    return response.blob();
  }

  // Images need the visitor token, which an <img src> cannot send, so the widget fetches
  // them and shows a blob: URL.
  async function loadImage(image, attachment) {
    const cacheKey = `${attachment.object_id}:preview`;
    let url = blobUrls.get(cacheKey);
    if (!url) {
      const blob = await fetchBlob(attachmentPath(attachment, attachment.has_preview));
      url = URL.createObjectURL(blob);
      blobUrls.set(cacheKey, url);
    }
    image.src = url;
  }

  function downloadButton(attachment, label) {
    const button = element("button", { type: "button", class: "file", text: `Download ${label}` });
    button.addEventListener("click", async () => {
      try {
        let url = blobUrls.get(attachment.object_id);
        if (!url) {
          url = URL.createObjectURL(await fetchBlob(attachmentPath(attachment, false)));
          blobUrls.set(attachment.object_id, url);
        }
        const link = element("a", { href: url, download: attachment.filename });
        shadow.append(link);
        link.click();
        link.remove();
      } catch (failure) {
        showError(failure);
      }
    });
    return button;
  }

  function nearBottom() {
    return ui.body.scrollHeight - ui.body.scrollTop - ui.body.clientHeight <= BOTTOM_SLACK_PX;
  }

  function scrollToEnd() {
    ui.body.scrollTop = ui.body.scrollHeight;
  }

  function updateBadge() {
    let unread = 0;
    for (const entry of new Set(state.entries.values())) {
      if (!entry.own && entry.seq > state.visitorReadSeq && !(entry.message && entry.message.deleted)) unread += 1;
    }
    const show = unread > 0 && !state.open;
    ui.badge.hidden = !show;
    ui.badge.textContent = show ? String(unread) : "";
    const title = state.config.title;
    ui.bubble.setAttribute(
      "aria-label",
      show ? `${title}, ${unread} unread ${unread === 1 ? "message" : "messages"}` : title,
    );
  }

  // --- Sending ---------------------------------------------------------------------------------

  const outbox = new Map();
  const localFiles = new Map();

  function submitComposer() {
    const body = ui.input.value.trim();
    const ready = state.staged.filter((file) => file.attachment);
    if (state.staged.some((file) => !file.attachment)) {
      ui.alert.textContent = "Wait until the files have uploaded.";
      return;
    }
    if (!body && ready.length === 0) return;
    const entry = {
      key: newClientMessageId(),
      own: true,
      body,
      attachments: ready.map((file) => file.attachment),
      status: "pending",
      attempts: 0,
    };
    state.entries.set(entry.key, entry);
    outbox.set(entry.key, entry);
    state.staged = [];
    renderStaged();
    ui.input.value = "";
    ui.input.style.height = "auto";
    stopTyping();
    clearError();
    renderEntry(entry);
    sendEntry(entry);
  }

  // Send a message that is in the outbox, starting the visitor and conversation first if needed.
  function sendEntry(entry) {
    ensureConversation()
      .then(() => deliver(entry))
      .catch((failure) => {
        if (isRetryable(failure)) scheduleRestRetry(entry);
        else failEntry(entry, failure);
      });
  }

  function deliver(entry) {
    if (entry.inFlight || !outbox.has(entry.key) || !state.conversationId) return;
    if (socketReady() && subscribed === state.conversationId) {
      entry.inFlight = "ws";
      sendFrame({
        type: "send",
        conversation_id: state.conversationId,
        client_message_id: entry.key,
        body: entry.body,
        attachments: entry.attachments.map((attachment) => attachment.object_id),
      });
      entry.timer = setTimeout(() => {
        // No "sent" in time: the connection may be dead without a close frame.
        entry.inFlight = null;
        abandonSocket("send timed out");
        deliver(entry);
      }, SEND_TIMEOUT_MS);
      return;
    }
    entry.inFlight = "rest";
    api("POST", `/conversations/${encodeURIComponent(state.conversationId)}/messages`, {
      json: {
        body: entry.body,
        client_message_id: entry.key,
        attachments: entry.attachments.map((attachment) => attachment.object_id),
      },
    })
      .then((result) => {
        entry.inFlight = null;
        upsertMessage(result.message);
        offerEmailForm();
      })
      .catch((failure) => {
        entry.inFlight = null;
        if (isRetryable(failure)) scheduleRestRetry(entry);
        else failEntry(entry, failure);
      });
  }

  function scheduleRestRetry(entry) {
    entry.attempts = (entry.attempts || 0) + 1;
    if (entry.attempts > REST_RETRIES) {
      failEntry(entry, new Error("The server could not be reached."));
      return;
    }
    setTimeout(() => {
      if (outbox.has(entry.key)) sendEntry(entry);
    }, backoffDelay(entry.attempts) + 500);
  }

  function failEntry(entry, failure) {
    clearTimeout(entry.timer);
    entry.inFlight = null;
    entry.status = "failed";
    entry.error = failure instanceof ApiError ? failure.fieldMessage || failure.message : failure.message;
    outbox.delete(entry.key);
    renderEntry(entry);
  }

  function flushOutbox() {
    for (const entry of outbox.values()) deliver(entry);
  }

  // --- Attachments -----------------------------------------------------------------------------

  function stageFile(file) {
    const staged = { file, attachment: null };
    state.staged.push(staged);
    renderStaged();
    ensureVisitor()
      .then(() =>
        api("POST", `/uploads?${new URLSearchParams({ filename: file.name })}`, {
          raw: file,
          contentType: file.type || "application/octet-stream",
        }),
      )
      .then((attachment) => {
        staged.attachment = attachment;
        if (attachment.kind === "image") localFiles.set(attachment.object_id, URL.createObjectURL(file));
        renderStaged();
      })
      .catch((failure) => {
        state.staged = state.staged.filter((other) => other !== staged);
        renderStaged();
        showError(failure);
      });
  }

  function renderStaged() {
    const chips = state.staged.map((staged) => {
      const remove = element("button", {
        type: "button",
        "aria-label": `Remove ${staged.file.name}`,
        text: "×",
      });
      remove.addEventListener("click", () => {
        state.staged = state.staged.filter((other) => other !== staged);
        renderStaged();
        ui.input.focus();
      });
      const label = staged.attachment ? staged.file.name : `Uploading ${staged.file.name}…`;
      return element("span", { class: "chip", role: "listitem" }, [element("span", { text: label }), remove]);
    });
    ui.staged.replaceChildren(...chips);
  }

  // --- Email form ------------------------------------------------------------------------------

  function offerEmailForm() {
    const sentSomething = Array.from(state.entries.values()).some((entry) => entry.own && entry.seq);
    const declined = loadStored().email_declined;
    const known = state.visitor && state.visitor.email;
    if (sentSomething && !declined && !known && ui.emailForm.hidden && ui.emailForm.querySelector("input")) {
      ui.emailForm.hidden = false;
    }
  }

  // --- Reading and typing ----------------------------------------------------------------------

  function maybeMarkRead() {
    if (!state.open || document.visibilityState !== "visible" || !state.conversationId) return;
    if (!nearBottom()) return;
    const seq = highestSeq();
    if (seq <= state.readSent) return;
    state.readSent = seq;
    state.visitorReadSeq = Math.max(state.visitorReadSeq, seq);
    updateBadge();
    if (socketReady() && subscribed === state.conversationId) {
      sendFrame({ type: "read", conversation_id: state.conversationId, seq });
    } else {
      api("POST", `/conversations/${encodeURIComponent(state.conversationId)}/read`, { json: { seq } }).catch(
        (failure) => {
          state.readSent = 0;
          console.warn("Frontdesk chat: marking messages read failed", failure);
        },
      );
    }
  }

  let typingSentAt = 0;
  let typingIdleTimer = null;

  function noteTyping() {
    if (!socketReady() || subscribed !== state.conversationId || !state.conversationId) return;
    if (!ui.input.value.trim()) {
      stopTyping();
      return;
    }
    const now = Date.now();
    if (now - typingSentAt >= TYPING_REPEAT_MS) {
      typingSentAt = now;
      sendFrame({ type: "typing", conversation_id: state.conversationId, state: "start" });
    }
    clearTimeout(typingIdleTimer);
    typingIdleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  function stopTyping() {
    clearTimeout(typingIdleTimer);
    if (!typingSentAt) return;
    typingSentAt = 0;
    if (socketReady() && state.conversationId) {
      sendFrame({ type: "typing", conversation_id: state.conversationId, state: "stop" });
    }
  }

  let typingHideTimer = null;

  function showTyping(frame) {
    const name = (frame.participant && frame.participant.name) || "Support";
    ui.typing.textContent = `${name} is typing…`;
    clearTimeout(typingHideTimer);
    // Without a refresh the indicator goes away after expires_in seconds.
    typingHideTimer = setTimeout(hideTyping, (frame.expires_in || 6) * 1000);
  }

  function hideTyping() {
    clearTimeout(typingHideTimer);
    ui.typing.textContent = "";
  }

  // --- Realtime --------------------------------------------------------------------------------

  let socket = null;
  let ready = false;
  let subscribed = null;
  let reconnectAttempt = 0;
  let reconnectTimer = null;
  let pingTimer = null;
  let awaitingPong = false;

  function socketReady() {
    return Boolean(socket && ready && socket.readyState === WebSocket.OPEN);
  }

  function sendFrame(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  }

  function connectNow() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    reconnectAttempt = 0;
    connect();
  }

  function connect() {
    if (socket || !state.token || reconnectTimer || state.disabled) return;
    const ws = new WebSocket(REALTIME_URL);
    socket = ws;
    ready = false;
    ws.addEventListener("open", () => {
      const auth = { type: "auth", token: state.token };
      if (state.lastEventId) auth.last_event_id = state.lastEventId;
      ws.send(JSON.stringify(auth));
    });
    ws.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      handleFrame(frame);
    });
    ws.addEventListener("close", (event) => onSocketClosed(ws, event.code));
  }

  // Give up on a connection that looks dead. A browser may fire "close" for it only after a
  // long closing handshake timeout, so the widget carries on without waiting for that event.
  function abandonSocket(reason) {
    const ws = socket;
    if (!ws) return;
    ws.close(4000, reason);
    onSocketClosed(ws, 4000);
  }

  function onSocketClosed(ws, code) {
    if (socket !== ws) return;
    socket = null;
    ready = false;
    subscribed = null;
    clearInterval(pingTimer);
    hideTyping();
    typingSentAt = 0;
    // Messages sent over this connection without a "sent" go again over REST; the
    // client_message_id makes the server store each of them once.
    for (const entry of outbox.values()) {
      if (entry.inFlight === "ws") {
        clearTimeout(entry.timer);
        entry.inFlight = null;
      }
    }
    if (code === CLOSE_CHAT_DISABLED) {
      disableChat();
      return;
    }
    flushOutbox();
    if (code === CLOSE_VISITOR_REVOKED) {
      forgetVisitor();
      return;
    }
    if (state.token) scheduleReconnect();
  }

  function scheduleReconnect() {
    const delay = backoffDelay(reconnectAttempt);
    reconnectAttempt = Math.min(reconnectAttempt + 1, 10);
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      connect();
    }, delay);
  }

  function startPing() {
    clearInterval(pingTimer);
    awaitingPong = false;
    pingTimer = setInterval(() => {
      if (awaitingPong) {
        abandonSocket("no pong");
        return;
      }
      awaitingPong = true;
      sendFrame({ type: "ping" });
    }, PING_INTERVAL_MS);
  }

  function subscribe() {
    if (socketReady() && state.conversationId && subscribed !== state.conversationId) {
      subscribed = null;
      sendFrame({ type: "subscribe", conversation_id: state.conversationId });
    }
  }

  function handleFrame(frame) {
    switch (frame.type) {
      case "ready": {
        ready = true;
        reconnectAttempt = 0;
        const resuming = Boolean(state.lastEventId);
        // A resuming client keeps its own position until the replayed events have arrived.
        if (!resuming) state.lastEventId = frame.last_event_id;
        startPing();
        subscribe();
        if (!resuming && state.conversationId) loadNewest().catch(showError);
        break;
      }
      case "resync":
        state.lastEventId = frame.last_event_id;
        if (state.conversationId) loadNewest().catch(showError);
        break;
      case "subscribed":
        onSubscribed(frame);
        break;
      case "event":
        state.lastEventId = frame.id;
        handleEvent(frame.event, frame.data || {});
        break;
      case "sent": {
        const entry = state.entries.get(frame.client_message_id);
        if (entry) {
          clearTimeout(entry.timer);
          entry.inFlight = null;
        }
        if (frame.message) upsertMessage(frame.message);
        offerEmailForm();
        break;
      }
      case "typing":
        if (frame.conversation_id !== state.conversationId) break;
        if (frame.participant && frame.participant.type === "visitor") break;
        if (frame.state === "start") showTyping(frame);
        else hideTyping();
        break;
      case "pong":
        awaitingPong = false;
        break;
      case "error":
        onErrorFrame(frame);
        break;
      default:
        break;
    }
  }

  function onSubscribed(frame) {
    if (frame.conversation_id !== state.conversationId) return;
    subscribed = frame.conversation_id;
    for (const position of frame.read || []) {
      const participant = position.participant || {};
      if (participant.type !== "visitor") {
        state.staffReadSeq = Math.max(state.staffReadSeq, position.last_read_seq || 0);
      }
    }
    for (const participant of frame.typing || []) {
      if (participant.type !== "visitor") showTyping({ participant });
    }
    refreshOwnStatuses();
    // Fill a gap the replay could not cover, such as messages written before this page loaded.
    const known = highestSeq();
    if (state.historyLoaded && frame.last_seq > known) loadNewer(known).catch(showError);
    flushOutbox();
    maybeMarkRead();
  }

  function onErrorFrame(frame) {
    if (frame.client_message_id) {
      const entry = state.entries.get(frame.client_message_id);
      if (entry) {
        clearTimeout(entry.timer);
        entry.inFlight = null;
        if (frame.code === "rate_limited") {
          scheduleRestRetry(entry);
        } else {
          failEntry(entry, new Error(frame.message || "The message was not accepted."));
        }
      }
      return;
    }
    if (frame.code === "not_found" && frame.conversation_id === state.conversationId) {
      // The conversation is gone or no longer this visitor's: the next message starts another.
      state.conversationId = null;
    }
    console.warn("Frontdesk chat: server error frame", frame.code, frame.message);
  }

  function handleEvent(name, data) {
    switch (name) {
      case "conversation.message.created":
      case "conversation.message.updated":
      case "conversation.message.deleted":
        if (data.message) {
          upsertMessage(data.message);
          maybeMarkRead();
        }
        break;
      case "conversation.read": {
        if (data.conversation_id !== state.conversationId) break;
        const participant = data.participant || {};
        if (participant.type === "visitor") {
          state.visitorReadSeq = Math.max(state.visitorReadSeq, data.last_read_seq || 0);
          updateBadge();
        } else {
          state.staffReadSeq = Math.max(state.staffReadSeq, data.last_read_seq || 0);
          refreshOwnStatuses();
        }
        break;
      }
      default:
        break;
    }
  }

  // --- Start -----------------------------------------------------------------------------------

  async function start() {
    let config;
    try {
      config = await api("GET", "/config", { auth: false });
    } catch (failure) {
      console.warn("Frontdesk chat: the widget stays hidden because its settings did not load.", failure);
      return;
    }
    if (!config.enabled) return;
    state.config = config;
    applyStyles();
    build(config);
    document.body.append(host);
    if (state.token) {
      // A returning visitor: connect now, so that replies show as a badge on the bubble.
      connect();
      startSession().catch((failure) => console.warn("Frontdesk chat:", failure));
    }
  }

  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start, { once: true });
})();
