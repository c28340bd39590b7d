// Chat pane: send a message and render the reply as it streams (SSE over fetch),
// stop it, copy or regenerate a reply, retry after an error, offer "Remember this?"
// under a message that states something about the user, and the conversation
// sidebar (a drawer on narrow screens; search, rename, delete).
(function () {
  const form = document.getElementById("composer");
  if (!form) return;
  const box = document.getElementById("messages");
  const input = document.getElementById("content");
  const bridge = document.getElementById("bridge");
  const send = document.getElementById("send");
  const stop = document.getElementById("stop");
  const errorBox = document.getElementById("chat-error");
  const retry = document.getElementById("retry");
  const base = "/chat/" + form.dataset.conversation;
  let controller = null; // the in-flight reply's AbortController
  let retryAction = null;

  // ---- rendering ----------------------------------------------------------
  function renderReply(wrap, text) {
    wrap.dataset.markdown = text;
    const b = wrap.querySelector(".bubble");
    b.innerHTML = window.renderMarkdown(text);
    b.querySelectorAll("pre").forEach((pre) => { pre.tabIndex = 0; }); // code scrolls: reachable by keyboard
  }

  function scrollDown() { box.scrollTop = box.scrollHeight; }

  function bubble(role, text) {
    const empty = document.getElementById("empty");
    if (empty) empty.remove();
    const wrap = document.createElement("div");
    wrap.className = "msg " + role;
    const b = document.createElement("div");
    b.className = "bubble";
    b.textContent = text;
    wrap.appendChild(b);
    box.appendChild(wrap);
    scrollDown();
    return wrap;
  }

  function button(label, className, onClick, title) {
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = className;
    btn.textContent = label;
    if (title) btn.title = title;
    btn.addEventListener("click", onClick);
    return btn;
  }

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    const area = document.createElement("textarea"); // plain-http fallback
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }

  // Copy on every reply; Regenerate only on the last one (and not while one streams).
  function replyActions(wrap) {
    let actions = wrap.querySelector(".actions");
    if (!actions) {
      actions = document.createElement("div");
      actions.className = "actions";
      const copy = button("Copy", "link copy", async () => {
        try { await copyText(wrap.dataset.markdown || ""); copy.textContent = "Copied"; }
        catch (err) { copy.textContent = "Copy failed"; }
        setTimeout(() => { copy.textContent = "Copy"; }, 1500);
      }, "Copy this reply");
      actions.appendChild(copy);
      wrap.appendChild(actions);
    }
    return actions;
  }

  function refreshRegenerate() {
    box.querySelectorAll(".regenerate").forEach((b) => b.remove());
    const last = box.lastElementChild;
    if (controller || !last || !last.classList.contains("assistant")) return;
    replyActions(last).appendChild(button("Regenerate", "link regenerate", () => regenerate(), "Write this reply again"));
  }

  function rememberButton(wrap, id) {
    wrap.dataset.id = id;
    const btn = document.createElement("button");
    btn.className = "link remember";
    btn.textContent = "Remember this";
    btn.setAttribute("hx-post", "/messages/" + id + "/remember");
    btn.setAttribute("hx-swap", "outerHTML");
    wrap.appendChild(btn);
    if (window.htmx) htmx.process(btn);
  }

  // "Remember this?" under a message that states something about the user (the
  // server's detector decided); a close earlier fact is offered as a correction.
  function offerChip(wrap, id, offer) {
    const chip = document.createElement("div");
    chip.className = "offer";
    chip.setAttribute("role", "group");
    chip.setAttribute("aria-label", "Memory suggestion");
    const label = document.createElement("span");
    label.className = "offer-label";
    const choices = [];
    if (offer.kind === "correct") {
      label.textContent = "Update memory? This may correct “" + offer.replaces_text + "”.";
      choices.push(["Replace it", { replaces: String(offer.replaces_id) }, "chip"]);
      choices.push(["Keep both", {}, "chip ghost"]);
    } else {
      label.textContent = "Remember this?";
      choices.push(["Remember", {}, "chip"]);
    }
    chip.appendChild(label);
    for (const [text, vals, cls] of choices) {
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = cls;
      btn.textContent = text;
      btn.setAttribute("hx-post", "/messages/" + id + "/remember");
      btn.setAttribute("hx-vals", JSON.stringify(vals));
      btn.setAttribute("hx-target", "closest .offer");
      btn.setAttribute("hx-swap", "outerHTML");
      chip.appendChild(btn);
    }
    chip.appendChild(button("Not now", "chip ghost", () => chip.remove(), "Dismiss this suggestion"));
    const plain = wrap.querySelector(".remember");
    if (plain) plain.remove();
    wrap.appendChild(chip);
    if (window.htmx) htmx.process(chip);
  }

  function replyMeta(wrap, data) {
    const meta = document.createElement("span");
    meta.className = "meta";
    const labels = { general: "base model · general question", unsure: "not in memory", overview: "from your memory" };
    meta.textContent = (data.adapter || labels[data.scope] || "base model") + (bridge.checked ? "" : " · bridge off");
    if (!data.adapter && data.scope === "general") {
      meta.title = "Not about you, so the base model answered: what you taught cannot change general answers.";
    } else if (!data.adapter && data.scope === "unsure") {
      meta.title = "About you, but nothing you taught seems to answer it (the adapter was unsure).";
    } else if (data.scope === "overview") {
      meta.title = "The facts you taught, as listed on your Memory page.";
    }
    wrap.appendChild(meta);
  }

  // ---- errors ---------------------------------------------------------------
  function showError(text, action) {
    errorBox.querySelector(".text").textContent = text;
    errorBox.hidden = false;
    retryAction = action;
    retry.hidden = !action;
  }
  function clearError() { errorBox.hidden = true; retryAction = null; }
  retry.addEventListener("click", () => { const act = retryAction; clearError(); if (act) act(); });

  async function failureText(response) {
    if (response.status === 429 || response.status === 503) {
      const wait = parseInt(response.headers.get("Retry-After") || "", 10);
      return "The assistant is busy right now" + (wait > 0 ? "; try again in " + wait + " s." : ". Try again in a moment.");
    }
    if (response.status === 401) return "Your session has ended. Log in again.";
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) return "Could not send: " + body.error.message;
    } catch (err) { /* not JSON */ }
    return "Something went wrong (HTTP " + response.status + ").";
  }

  // ---- SSE over fetch -------------------------------------------------------
  // Parse a text/event-stream body incrementally: events are separated by a blank line.
  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const raw = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = "message";
        const data = [];
        for (const line of raw.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) onEvent(event, JSON.parse(data.join("\n")));
      }
    }
  }

  function setStreaming(on) {
    send.hidden = on;
    stop.hidden = !on;
    input.setAttribute("aria-busy", on ? "true" : "false");
    if (!on) controller = null;
  }

  // One reply: POST ``url`` with ``body``, stream it into a new assistant bubble.
  // ``userWrap``: the user's bubble when this posts a new message (null to regenerate).
  async function streamReply(url, body, userWrap, onFailure) {
    clearError();
    controller = new AbortController();
    refreshRegenerate();
    setStreaming(true);
    const replyWrap = bubble("assistant", "");
    replyWrap.classList.add("streaming");
    replyWrap.setAttribute("aria-busy", "true");
    let text = "";
    let stored = false; // the server stored the user's message: a retry regenerates
    let finished = false;
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: {
          "x-csrftoken": form.dataset.csrf,
          "Content-Type": "application/x-www-form-urlencoded",
          Accept: "text/event-stream, application/json",
        },
        body,
        signal: controller.signal,
      });
      if (!response.ok) {
        replyWrap.remove();
        showError(await failureText(response), onFailure(false));
        return;
      }
      await readEvents(response, (event, data) => {
        if (event === "user" && userWrap) {
          stored = true;
          rememberButton(userWrap, data.id);
          if (data.offer) offerChip(userWrap, data.id, data.offer);
        } else if (event === "token") {
          text += data.t;
          renderReply(replyWrap, text);
          scrollDown();
        } else if (event === "done") {
          finished = true;
          replyWrap.dataset.id = data.id;
          renderReply(replyWrap, text);
          replyActions(replyWrap);
          replyMeta(replyWrap, data);
        }
      });
      if (!finished) throw new Error("the reply ended early");
    } catch (err) {
      if (err.name === "AbortError") {
        renderReply(replyWrap, text);
        replyActions(replyWrap);
        const meta = document.createElement("span");
        meta.className = "meta stopped";
        meta.textContent = "stopped";
        replyWrap.appendChild(meta);
      } else {
        if (!text) replyWrap.remove(); else replyWrap.classList.add("error");
        showError("The connection was lost before the reply finished.", onFailure(stored || !userWrap));
      }
    } finally {
      replyWrap.classList.remove("streaming");
      replyWrap.classList.add("done");
      replyWrap.setAttribute("aria-busy", "false");
      setStreaming(false);
      refreshRegenerate();
      input.focus();
    }
  }

  function bridgeBody(extra) {
    const body = new URLSearchParams(extra || {});
    if (bridge.checked) body.set("bridge", "true");
    return body;
  }

  function regenerate() {
    if (controller) return;
    const last = box.lastElementChild;
    if (last && last.classList.contains("assistant")) last.remove();
    return streamReply(base + "/regenerate", bridgeBody(), null, () => regenerate);
  }

  // The server titles a new conversation after its first message: show it without a reload.
  function titleAfterFirstMessage(text) {
    const title = document.getElementById("chat-title");
    if (title.textContent.trim() !== "New conversation") return;
    const current = document.querySelector("#conversation-list [aria-current=page]");
    for (const el of [title, current]) if (el) el.textContent = text.slice(0, 60);
    document.getElementById("rename-title").value = text.slice(0, 60);
  }

  function sendText(text) {
    titleAfterFirstMessage(text);
    const userWrap = bubble("user", text);
    return streamReply(base + "/messages", bridgeBody({ content: text }), userWrap, (stored) => {
      if (stored) return regenerate;
      return () => { userWrap.remove(); sendText(text); };
    });
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || controller) return;
    input.value = "";
    sendText(text);
  });
  stop.addEventListener("click", () => { if (controller) controller.abort(); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && controller) { e.preventDefault(); controller.abort(); }
  });

  // ---- the page as loaded ------------------------------------------------------
  box.querySelectorAll(".msg.assistant").forEach((wrap) => {
    renderReply(wrap, wrap.querySelector(".bubble").textContent);
    replyActions(wrap);
  });
  refreshRegenerate();
  scrollDown();

  // The conversation list is a drawer on narrow screens.
  const layout = document.getElementById("chat-layout");
  const toggle = document.getElementById("toggle-sidebar");
  const sidebar = document.getElementById("sidebar");
  function setDrawer(open) {
    layout.classList.toggle("sidebar-open", open);
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) (sidebar.querySelector("a, button, input") || sidebar).focus();
  }
  toggle.addEventListener("click", () => setDrawer(!layout.classList.contains("sidebar-open")));
  document.getElementById("close-sidebar").addEventListener("click", () => { setDrawer(false); toggle.focus(); });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && layout.classList.contains("sidebar-open") && !controller) { setDrawer(false); toggle.focus(); }
  });

  document.querySelectorAll("form[data-confirm]").forEach((f) => {
    f.addEventListener("submit", (e) => { if (!window.confirm(f.dataset.confirm)) e.preventDefault(); });
  });
})();
