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
    if (!form.hasAttribute("data-submit-once") || event.defaultPrevented) return;
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

// Leads: bulk bar, confirmations, kanban drag and drop with load-more, the note editor.
(function () {
  "use strict";

  // Buttons that delete ask first (the form still works without JavaScript, unconfirmed).
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
  });

  // Bulk bar: appears with a count once rows are checked; shows only the input its action needs.
  var bar = document.querySelector("[data-bulk-bar]");
  if (bar) {
    var boxes = function () { return document.querySelectorAll("[data-select]"); };
    var action = bar.querySelector("[data-bulk-action]");
    var refresh = function () {
      var checked = Array.prototype.filter.call(boxes(), function (b) { return b.checked; }).length;
      bar.classList.toggle("is-idle", checked === 0);
      bar.querySelector("[data-bulk-count]").textContent = checked + " selected";
      bar.querySelectorAll("[data-bulk-for]").forEach(function (input) {
        var wanted = input.getAttribute("data-bulk-for").split(" ");
        input.hidden = wanted.indexOf(action.value) === -1;
        input.disabled = input.hidden;
      });
    };
    document.addEventListener("change", function (event) {
      if (event.target.matches("[data-select-all]")) {
        boxes().forEach(function (b) { b.checked = event.target.checked; });
      }
      if (event.target.matches("[data-select], [data-select-all], [data-bulk-action]")) refresh();
    });
    refresh();
  }

  // Kanban: drop a card on a column to change its stage through the API; a refusal (stage owned
  // by another role, for instance) puts the card back and says why.
  var board = document.querySelector("[data-board]");
  if (board) {
    var toast = document.querySelector("[data-board-toast]");
    var say = function (message) {
      if (!toast) return;
      toast.textContent = message;
      toast.classList.remove("toast-hide");
      clearTimeout(say.timer);
      say.timer = setTimeout(function () { toast.classList.add("toast-hide"); }, 5000);
    };
    var dragged = null;
    var counter = function (column, delta) {
      var count = column.querySelector("[data-count]");
      if (!count) return;
      count.textContent = String(Math.max(0, parseInt(count.textContent, 10) + delta));
      var empty = column.querySelector("[data-empty]");
      if (empty) empty.remove();
    };
    board.addEventListener("dragstart", function (event) {
      var card = event.target.closest("[data-lead]");
      if (!card) return;
      dragged = card;
      card.classList.add("dragging");
      board.classList.add("is-dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", card.getAttribute("data-lead"));
    });
    board.addEventListener("dragend", function () {
      if (dragged) dragged.classList.remove("dragging");
      board.classList.remove("is-dragging");
      board.querySelectorAll(".drag-over").forEach(function (c) { c.classList.remove("drag-over"); });
    });
    board.addEventListener("dragover", function (event) {
      var column = event.target.closest("[data-column]");
      if (!column || !dragged) return;
      event.preventDefault();
      board.querySelectorAll(".drag-over").forEach(function (c) { if (c !== column) c.classList.remove("drag-over"); });
      column.classList.add("drag-over");
    });
    board.addEventListener("drop", function (event) {
      var column = event.target.closest("[data-column]");
      if (!column || !dragged) return;
      event.preventDefault();
      column.classList.remove("drag-over");
      var card = dragged;
      var from = card.closest("[data-column]");
      var stage = column.getAttribute("data-column");
      if (from === column) return;
      var list = column.querySelector("[data-cards]");
      var origin = card.nextSibling;
      list.insertBefore(card, list.firstChild);
      counter(column, 1);
      counter(from, -1);
      window.meridianFetch("/api/v1/leads/" + card.getAttribute("data-lead") + "/stage", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ stage: stage })
      }).then(function (response) {
        if (response.ok) {
          card.setAttribute("data-stage", stage);
          // Handed off to a role the mover does not have: it leaves their board.
          if (!column.querySelector("[data-count]")) card.remove();
          say("Moved to " + column.querySelector(".kcol-title").textContent.trim() + ".");
          return;
        }
        return response.json().then(function (problem) {
          from.querySelector("[data-cards]").insertBefore(card, origin);
          counter(column, -1);
          counter(from, 1);
          say(problem.detail || "That move was refused.");
        });
      }).catch(function () {
        from.querySelector("[data-cards]").insertBefore(card, origin);
        counter(column, -1);
        counter(from, 1);
        say("Could not reach the server; nothing changed.");
      });
    });
    // Columns load their next cards as the "Load more" link scrolls into view.
    var loadMore = function (link) {
      if (link.getAttribute("aria-busy")) return;
      link.setAttribute("aria-busy", "true");
      fetch(link.getAttribute("href"), { credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          var item = link.closest("li");
          var holder = document.createElement("ol");
          holder.innerHTML = html;
          Array.prototype.slice.call(holder.children).forEach(function (child) { item.parentNode.insertBefore(child, item); });
          item.remove();
          watch();
        });
    };
    var observer = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) { if (entry.isIntersecting) loadMore(entry.target); });
    }) : null;
    var watch = function () {
      board.querySelectorAll("[data-load-more]").forEach(function (link) { if (observer) observer.observe(link); });
    };
    board.addEventListener("click", function (event) {
      var link = event.target.closest("[data-load-more]");
      if (!link) return;
      event.preventDefault();
      loadMore(link);
    });
    watch();
  }

  // Notes: a small rich-text editor over the textarea. The server sanitizes whatever arrives.
  document.querySelectorAll("[data-note-form]").forEach(function (form) {
    var textarea = form.querySelector("textarea");
    var toolbar = form.querySelector("[data-editor-toolbar]");
    var editor = document.createElement("div");
    editor.className = "editor";
    editor.contentEditable = "true";
    editor.setAttribute("role", "textbox");
    editor.setAttribute("aria-multiline", "true");
    editor.setAttribute("aria-label", "New note");
    editor.setAttribute("data-placeholder", textarea.getAttribute("placeholder") || "");
    textarea.hidden = true;
    textarea.required = false;
    textarea.parentNode.insertBefore(editor, textarea);
    toolbar.hidden = false;
    toolbar.addEventListener("click", function (event) {
      var button = event.target.closest("[data-cmd]");
      if (!button) return;
      var cmd = button.getAttribute("data-cmd");
      var value = button.getAttribute("data-value");
      if (cmd === "createLink") {
        value = window.prompt("Link address (https://…)");
        if (!value) return;
      }
      editor.focus();
      document.execCommand(cmd, false, value);
    });
    form.querySelector("[data-note-format]").value = "html";
    form.addEventListener("submit", function (event) {
      textarea.value = editor.innerHTML;
      if (!editor.textContent.trim()) {
        event.preventDefault();
        editor.focus();
      }
    });
  });
})();

