// Chat pane: post a message and render the reply as it streams (SSE over fetch).
(function () {
  const form = document.getElementById("composer");
  if (!form) return;
  const box = document.getElementById("messages");
  const input = document.getElementById("content");
  const bridge = document.getElementById("bridge");
  const send = document.getElementById("send");

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
    box.scrollTop = box.scrollHeight;
    return wrap;
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
        let event = "message", data = [];
        for (const line of raw.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) onEvent(event, JSON.parse(data.join("\n")));
      }
    }
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    send.disabled = true;
    input.value = "";
    const userWrap = bubble("user", text);
    const replyWrap = bubble("assistant", "");
    replyWrap.classList.add("streaming");
    const replyText = replyWrap.querySelector(".bubble");
    const body = new URLSearchParams({ content: text });
    if (bridge.checked) body.set("bridge", "true");
    try {
      const response = await fetch("/chat/" + form.dataset.conversation + "/messages", {
        method: "POST",
        headers: { "x-csrftoken": form.dataset.csrf, "Content-Type": "application/x-www-form-urlencoded" },
        body,
      });
      if (!response.ok) {
        replyText.textContent = "Error: " + (await response.text()).slice(0, 300);
        replyWrap.classList.add("error");
        return;
      }
      await readEvents(response, (event, data) => {
        if (event === "user") rememberButton(userWrap, data.id);
        else if (event === "token") { replyText.textContent += data.t; box.scrollTop = box.scrollHeight; }
        else if (event === "done") {
          replyWrap.dataset.id = data.id;
          const meta = document.createElement("span");
          meta.className = "meta";
          const labels = { general: "base model · general question", unsure: "not in memory" };
          const who = data.adapter || labels[data.scope] || "base model";
          meta.textContent = who + (bridge.checked ? "" : " · bridge off");
          if (!data.adapter && data.scope === "general") {
            meta.title = "Not about you, so the base model answered: what you taught cannot change general answers.";
          } else if (!data.adapter && data.scope === "unsure") {
            meta.title = "About you, but nothing you taught seems to answer it (the adapter was unsure).";
          }
          replyWrap.appendChild(meta);
        }
      });
    } catch (err) {
      replyText.textContent += " [connection lost: " + err + "]";
      replyWrap.classList.add("error");
    } finally {
      replyWrap.classList.remove("streaming");
      replyWrap.classList.add("done");
      send.disabled = false;
      input.focus();
    }
  });

  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
  });
})();
