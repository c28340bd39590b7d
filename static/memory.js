// Memory page: the fact list refreshes itself every 2 s while something is being
// learnt; a refresh would close a correction the user is typing, so it waits.
document.addEventListener("htmx:beforeRequest", (e) => {
  const list = e.detail.elt;
  if (list.id === "facts" && e.detail.requestConfig.verb === "get" && list.querySelector("details.edit[open]")) {
    e.preventDefault();
  }
});