// Tasks, dashboard, pipeline settings: the viewer's clock for due times, tasks completed in place,
// and the pipeline form's sortable rows (drag or arrow keys), added rows and key slugs.
(function () {
  "use strict";

  // The server groups tasks by the viewer's calendar, so it needs the browser's UTC offset.
  var offset = String(-new Date().getTimezoneOffset());
  var stored = document.cookie.match(/(?:^|;\s*)tz_offset=([^;]*)/);
  if (!stored || stored[1] !== offset) {
    document.cookie = "tz_offset=" + offset + "; path=/; max-age=31536000; samesite=lax";
  }
  document.querySelectorAll("[data-tz-hint]").forEach(function (hint) {
    var zone = window.Intl && Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone) hint.textContent = "Your time (" + zone.replace(/_/g, " ") + ")";
  });

  // A due time is read on the clock of its own date (daylight saving may differ from today's).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("[data-task-form]")) return;
    var due = form.querySelector("input[name=due]");
    var field = form.querySelector("[data-tz-offset]");
    var at = due && due.value ? new Date(due.value) : new Date();
    if (field && !isNaN(at.getTime())) field.value = String(-at.getTimezoneOffset());
  });

  // Completing a task updates its row in place; if the server refuses, the form posts normally
  // so the error page says why.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("[data-task-toggle]") || !window.fetch || !window.URLSearchParams) return;
    event.preventDefault();
    var button = form.querySelector("[role=checkbox]");
    var next = form.querySelector("[data-task-done]");
    var row = form.closest("[data-task-row]");
    button.disabled = true;
    window.meridianFetch(form.action, {
      method: "POST",
      headers: { "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(new FormData(form)).toString()
    }).then(function (response) {
      if (!response.ok) throw new Error("refused");
      return response.json();
    }).then(function (task) {
      button.setAttribute("aria-checked", task.done ? "true" : "false");
      next.value = task.done ? "0" : "1";
      if (row) row.classList.toggle("is-done", task.done);
      button.disabled = false;
    }).catch(function () {
      form.submit();
    });
  });

  // Pipeline form: rows keep a position number (what the server orders by); dragging a row by
  // its grip, or pressing the arrow keys on the grip, moves it and renumbers.
  var live = null;
  var announce = function (text) {
    if (!live) {
      live = document.createElement("div");
      live.className = "sr-only";
      live.setAttribute("aria-live", "polite");
      document.body.appendChild(live);
    }
    live.textContent = text;
  };
  var rowsOf = function (body) {
    return Array.prototype.filter.call(body.children, function (row) { return row.matches("[data-sort-row]"); });
  };
  var renumber = function (body) {
    rowsOf(body).forEach(function (row, index) {
      var position = row.querySelector("[data-position]");
      if (position) position.value = String(index + 1);
    });
  };
  var slug = function (text) {
    return text.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^[0-9_]+/, "").slice(0, 40).replace(/_+$/, "");
  };
  var syncOptions = function (select) {
    var cell = select.closest("[data-sort-row]").querySelector("[data-options]");
    if (!cell) return;
    var on = select.value === "select" || select.value === "multi_select";
    cell.classList.toggle("is-off", !on);
    cell.querySelectorAll("input").forEach(function (input) { input.disabled = !on; });
  };

  document.querySelectorAll("[data-sortable]").forEach(function (body) {
    body.classList.add("is-sortable");
    var dragged = null;
    // Only a row grabbed by its grip drags, so text in its inputs can still be selected.
    body.addEventListener("mousedown", function (event) {
      var grip = event.target.closest("[data-grip]");
      if (grip) grip.closest("[data-sort-row]").draggable = true;
    });
    body.addEventListener("mouseup", function () {
      if (!dragged) rowsOf(body).forEach(function (row) { row.draggable = false; });
    });
    body.addEventListener("dragstart", function (event) {
      var row = event.target.closest && event.target.closest("[data-sort-row]");
      if (!row || !row.draggable) return;
      dragged = row;
      row.classList.add("is-dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", "");
    });
    body.addEventListener("dragover", function (event) {
      if (!dragged) return;
      event.preventDefault();
      var row = event.target.closest("[data-sort-row]");
      if (!row || row === dragged || row.parentNode !== body) return;
      var box = row.getBoundingClientRect();
      body.insertBefore(dragged, event.clientY > box.top + box.height / 2 ? row.nextSibling : row);
    });
    body.addEventListener("drop", function (event) {
      if (dragged) event.preventDefault();
    });
    body.addEventListener("dragend", function () {
      if (!dragged) return;
      dragged.classList.remove("is-dragging");
      dragged.draggable = false;
      dragged = null;
      renumber(body);
    });
    body.addEventListener("keydown", function (event) {
      var grip = event.target.closest("[data-grip]");
      if (!grip || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
      event.preventDefault();
      var row = grip.closest("[data-sort-row]");
      var rows = rowsOf(body);
      var index = rows.indexOf(row);
      var target = event.key === "ArrowUp" ? rows[index - 1] : rows[index + 1];
      if (!target) return;
      body.insertBefore(row, event.key === "ArrowUp" ? target : target.nextSibling);
      grip.focus();
      renumber(body);
      announce("Moved to position " + (rowsOf(body).indexOf(row) + 1) + " of " + rows.length);
    });
    // Keys a person typed are theirs; untouched ones follow the label.
    body.querySelectorAll("[data-sort-row]").forEach(function (row) {
      var source = row.querySelector("[data-slug-source]");
      var target = row.querySelector("[data-slug-target]");
      if (source && target && target.value && target.value !== slug(source.value)) target.setAttribute("data-touched", "");
    });
  });

  document.querySelectorAll("[data-add-row]").forEach(function (button) {
    var list = button.getAttribute("data-add-row");
    var template = document.querySelector('template[data-row-template="' + list + '"]');
    var body = document.querySelector('[data-sortable="' + list + '"]');
    if (!template || !body) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      // Row indexes only need to be unique; the position numbers carry the order.
      var next = 0;
      body.querySelectorAll("[name]").forEach(function (input) {
        var match = input.name.match(/^[a-z]+\[(\d+)\]/);
        if (match) next = Math.max(next, parseInt(match[1], 10) + 1);
      });
      var holder = document.createElement("tbody");
      holder.innerHTML = template.innerHTML.replace(/__i__/g, String(next));
      var row = holder.querySelector("[data-sort-row]");
      body.appendChild(row);
      renumber(body);
      row.querySelectorAll("[data-field-type]").forEach(syncOptions);
      var first = row.querySelector("[data-slug-source]");
      if (first) first.focus();
    });
  });

  document.addEventListener("input", function (event) {
    var target = event.target;
    if (target.matches("[data-slug-target]")) target.setAttribute("data-touched", "");
    if (!target.matches("[data-slug-source]")) return;
    var key = target.closest("[data-sort-row]").querySelector("[data-slug-target]");
    if (key && !key.hasAttribute("data-touched")) key.value = slug(target.value);
  });

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("[data-remove]")) target.closest("[data-sort-row]").classList.toggle("is-removed", target.checked);
    if (target.matches("[data-field-type]")) syncOptions(target);
  });
  document.querySelectorAll("[data-field-type]").forEach(syncOptions);
})();

