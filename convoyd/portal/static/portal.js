// Adds the viewer's local time as a tooltip to every <time datetime="..."> (the page says
// UTC), makes copy buttons work, and shows only the chosen method's fields in the endpoint form.
"use strict";
// Times inside ``root`` (also run on what a live update brings in): every time stays in UTC,
// as the server writes it and the delivery filters take it; the viewer's own local time, with
// its zone, is the tooltip.
function localTimes(root) {
  const format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });
  for (const node of root.querySelectorAll("time[datetime]")) {
    const when = new Date(node.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) node.title = "Your local time: " + format.format(when);
  }
}

// Copy buttons (hidden without script, where the text is there to select by hand) copy the
// text of the element their data-copy names.
function copyButtons(root) {
  for (const button of root.querySelectorAll("button[data-copy]")) button.hidden = false;
}
document.addEventListener("click", async (event) => {
  const button = event.target.closest && event.target.closest("button[data-copy]");
  const source = button && document.getElementById(button.dataset.copy);
  if (!source) return;
  let done = false;
  try {
    if (navigator.clipboard) {
      await navigator.clipboard.writeText(source.textContent);
      done = true;
    }
  } catch (_) {
    // Not allowed here (plain http, no permission): select the text and copy that.
  }
  if (!done) {
    window.getSelection().selectAllChildren(source);
    done = document.execCommand("copy");
  }
  button.textContent = done ? "Copied" : "Selected: press Ctrl+C";
  window.setTimeout(() => { button.textContent = "Copy"; }, 2000);
});
document.addEventListener("portal:refreshed", (event) => copyButtons(event.detail));
document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  copyButtons(document);
  // The endpoint form shows only the chosen authentication method's fields. Without
  // JavaScript every method's fields show, and the server uses only the chosen one's.
  const method = document.getElementById("f-auth_method");
  if (method) {
    const groups = document.querySelectorAll("[data-auth-method]");
    const show = () => {
      for (const group of groups) group.hidden = group.dataset.authMethod !== method.value;
    };
    method.addEventListener("change", show);
    show();
  }
});

// Live updates. Every element with data-stream="<url>" (and an id) listens on that
// Server-Sent Events stream; each message says a delivery changed, and the element is then
// replaced by the same element of the current page fetched again. At most two refreshes a
// second; the scroll position and open <details> stay. EventSource reconnects by itself (the
// server says how soon); a stream that is refused (session ended, too many streams) is tried
// a few more times, more slowly, then left alone. Without script the page is as served.
const LIVE_GAP_MS = 500;
const LIVE_TRIES = 5;

function liveReplace(doc, ids) {
  const x = window.scrollX, y = window.scrollY;
  for (const id of ids) {
    const old = document.getElementById(id);
    const fresh = doc.getElementById(id);
    if (!old || !fresh) continue;
    const open = new Set();
    old.querySelectorAll("details[open]").forEach((d, i) => open.add(d.id || i));
    fresh.querySelectorAll("details").forEach((d, i) => {
      if (open.has(d.id || i)) d.open = true;
    });
    const node = document.importNode(fresh, true);
    old.replaceWith(node);
    localTimes(node);
    document.dispatchEvent(new CustomEvent("portal:refreshed", { detail: node }));
  }
  window.scrollTo(x, y);
}

function liveRefresher(ids, stop) {
  let last = 0, timer = 0, busy = false, again = false;
  const run = async () => {
    timer = 0;
    if (busy) { again = true; return; }
    busy = true;
    last = Date.now();
    try {
      const response = await fetch(window.location.href, {
        credentials: "same-origin", headers: { Accept: "text/html" }, cache: "no-store",
      });
      if (!response.ok) { stop(); return; } // signed out, gone: the next reload says why
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      liveReplace(doc, ids);
    } catch (_) {
      // Offline for a moment: the next message tries again.
    } finally {
      busy = false;
      if (again) { again = false; schedule(); }
    }
  };
  const schedule = () => {
    if (timer) return;
    timer = window.setTimeout(run, Math.max(0, last + LIVE_GAP_MS - Date.now()));
  };
  return schedule;
}

function liveStream(url, refresh) {
  let source = null, failures = 0, stopped = false, reconnecting = false;
  const open = () => {
    if (stopped) return; // a retry that was due after the page stopped its streams
    source = new EventSource(url);
    source.onmessage = () => { failures = 0; refresh(); };
    source.onopen = () => {
      if (reconnecting) refresh(); // changes made while it was away
      reconnecting = false;
    };
    source.onerror = () => {
      reconnecting = true;
      if (source.readyState !== EventSource.CLOSED || stopped) return; // reconnects itself
      source.close();
      failures += 1;
      if (failures < LIVE_TRIES) window.setTimeout(open, 3000 * 2 ** failures);
    };
  };
  open();
  return () => { stopped = true; if (source) source.close(); };
}

function liveUpdates() {
  const streams = new Map();
  for (const node of document.querySelectorAll("[data-stream][id]")) {
    const url = node.dataset.stream;
    if (!streams.has(url)) streams.set(url, []);
    streams.get(url).push(node.id);
  }
  let stops = [];
  const stopAll = () => { for (const stop of stops) stop(); stops = []; };
  const startAll = () => {
    stopAll();
    for (const [url, ids] of streams) stops.push(liveStream(url, liveRefresher(ids, stopAll)));
  };
  startAll();
  window.addEventListener("pagehide", stopAll); // the server's slots come back at once
  window.addEventListener("pageshow", (e) => {
    if (e.persisted) { startAll(); liveRefresher([...streams.values()].flat(), stopAll)(); }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  if (window.EventSource && window.fetch && window.DOMParser) liveUpdates();
});
