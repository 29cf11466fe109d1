/// The dashboard at `/`: one self-contained page (no build step, no CDN, works offline) that
/// polls the JSON API every 2 s and draws segments × KPIs with sparklines, firing alerts with
/// their drill-down, ingest health and the last reconciliation report.
enum Dashboard {
    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <title>segmenter</title>
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <style>
      :root { --fg:#1d232b; --muted:#6b7480; --line:#e3e7ec; --bg:#f6f8fa; --card:#fff; --red:#c62828; --green:#2e7d32; --blue:#1565c0; }
      * { box-sizing: border-box; }
      body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
      header { display:flex; align-items:baseline; gap:16px; padding:14px 24px; background:#10161d; color:#fff; }
      header h1 { font-size:18px; margin:0; letter-spacing:.5px; }
      header .clock { color:#9fb0c2; }
      main { padding:16px 24px; display:grid; gap:16px; }
      section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 16px; }
      h2 { font-size:13px; text-transform:uppercase; letter-spacing:.8px; color:var(--muted); margin:0 0 10px; }
      .stats { display:flex; flex-wrap:wrap; gap:24px; }
      .stat b { display:block; font-size:22px; font-variant-numeric:tabular-nums; }
      .stat span { color:var(--muted); font-size:12px; }
      table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; }
      th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:middle; white-space:nowrap; }
      th { font-size:12px; color:var(--muted); font-weight:600; }
      td.num { text-align:right; }
      .kpi { display:flex; align-items:center; gap:8px; justify-content:flex-end; }
      svg.spark { width:90px; height:24px; }
      svg.spark polyline { fill:none; stroke:var(--blue); stroke-width:1.5; }
      .rule { color:var(--muted); font-family:ui-monospace, monospace; font-size:12px; }
      .alert { border-left:4px solid var(--red); padding:8px 12px; margin-bottom:8px; background:#fff5f5; }
      .alert.resolved { border-color:var(--green); background:#f4fbf4; }
      .alert h3 { margin:0 0 4px; font-size:15px; }
      .badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; color:#fff; background:var(--red); }
      .resolved .badge { background:var(--green); }
      .muted { color:var(--muted); }
      .error { color:var(--red); }
    </style>
    </head>
    <body>
    <header><h1>segmenter</h1><span class="clock" id="clock">connecting…</span></header>
    <main>
      <section><h2>Ingest health</h2><div class="stats" id="ingest"></div></section>
      <section><h2>Alerts</h2><div id="alerts" class="muted">no alerts configured</div></section>
      <section><h2>Segments and KPIs</h2><table id="segments"></table></section>
      <section><h2>Last reconciliation</h2><div id="reconciliation" class="muted">no reconciliation run yet</div></section>
      <section id="explain-section"><h2>Explain a user</h2>
        <form id="explain-form"><input id="explain-user" placeholder="user id" autocomplete="off"> <button>Explain</button>
        <span class="muted">why they are in each segment, and what time changes next (link: <code>#explain=USER</code>)</span></form>
        <div id="explain"></div></section>
    </main>
    <script>
    "use strict";
    const $ = (id) => document.getElementById(id);
    const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;"}[c]));
    const fmt = (v) => v === null || v === undefined ? "–" : (Number.isInteger(v) ? v.toLocaleString("en-US") : Number(v).toLocaleString("en-US", {maximumFractionDigits: 3}));
    // With http.auth_token set, the API answers 401: ask for the token once, keep it for this tab.
    async function get(path, retried) {
      const key = "segmenter-token";
      const token = sessionStorage.getItem(key);
      const r = await fetch(path, {cache: "no-store", headers: token ? {"Authorization": "Bearer " + token} : {}});
      if (r.status === 401 && !retried) {
        const now = sessionStorage.getItem(key);
        if (now && now !== token) return get(path, true);  // another request asked meanwhile
        if (sessionStorage.getItem(key + "-declined")) return null;
        const entered = window.prompt("This segmenter API needs its token (http.auth_token):");
        if (entered) { sessionStorage.setItem(key, entered); return get(path, true); }
        sessionStorage.setItem(key + "-declined", "1");
        return null;
      }
      return r.ok ? r.json() : null;
    }

    function sparkline(points) {
      const values = (points || []).map((p) => p[1]).filter((v) => v !== null);
      if (values.length < 2) return "";
      const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
      const step = 88 / (values.length - 1);
      const coords = values.map((v, i) => (1 + i * step).toFixed(1) + "," + (22 - (v - lo) / span * 20).toFixed(1)).join(" ");
      return '<svg class="spark" viewBox="0 0 90 24"><polyline points="' + coords + '"/></svg>';
    }

    function stat(label, value) { return '<div class="stat"><b>' + esc(value) + '</b><span>' + esc(label) + '</span></div>'; }

    function renderIngest(i) {
      if (!i) return;
      const lag = Object.values(i.lag || {}).reduce((a, b) => a + b, 0);
      $("clock").textContent = "event time " + (i.now || "–");
      $("ingest").innerHTML = stat("events/s", fmt(Math.round(i.rate))) + stat("consumed", fmt(i.consumed)) + stat("applied", fmt(i.applied))
        + stat("duplicates", fmt(i.duplicates)) + stat("dead-lettered (DLQ)", fmt(i.dead_lettered)) + stat("consumer lag", fmt(lag))
        + stat("outbox depth", fmt(i.outbox_depth)) + stat("timers", fmt(i.timers)) + stat("state MiB", fmt(Math.round(i.state_bytes / 1048576 * 10) / 10))
        + stat("KPI leader", i.kpi_leader ? "this instance" : "another instance");
    }

    function renderSegments(segments, history) {
      if (!segments) return;
      const kpis = [];
      for (const s of segments) for (const k of Object.keys(s.kpis)) if (!kpis.includes(k)) kpis.push(k);
      let html = "<tr><th>segment</th>" + kpis.map((k) => '<th class="num">' + esc(k) + "</th>").join("") + "</tr>";
      for (const s of segments) {
        html += '<tr><td><b>' + esc(s.segment) + '</b><br><span class="rule">' + esc(s.rule || "every user") + "</span></td>";
        for (const k of kpis) {
          const has = k in s.kpis;
          const points = history && history[s.segment] ? history[s.segment][k] : [];
          html += '<td class="num">' + (has ? '<div class="kpi">' + sparkline(points) + "<span>" + fmt(s.kpis[k]) + "</span></div>" : "") + "</td>";
        }
        html += "</tr>";
      }
      $("segments").innerHTML = html;
    }

    function renderAlerts(alerts) {
      if (!alerts || alerts.length === 0) return;
      const order = alerts.slice().sort((a, b) => (a.state === "firing" ? 0 : 1) - (b.state === "firing" ? 0 : 1));
      $("alerts").classList.remove("muted");
      $("alerts").innerHTML = order.map((a) => {
        let drill = "";
        if (a.state === "firing" && Array.isArray(a.drill_down) && a.drill_down.length > 0) {
          drill = "<table><tr><th>sub-group</th><th class=num>value</th><th class=num>members</th><th class=num>contribution</th></tr>"
            + a.drill_down.slice(0, 5).map((d) => "<tr><td>" + esc(d.dimension + " = " + d.group) + '</td><td class="num">' + fmt(d.value)
              + '</td><td class="num">' + fmt(d.members) + '</td><td class="num">' + fmt(d.contribution) + "</td></tr>").join("") + "</table>";
        }
        return '<div class="alert ' + esc(a.state) + '"><h3><span class="badge">' + esc(a.state) + "</span> " + esc(a.alert) + "</h3>"
          + '<div class="muted">' + esc(a.segment) + " / " + esc(a.kpi) + ": value " + fmt(a.value) + ", baseline " + fmt(a.baseline) + "</div>" + drill + "</div>";
      }).join("");
    }

    function renderReconciliation(runs) {
      if (!runs || runs.length === 0) return;
      const r = runs[0];
      const pct = (d) => d.warehouseTotal ? " (" + (100 * d.absolute / Math.abs(d.warehouseTotal)).toFixed(3) + "%)" : "";
      const seconds = r.finishedAt ? ((new Date(r.finishedAt) - new Date(r.startedAt)) / 1000).toFixed(2) + " s" : "running";
      $("reconciliation").classList.remove("muted");
      $("reconciliation").innerHTML = '<div class="stats">' + stat("status", r.status) + stat("days compared", fmt(r.daysCompared))
        + stat("days differing", fmt(r.daysDiffering.length)) + stat("user-days corrected", fmt(r.userDaysCorrected))
        + stat("sign-ups corrected", fmt(r.signupsCorrected)) + stat("rows fetched", fmt(r.rowsFetched)) + stat("duration", seconds) + "</div>"
        + '<p>' + esc(r.fromDay + " … " + r.throughDay) + " · spend drift $" + fmt(r.spendCents.absolute / 100) + pct(r.spendCents)
        + " · activities drift " + fmt(r.activities.absolute) + pct(r.activities) + " · membership changes " + fmt(r.membershipChanges)
        + (r.error ? ' · <span class="error">' + esc(r.error) + "</span>" : "") + "</p>";
    }

    async function refresh() {
      try {
        const [ingest, segments, history, alerts, runs] = await Promise.all([
          get("api/ingest"), get("api/segments"), get("api/history"), get("api/alerts"), get("api/reconciliation")]);
        renderIngest(ingest); renderSegments(segments, history); renderAlerts(alerts); renderReconciliation(runs);
      } catch (e) { $("clock").textContent = "disconnected: " + e; }
    }
    refresh();
    setInterval(refresh, 2000);

    // A user id links here as #explain=ID: the rule of every segment with each sub-expression's value.
    function tree(e, depth) {
      const why = e.why_null ? ' <span class="muted">(' + esc(e.why_null) + ")</span>" : "";
      return '<div class="rule" style="padding-left:' + (depth * 16) + 'px">' + esc(e.text) + " → <b>" + esc(e.value) + "</b>" + why + "</div>"
        + e.parts.map((p) => tree(p, depth + 1)).join("");
    }
    async function explain(id) {
      const x = await get("api/users/" + encodeURIComponent(id) + "/explain");
      if (!x) { $("explain").innerHTML = '<span class="error">unknown user ' + esc(id) + "</span>"; return; }
      let html = '<p class="muted">as of ' + esc(x.as_of) + " (their partition pair's watermark)</p>";
      for (const s of x.segments) {
        html += "<h3>" + (s.member ? "in " : "not in ") + esc(s.segment) + "</h3>" + (s.explanation ? tree(s.explanation, 0) : '<span class="muted">every user seen</span>');
      }
      const n = x.next_change;
      html += "<p>next change by time: " + (n ? esc((n.changes.length ? n.changes.join(", ") : "no membership change") + " at " + n.at + ", when " + n.reason) : "none") + "</p>";
      $("explain").innerHTML = html;
    }
    $("explain-form").addEventListener("submit", (event) => { event.preventDefault(); location.hash = "explain=" + encodeURIComponent($("explain-user").value); });
    function fromHash() { const m = location.hash.match(/^#explain=(.+)$/); if (m) { const id = decodeURIComponent(m[1]); $("explain-user").value = id; explain(id); } }
    window.addEventListener("hashchange", fromHash);
    fromHash();
    </script>
    </body>
    </html>
    """#
}
