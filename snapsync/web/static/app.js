// snapsync Services: a little plain JavaScript (no build, no CDN). Everything works
// without it; it adds the live pop-up, the customer search, the sample's format and
// confirmations.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // The pop-up: server-sent events from this account's notices.
  const url = document.body.dataset.events;
  if (url && window.EventSource) {
    const source = new EventSource(url);
    source.addEventListener("ready", () => { document.body.dataset.live = "on"; });
    // The session ended (signed out elsewhere, disabled): stop listening.
    source.addEventListener("signed-out", () => { source.close(); document.body.dataset.live = "off"; });
    const show = (title, data) => {
      const notice = JSON.parse(data);
      document.getElementById("popup-title").textContent = title;
      document.getElementById("popup-text").textContent = notice.message || "";
      document.getElementById("popup").hidden = false;
      const badge = document.getElementById("unread-count");
      if (badge) {
        const n = (parseInt(badge.dataset.count, 10) || 0) + 1;
        badge.dataset.count = String(n);
        badge.textContent = String(n);
      }
    };
    source.addEventListener("sync_pending", (e) => show("Data Sync", e.data));
    source.addEventListener("snapshot_ready", (e) => show("Snapshot ready", e.data));
    window.addEventListener("beforeunload", () => source.close());
  }
  const close = document.getElementById("popup-close");
  if (close) close.addEventListener("click", () => { document.getElementById("popup").hidden = true; });

  // "Sync From Customer" search: filter the list as one types.
  document.querySelectorAll("input[data-filter]").forEach((input) => {
    const select = document.getElementById(input.dataset.filter);
    input.addEventListener("input", () => {
      const q = input.value.trim().toLowerCase();
      let first = null;
      for (const option of select.options) {
        const match = option.textContent.toLowerCase().includes(q);
        option.hidden = !match;
        if (match && !first) first = option;
      }
      if (q && first && (select.selectedIndex < 0 || select.options[select.selectedIndex].hidden)) first.selected = true;
    });
  });

  // Download Sample follows the format chosen in the form, saved or not.
  const sample = document.getElementById("download-sample");
  const format = document.getElementById("format");
  if (sample && format) {
    const update = () => { sample.href = sample.dataset.base + "?format=" + encodeURIComponent(format.value); };
    format.addEventListener("change", update);
    update();
  }

  // Ask before deleting a synchronization option.
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (e) => { if (!window.confirm(form.dataset.confirm)) e.preventDefault(); });
  });
});
