// The Faults tab's controls (locustfiles/panel.py). Locust's extended tabs show a table and
// nothing else, so this script, loaded by Locust's page, puts the add/remove form under
// the Faults tab's table whenever that tab is open, and takes it away when it is not.
(() => {
  "use strict";
  const API = new URL("api/", document.currentScript.src);
  const REFRESH_MS = 2000;
  const STYLE = `
    #loadkit-faults { margin: 16px 0; padding: 16px; border-radius: 4px;
      border: 1px solid rgba(128,128,128,.35); font-size: 14px; line-height: 1.5; }
    #loadkit-faults h3 { font-size: 16px; font-weight: 500; margin: 0 0 12px; }
    #loadkit-faults h3 + * { margin-top: 0; }
    #loadkit-faults .lk-section + .lk-section { margin-top: 20px; }
    #loadkit-faults form { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-end; }
    #loadkit-faults label { display: flex; flex-direction: column; font-size: 12px; opacity: .9; }
    #loadkit-faults input, #loadkit-faults select { font: inherit; color: inherit;
      background: transparent; border: 1px solid rgba(128,128,128,.5); border-radius: 4px;
      padding: 0 8px; margin-top: 2px; min-width: 7em; height: 36px; box-sizing: border-box; }
    #loadkit-faults select option { color: #000; }
    #loadkit-faults input[type=number] { width: 8em; }
    #loadkit-faults button { font: inherit; font-weight: 500; text-transform: uppercase;
      letter-spacing: .03em; border-radius: 4px; padding: 0 16px; height: 36px; cursor: pointer;
      border: 1px solid #15803d; background: #15803d; color: #fff; }
    #loadkit-faults button.lk-secondary { background: transparent; color: inherit;
      border-color: rgba(128,128,128,.6); height: 32px; }
    #loadkit-faults button:disabled { opacity: .5; cursor: default; }
    #loadkit-faults table { border-collapse: collapse; width: 100%; margin: 0 0 12px; }
    #loadkit-faults th, #loadkit-faults td { text-align: left; padding: 6px 8px;
      border-bottom: 1px solid rgba(128,128,128,.3); }
    #loadkit-faults th { font-weight: 500; }
    #loadkit-faults .lk-error { color: #d32f2f; font-weight: 500; min-height: 1.5em; margin: 8px 0 0; }
    #loadkit-faults .lk-note { opacity: .7; font-size: 12px; margin: 12px 0 0; }
  `;

  const box = document.createElement("section");
  box.id = "loadkit-faults";
  box.innerHTML = `
    <style>${STYLE}</style>
    <div class="lk-section">
      <h3>Add a fault</h3>
      <form id="lk-add">
        <label>Link <select name="link" id="lk-link"></select></label>
        <label>Toxic <select name="toxic" id="lk-toxic"></select></label>
        <label id="lk-stream-label">Stream <select name="stream" id="lk-stream"></select></label>
        <label id="lk-toxicity-label">Toxicity
          <input name="toxicity" type="number" min="0.01" max="1" step="0.01" value="1"></label>
        <span id="lk-attrs" style="display: contents"></span>
        <button type="submit">Add fault</button>
      </form>
      <p class="lk-error" id="lk-error" role="alert"></p>
    </div>
    <div class="lk-section">
      <h3>Added from this tab</h3>
      <table><thead><tr><th>Fault</th><th>Since</th><th></th></tr></thead>
        <tbody id="lk-injected"></tbody></table>
      <button type="button" class="lk-secondary" id="lk-clear">Remove all added here</button>
      <p class="lk-note">Fault server <code id="lk-url">?</code>. Every fault added here is
        recorded as a fault window in the run folder (faults.jsonl) and removed when Locust quits.</p>
    </div>`;
  const $ = (id) => box.querySelector("#" + id);
  let toxics = null;

  const esc = (s) => String(s).replace(/[&<>"]/g,
    (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
  const showError = (text) => { $("lk-error").textContent = text || ""; };

  async function api(path, options) {
    const answer = await fetch(new URL(path, API), options);
    const body = await answer.json().catch(() => ({}));
    if (!answer.ok) throw new Error(body.error || `${answer.status} ${answer.statusText}`);
    return body;
  }

  function showAttributes() {
    const name = $("lk-toxic").value;
    const spec = toxics[name] || {attributes: [], needs: []};
    $("lk-attrs").innerHTML = spec.attributes.map((a) => `<label>${esc(a.name)} (${esc(a.unit)})
      <input name="attr:${esc(a.name)}" type="number" min="0" step="1"
        ${spec.needs.length === 1 && spec.needs[0] === a.name ? "required" : ""}></label>`).join("");
    const down = name === "down";  // a whole link off: no stream, no toxicity
    $("lk-stream-label").style.display = down ? "none" : "";
    $("lk-toxicity-label").style.display = down ? "none" : "";
  }

  function fillForm(state) {
    $("lk-link").innerHTML = state.links.map((l) => `<option>${esc(l.name)}</option>`).join("");
    $("lk-stream").innerHTML = state.streams.map((s) => `<option>${esc(s)}</option>`).join("");
    toxics = state.toxics;
    $("lk-toxic").innerHTML = Object.keys(toxics).map((t) => `<option>${esc(t)}</option>`).join("");
    showAttributes();
  }

  async function refresh() {
    if (!box.isConnected) return;
    try {
      const state = await api("state");
      $("lk-url").textContent = state.url;
      if (state.error) showError(`fault server: ${state.error}`);
      if (toxics === null && state.links.length) fillForm(state);
      $("lk-injected").innerHTML = state.injected.map((f) => `<tr><td>${esc(f.text)}</td>
        <td>${new Date(f.since * 1000).toLocaleTimeString()}</td>
        <td><button type="button" class="lk-secondary" data-id="${esc(f.id)}">Remove</button></td>
        </tr>`).join("") || `<tr><td colspan="3">none</td></tr>`;
      $("lk-clear").disabled = !state.injected.length;
    } catch (error) {
      showError(error.message);
    }
  }

  $("lk-toxic").addEventListener("change", showAttributes);
  $("lk-add").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const attributes = {};
    for (const [key, value] of form.entries()) {
      if (key.startsWith("attr:") && value !== "") attributes[key.slice(5)] = Number(value);
    }
    const body = {link: form.get("link"), toxic: form.get("toxic"), attributes};
    if (body.toxic !== "down") {
      body.stream = form.get("stream");
      body.toxicity = Number(form.get("toxicity"));
    }
    try {
      await api("inject", {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify(body)});
      showError("");
    } catch (error) {
      showError(error.message);
    }
    refresh();
  });
  $("lk-injected").addEventListener("click", async (event) => {
    const id = event.target.dataset && event.target.dataset.id;
    if (!id) return;
    try {
      await api("inject/" + encodeURIComponent(id), {method: "DELETE"});
      showError("");
    } catch (error) {
      showError(error.message);
    }
    refresh();
  });
  $("lk-clear").addEventListener("click", async () => {
    try {
      await api("clear", {method: "POST"});
      showError("");
    } catch (error) {
      showError(error.message);
    }
    refresh();
  });

  // Where the tab's content is: the sibling after the tab bar (MUI Tabs) in its container.
  function place() {
    const tab = [...document.querySelectorAll('[role="tab"][aria-selected="true"]')]
      .find((t) => t.textContent.trim() === "Faults");
    const bar = tab && tab.closest(".MuiTabs-root");
    const container = bar && bar.parentElement && bar.parentElement.parentElement;
    if (!container) {
      if (box.isConnected) box.remove();
      return;
    }
    if (box.parentElement !== container || container.lastElementChild !== box) {
      const fresh = !box.isConnected;
      container.appendChild(box);
      if (fresh) refresh();
    }
  }

  let queued = false;
  new MutationObserver(() => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; place(); });
  }).observe(document.body, {childList: true, subtree: true});
  setInterval(refresh, REFRESH_MS);
  place();
})();