// Import progress: while an import runs, its page polls the import every second and updates the
// bar and counts in place (without JavaScript the page offers a Refresh link instead), then
// reloads once it ends to show the final report.
(function () {
  "use strict";
  var labels = { running: "Importing", completed: "Completed", failed: "Failed" };
  document.querySelectorAll("[data-import-progress]").forEach(function (box) {
    if (box.getAttribute("data-status") !== "running") return;
    var url = box.getAttribute("data-import-progress");
    var field = function (name) { return box.querySelector('[data-field="' + name + '"]'); };
    var set = function (name, text) { var el = field(name); if (el) el.textContent = text; };
    var refresh = box.querySelector("[data-refresh]");
    if (refresh) refresh.hidden = true;
    var tick = function () {
      window.meridianFetch(url, { headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data) { setTimeout(tick, 2000); return; }
          var bar = field("bar");
          if (bar) { bar.value = data.progress.percent; bar.textContent = data.progress.percent + "%"; }
          set("rows", data.progress.rows_done + " of " + data.progress.rows_total + " rows");
          ["created", "updated", "skipped", "failed"].forEach(function (k) { set(k, data.counts[k]); });
          var status = field("status");
          if (status) {
            status.textContent = labels[data.status] || data.status;
            status.className = "badge import-status-" + data.status;
          }
          var errors = box.querySelector("[data-errors-link]");
          if (errors && data.counts.failed > 0) errors.hidden = false;
          if (data.status === "running") setTimeout(tick, 1000);
          else window.location.reload();
        })
        .catch(function () { setTimeout(tick, 2000); });
    };
    setTimeout(tick, 1000);
  });
})();

