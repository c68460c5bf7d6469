/* pingjia.js: the evaluator's own client for browser-based business systems.
 *
 * Served by the device at /pingjia.js; plain ES2017, no dependencies. See
 * docs/local-api.md ("Browsers") for a page to copy.
 *
 *   var device = Pingjia.connect({token: "..."});       // url: where this script came from
 *   device.invite([{project_no: "...", task_name: "..."}], {id: "0131", name: "王芳"})
 *     .then(function (outcome) { ... outcome.state: "rated" | "unrated", outcome.level ... })
 *     .catch(function (err) { ... err.code: the device's error code, err.status ... });
 *
 * The outcome comes from the device's event stream (EventSource) where the browser has
 * one and the device admits it, else from long polls (GET ...?wait=).
 */
(function (global) {
  "use strict";

  var SCRIPT_URL = (global.document && document.currentScript && document.currentScript.src) || "";
  var POLL_S = 25;

  function PingjiaError(status, code, message) {
    var e = new Error(message + " (" + code + ")");
    e.name = "PingjiaError";
    e.status = status;   // HTTP status, 0 when the device did not answer
    e.code = code;       // the device's "error", e.g. "window_paused", "unauthorized"
    e.detail = message;
    return e;
  }

  function deviceUrl(options) {
    if (options.url) return String(options.url).replace(/\/+$/, "");
    if (SCRIPT_URL) return SCRIPT_URL.replace(/\/pingjia\.js(\?.*)?$/, "");
    throw PingjiaError(0, "no_url", "pass {url: \"https://device:8410\"} to Pingjia.connect");
  }

  function newVisitId() {
    var c = global.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    var bytes = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(bytes);
    else for (var i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    return "web-" + Array.prototype.map.call(bytes, function (b) {
      return (b + 256).toString(16).slice(1);
    }).join("");
  }

  class Device {
    constructor(options) {
      options = options || {};
      if (!options.token) throw PingjiaError(0, "no_token", "pass the device's API token: {token: \"...\"}");
      this.url = deviceUrl(options);
      this.token = options.token;
      this.useEvents = options.events !== false && typeof global.EventSource === "function";
      this.waiting = {};        // visit_id -> {resolve, reject, polling}
      this.source = null;
      this.onevent = options.onevent || null;  // (name, data) for every event of the stream
    }

    async call(method, path, body) {
      var init = {method: method, headers: {"Authorization": "Bearer " + this.token}};
      if (body !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      var response;
      try {
        response = await fetch(this.url + path, init);
      } catch (err) {
        throw PingjiaError(0, "unreachable", "the evaluator at " + this.url + " did not answer (" +
                           "not running, wrong address, certificate not trusted, or this page's " +
                           "origin not allowed): " + err.message);
      }
      var answer = null;
      try { answer = await response.json(); } catch (err) { answer = null; }
      if (!response.ok) {
        if (answer && answer.error) throw PingjiaError(response.status, answer.error, answer.message || "");
        throw PingjiaError(response.status, "http_error", "HTTP " + response.status);
      }
      return answer;
    }

    /* Ask the person at the window to rate `items`; a Promise of the outcome. */
    async invite(items, staff, options) {
      options = options || {};
      var body = {visit_id: options.visitId || newVisitId(), items: items};
      if (staff) body.staff = staff;
      if (this.useEvents) await this.openEvents();  // before the call: no outcome is missed
      var outcome = new Promise((resolve, reject) => {
        this.waiting[body.visit_id] = {resolve: resolve, reject: reject, polling: false};
      });
      try {
        await this.call("POST", "/v1/invitations", body);
      } catch (err) {
        delete this.waiting[body.visit_id];
        throw err;
      }
      if (!this.source) this.poll(body.visit_id);
      return outcome;
    }

    /* The outcome of a visit (state "open" while it is), waiting up to `waitS` seconds. */
    visit(visitId, waitS) {
      var path = "/v1/invitations/" + encodeURIComponent(visitId);
      return this.call("GET", waitS ? path + "?wait=" + waitS : path);
    }

    cancel() { return this.call("DELETE", "/v1/invitations/current"); }

    signIn(id, name) {
      var staff = typeof id === "object" ? id : {id: id, name: name};
      return this.call("PUT", "/v1/staff", staff);
    }

    signOut() { return this.call("DELETE", "/v1/staff"); }

    pause(message) {
      var body = {state: "paused"};
      if (message) body.message = message;
      return this.call("PUT", "/v1/window", body);
    }

    resume() { return this.call("PUT", "/v1/window", {state: "open"}); }

    status() { return this.call("GET", "/v1/status"); }

    close() {
      if (this.source) this.source.close();
      this.source = null;
    }

    settle(visitId, outcome) {
      var w = this.waiting[visitId];
      if (!w || outcome.state === "open") return;
      delete this.waiting[visitId];
      w.resolve(outcome);
    }

    async poll(visitId) {
      var w = this.waiting[visitId];
      if (!w || w.polling) return;
      w.polling = true;
      while (this.waiting[visitId]) {
        try {
          this.settle(visitId, await this.visit(visitId, POLL_S));
        } catch (err) {
          if (err.status === 503) {   // busy or too many waits: a moment, then again
            await new Promise(function (r) { setTimeout(r, 1000); });
            continue;
          }
          var left = this.waiting[visitId];
          delete this.waiting[visitId];
          if (left) left.reject(err);
        }
      }
    }

    openEvents() {
      if (this.source) return Promise.resolve();
      return new Promise((resolve) => {
        var url = this.url + "/v1/events?access_token=" + encodeURIComponent(this.token);
        var source = new EventSource(url);
        var opened = false;
        // a device that does not answer the stream soon: long polls meanwhile
        setTimeout(() => { if (!opened) { opened = true; resolve(); } }, 3000);
        source.onopen = () => {
          var first = !this.source;
          this.source = source;
          if (!opened) { opened = true; resolve(); return; }
          if (first) return;
          // reconnected: the device replays what it still has, a read settles the rest
          Object.keys(this.waiting).forEach((id) => {
            this.visit(id).then((o) => this.settle(id, o), function () {});
          });
        };
        source.onerror = () => {
          if (source.readyState !== EventSource.CLOSED) return;  // the browser reconnects
          // refused (too many streams, bad token) or gone: long polls from here on
          if (this.source === source) this.source = null;
          this.useEvents = false;
          if (!opened) { opened = true; resolve(); }
          Object.keys(this.waiting).forEach((id) => this.poll(id));
        };
        ["outcome", "invitation", "window", "staff"].forEach((name) => {
          source.addEventListener(name, (e) => {
            var data = JSON.parse(e.data);
            if (name === "outcome") this.settle(data.visit_id, data);
            if (this.onevent) this.onevent(name, data);
          });
        });
      });
    }
  }

  global.Pingjia = {
    connect: function (options) { return new Device(options); },
    Device: Device,
    PingjiaError: PingjiaError,
  };
})(typeof window !== "undefined" ? window : this);
