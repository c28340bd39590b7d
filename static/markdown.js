// Replies as safe Markdown: marked (CommonMark + GFM) turns the text into HTML, raw
// HTML in the text is shown as text (never parsed), and DOMPurify sanitises what
// marked produced before it reaches the page. Exposes window.renderMarkdown(text).
(function () {
  function escapeHtml(text) {
    return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }
  const parser = new window.marked.Marked({ gfm: true, breaks: true });
  parser.use({ renderer: { html(token) { return escapeHtml(token.text); } } });
  window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  });
  const allowed = {
    ALLOWED_TAGS: ["p", "br", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a",
      "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "thead", "tbody", "tr", "th", "td", "span"],
    ALLOWED_ATTR: ["href", "title", "class", "start", "align"],
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i,
  };
  window.renderMarkdown = function (text) {
    return window.DOMPurify.sanitize(parser.parse(text), allowed);
  };
})();