// Email: a live preview of the template or email being written (the Preview button renders the
// same on the server without JavaScript), and a chosen template filling the lead page's form.
(function () {
  "use strict";

  // A disabled button is left out of what its form sends, so disabling the clicked one
  // (data-submit-once) would drop its name=value, which says whether to preview, save or send.
  // A hidden copy carries it instead.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var button = event.submitter;
    if (event.defaultPrevented || !form.hasAttribute("data-submit-once") || !button || !button.name) return;
    var copy = form.querySelector("input[data-submitter]");
    if (!copy) {
      copy = document.createElement("input");
      copy.type = "hidden";
      copy.setAttribute("data-submitter", "");
      form.appendChild(copy);
    }
    copy.name = button.name;
    copy.value = button.value;
  });

  if (!window.fetch) return;

  document.querySelectorAll("[data-email-form]").forEach(function (form) {
    var panel = document.querySelector("[data-preview-panel]");
    if (!panel) return;
    var frame = panel.querySelector("[data-preview-frame]");
    var status = panel.querySelector("[data-preview-status]");
    var field = function (name) { return form.elements[name] || null; };
    var templateSelect = form.querySelector("[data-template-select]");
    var timer = null;
    var latest = 0;

    var say = function (text, isError) {
      status.textContent = text;
      status.classList.toggle("is-error", !!isError);
    };
    var show = function (email) {
      panel.querySelector("[data-preview-subject]").textContent = email.subject;
      panel.querySelector("[data-preview-text]").textContent = email.text;
      frame.srcdoc = email.html;
      [frame, panel.querySelector("[data-preview-subject-row]"), panel.querySelector("[data-preview-text-box]")]
        .forEach(function (el) { el.hidden = false; });
      say("");
    };
    // The same request the Preview button makes: a blank subject or body with a template chosen
    // means the template's, so blanks are left out rather than sent.
    var draft = function () {
      var body = {};
      var template = templateSelect ? templateSelect.value : "";
      if (template) body.template_id = template;
      ["subject", "body_html", "body_text"].forEach(function (name) {
        var input = field(name);
        if (!input) return;
        if (input.value.trim() || !template) body[name] = input.value;
      });
      var lead = form.getAttribute("data-lead-id");
      if (lead) body.lead_id = lead;
      return body;
    };
    var refresh = function () {
      var mine = ++latest;
      say("Updating the preview\u2026");
      window.meridianFetch("/api/v1/email/preview", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify(draft())
      }).then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      }).then(function (reply) {
        if (mine !== latest) return;
        if (reply.ok) { show(reply.data); return; }
        var errors = (reply.data.errors || []).map(function (e) { return e.field.replace(/_/g, " ") + " " + e.message; });
        say(errors.length ? errors.join("; ") : (reply.data.detail || "The preview failed."), true);
      }).catch(function () {
        if (mine === latest) say("Could not reach the server to update the preview.", true);
      });
    };
    var later = function () {
      clearTimeout(timer);
      timer = setTimeout(refresh, 400);
    };
    form.addEventListener("input", later);

    // Choosing a template puts its text in the form, to send as is or to edit first.
    if (templateSelect) {
      var filled = { subject: "", body_html: "" };
      templateSelect.addEventListener("change", function () {
        var id = templateSelect.value;
        if (!id) { later(); return; }
        window.meridianFetch("/api/v1/email/templates/" + encodeURIComponent(id), { headers: { "Accept": "application/json" } })
          .then(function (response) { return response.ok ? response.json() : null; })
          .then(function (template) {
            if (!template || templateSelect.value !== id) return;
            var subject = field("subject");
            var html = field("body_html");
            var edited = (subject.value.trim() && subject.value !== filled.subject) ||
              (html.value.trim() && html.value !== filled.body_html);
            if (edited && !window.confirm("Replace what you wrote with the template \u201c" + template.name + "\u201d?")) return;
            subject.value = filled.subject = template.subject;
            html.value = filled.body_html = template.body_html;
            refresh();
          })
          .catch(function () { say("Could not load the template; Preview shows it instead.", true); });
      });
    }
  });
})();

