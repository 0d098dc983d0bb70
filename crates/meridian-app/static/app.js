// Meridian: small enhancements on top of pages that work without JavaScript.
(function () {
  "use strict";

  var csrf = function () {
    var app = document.querySelector("[data-csrf]");
    return app ? app.getAttribute("data-csrf") : "";
  };

  // Theme toggle: switch at once and remember it in the same cookie the server reads.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-theme-toggle]");
    if (!button) return;
    event.preventDefault();
    var root = document.documentElement;
    var current = root.getAttribute("data-theme");
    if (!current) {
      current = window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
    }
    var next = current === "dark" ? "light" : "dark";
    root.setAttribute("data-theme", next);
    document.cookie = "theme=" + next + "; path=/; max-age=31536000; samesite=lax";
  });

  // Copy buttons for one-time secrets and invitation links.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var input = document.querySelector(button.getAttribute("data-copy"));
    if (!input) return;
    input.select();
    var done = function () {
      var label = button.lastChild;
      var before = label.textContent;
      label.textContent = " Copied";
      setTimeout(function () { label.textContent = before; }, 1600);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  });

  // Selects that submit their form on change; their Save/Filter buttons are only for no-JS use.
  document.querySelectorAll("[data-autosubmit]").forEach(function (select) {
    var form = select.form;
    var button = form && form.querySelector("[data-autosubmit-button]");
    if (button) button.hidden = true;
    select.addEventListener("change", function () { form.requestSubmit ? form.requestSubmit() : form.submit(); });
  });

  // Disable submit buttons while a form is sending, so a double click does not send twice.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-submit-once")) return;
    form.querySelectorAll("button[type=submit]").forEach(function (b) {
      b.disabled = true;
      b.setAttribute("aria-busy", "true");
    });
  });

  // Toasts fade away on their own.
  document.querySelectorAll("[data-toast]").forEach(function (toast) {
    setTimeout(function () { toast.classList.add("toast-hide"); }, 6000);
  });

  // Keyboard: Escape closes the mobile navigation drawer.
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      var toggle = document.getElementById("nav-toggle");
      if (toggle) toggle.checked = false;
    }
  });

  // Scripts calling the API with the session cookie send the CSRF token.
  window.meridianFetch = function (url, options) {
    options = options || {};
    options.headers = Object.assign({ "X-CSRF-Token": csrf() }, options.headers || {});
    options.credentials = "same-origin";
    return fetch(url, options);
  };
})();
