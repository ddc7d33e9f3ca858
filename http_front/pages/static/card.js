// The payment page's checks as you type (Luhn, expiry, code, name); the server checks the same again.
// Same origin only (CSP script-src 'self'); the page works without it (a plain form POST).
(function () {
  "use strict";
  var auto = document.querySelector("form[data-autosubmit]");
  if (auto) { auto.submit(); return; }  // 3-D Secure: on to the ACS (the button stays for no-JS)
  var method = document.querySelector("form[data-method]");
  if (method) {
    // 3-D Secure 2's method: the ACS's page in the hidden frame; our method-done page tells us (same
    // origin only) when it is over, else the payment goes on after 10 s (the AReq then says so).
    var resume = document.getElementById("resume-form"), sent = false;
    var go = function () { if (!sent) { sent = true; resume.submit(); } };
    window.addEventListener("message", function (event) {
      if (event.origin === window.location.origin && event.data === "3DSMethodDone") { go(); }
    });
    window.setTimeout(go, 10000);
    method.submit();
    return;
  }
  var form = document.getElementById("pay-form");
  if (!form) { return; }

  function digits(v) { return v.replace(/[\s-]/g, ""); }
  function luhn(n) {
    var sum = 0, dbl = false;
    for (var i = n.length - 1; i >= 0; i--) {
      var d = n.charCodeAt(i) - 48;
      if (dbl) { d *= 2; if (d > 9) { d -= 9; } }
      sum += d; dbl = !dbl;
    }
    return sum % 10 === 0;
  }
  function value(id) { return document.getElementById(id).value.trim(); }
  // The project lets the cardholder leave it out: the server renders that field without "required".
  function optional(id) { return !document.getElementById(id).required; }

  var checks = {
    number: function (final) {
      var n = digits(value("number"));
      if (!n) { return final ? "number_required" : ""; }
      if (!/^[0-9]+$/.test(n)) { return "number_invalid"; }
      if (n.length < 16 && !final) { return ""; }  // still typing (most cards have 16 digits)
      return (n.length >= 12 && n.length <= 19 && luhn(n)) ? "" : "number_invalid";
    },
    exp: function (final) {
      var m = value("exp_month"), y = value("exp_year");
      if (!final && (m.length < 2 || y.length < 2)) { return ""; }
      if (!/^[0-9]{1,2}$/.test(m) || !/^([0-9]{2}|[0-9]{4})$/.test(y)) { return "exp_invalid"; }
      var month = parseInt(m, 10), year = parseInt(y, 10);
      if (year < 100) { year += 2000; }
      if (month < 1 || month > 12 || year > 2099) { return "exp_invalid"; }
      var now = new Date(), cur = now.getFullYear() * 12 + now.getMonth();
      return (year * 12 + month - 1 < cur) ? "exp_past" : "";
    },
    cvc: function (final) {
      var c = value("cvc");
      if (!c && optional("cvc")) { return ""; }
      if (!final && c.length < 3) { return ""; }
      return /^[0-9]{3,4}$/.test(c) ? "" : "cvc_invalid";
    },
    holder: function (final) {
      var h = value("holder").replace(/\s+/g, " ");
      if (!h && optional("holder")) { return ""; }
      if (!final && h.length < 2) { return ""; }
      return /^[ -~]{2,40}$/.test(h) ? "" : "holder_invalid";
    }
  };
  var inputs = { number: ["number"], exp: ["exp_month", "exp_year"], cvc: ["cvc"], holder: ["holder"] };

  function show(name, final) {
    var key = checks[name](final);
    var box = document.getElementById("err-" + name);
    var text = key ? (form.getAttribute("data-msg-" + key) || "") : "";
    if (box.textContent !== text) { box.textContent = text; }
    inputs[name].forEach(function (id) {
      var el = document.getElementById(id);
      if (key) { el.setAttribute("aria-invalid", "true"); } else { el.removeAttribute("aria-invalid"); }
    });
    return !key;
  }

  Object.keys(inputs).forEach(function (name) {
    inputs[name].forEach(function (id) {
      var el = document.getElementById(id);
      el.addEventListener("input", function () { show(name, false); });
      el.addEventListener("blur", function () { if (el.value) { show(name, name !== "exp" || id === "exp_year"); } });
    });
  });

  // 3-D Secure 2's browser details (what only a script can tell); without them the payment uses 3DS1.
  function browserDetails() {
    var details = {
      browser_color_depth: window.screen.colorDepth,
      browser_screen_height: window.screen.height,
      browser_screen_width: window.screen.width,
      window_height: window.innerHeight,
      window_width: window.innerWidth,
      browser_timezone: new Date().getTimezoneOffset(),
      browser_java_enabled: "false",
      browser_language: navigator.language || ""
    };
    Object.keys(details).forEach(function (name) {
      var input = form.querySelector("input[name='" + name + "']");
      if (!input) {
        input = document.createElement("input");
        input.type = "hidden";
        input.name = name;
        form.appendChild(input);
      }
      input.value = String(details[name]);
    });
  }

  form.addEventListener("submit", function (event) {
    var first = null;
    Object.keys(inputs).forEach(function (name) {
      if (!show(name, true) && first === null) { first = document.getElementById(inputs[name][0]); }
    });
    if (first !== null) { event.preventDefault(); first.focus(); return; }
    browserDetails();
    var button = document.getElementById("pay-button");
    // Disabled after this submit has gone: a second click sends nothing more.
    window.setTimeout(function () { button.disabled = true; }, 0);
  });
}());