// The bell's unread count, live: server-sent events from /api/v1/me/notifications/stream, and
// polling every 30 seconds when the stream cannot stay open (a proxy that buffers, an old browser).
(function () {
  var bell = document.querySelector("[data-bell]");
  if (!bell) return;
  var badge = bell.querySelector("[data-bell-badge]");
  var show = function (count) {
    badge.textContent = count > 99 ? "99+" : String(count);
    badge.hidden = count === 0;
    bell.setAttribute("aria-label", count > 0 ? "Notifications, " + count + " unread" : "Notifications");
  };
  var poll = function () {
    window.fetch("/api/v1/me/notifications?unread=true&limit=1", { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (page) { if (page) show(page.unread_count); })
      .catch(function () {});
  };
  var polling = null;
  var startPolling = function () {
    if (!polling) polling = window.setInterval(poll, 30000);
  };
  if (!window.EventSource) { startPolling(); return; }
  var stream = null;
  var failures = 0;
  var open = function () {
    if (stream || polling) return;
    stream = new window.EventSource("/api/v1/me/notifications/stream");
    stream.addEventListener("unread", function (event) {
      failures = 0;
      try { show(JSON.parse(event.data).count); } catch (e) { /* a malformed event changes nothing */ }
    });
    stream.addEventListener("error", function () {
      failures += 1;
      if (failures >= 3) { close(); poll(); startPolling(); }
    });
  };
  var close = function () {
    if (stream) { stream.close(); stream = null; }
  };
  // A page the browser keeps for Back (the back-forward cache) would otherwise keep its stream,
  // and with it one of the few connections a browser opens to a server: close it when the page
  // is hidden, and catch up when it comes back.
  window.addEventListener("pagehide", close);
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { poll(); open(); }
  });
  open();
})();

// Automations: the list's on/off switches flip in place (without JavaScript each is a form that
// posts and comes back to the list), and the editor shows the fields each choice needs as it is
// made (without JavaScript, the Update buttons re-render the form on the server).
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("[data-automation-toggle]") || !window.fetch || !window.URLSearchParams) return;
    event.preventDefault();
    var button = form.querySelector("[role=switch]");
    var next = form.querySelector("input[name=enabled]");
    button.disabled = true;
    window.meridianFetch(form.action, {
      method: "POST",
      headers: { "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(new FormData(form)).toString()
    }).then(function (response) {
      if (!response.ok) throw new Error("refused");
      return response.json();
    }).then(function (automation) {
      button.setAttribute("aria-checked", automation.enabled ? "true" : "false");
      button.querySelector("[data-switch-label]").textContent = automation.enabled ? "On" : "Off";
      next.value = automation.enabled ? "0" : "1";
      button.disabled = false;
    }).catch(function () {
      form.submit();
    });
  });

  var toggles = document.querySelectorAll("[data-toggles]");
  if (!toggles.length) return;
  var sync = function (select) {
    var name = select.getAttribute("data-toggles");
    document.querySelectorAll('[data-shown-by="' + name + '"]').forEach(function (group) {
      group.hidden = group.getAttribute("data-values").split(" ").indexOf(select.value) === -1;
    });
  };
  toggles.forEach(sync);
  document.querySelectorAll("[data-toggle-refresh]").forEach(function (button) { button.hidden = true; });
  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-toggles]")) sync(event.target);
  });
})();
