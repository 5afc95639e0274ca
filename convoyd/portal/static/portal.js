// Shows every <time datetime="..."> in the viewer's own time zone (the server renders UTC),
// and only the chosen method's fields in the endpoint form.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  for (const node of document.querySelectorAll("time[datetime]")) {
    const when = new Date(node.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) {
      node.title = node.textContent;
      node.textContent = format.format(when);
    }
  }
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
