/// The dashboard at `/`: one self-contained page (no build step, no CDN, works offline) that
/// polls the JSON API every 2 s and draws segments × KPIs with sparklines, each KPI of a chosen
/// segment over time with its alerts' firing periods shaded, firing alerts with their
/// drill-down, ingest health and the last reconciliation report.
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
      .charts { display:grid; grid-template-columns:repeat(auto-fill, minmax(560px, 1fr)); gap:12px; }
      .chart h3 { margin:4px 0; font-size:14px; }
      svg.chart-svg { width:100%; height:190px; }
      svg.chart-svg .axis { stroke:#9aa4ae; stroke-width:1; }
      svg.chart-svg .grid { stroke:var(--line); stroke-width:1; }
      svg.chart-svg .series { fill:none; stroke:var(--blue); stroke-width:1.8; }
      svg.chart-svg rect.firing { fill:var(--red); fill-opacity:.16; }
      svg.chart-svg text { font-size:11px; fill:var(--muted); }
      .legend-firing { display:inline-block; width:12px; height:10px; background:rgba(198,40,40,.16); border:1px solid var(--red); vertical-align:middle; }
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
      <section><h2>KPIs over time</h2>
        <label>segment <select id="chart-segment"></select></label>
        <span class="muted">event time; <span class="legend-firing"></span> an alert on the KPI firing</span>
        <div class="charts" id="charts"></div></section>
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

    // One KPI as a step line over event time, with axes, and its alerts' firing periods shaded.
    function chart(name, points, firing) {
      const W = 560, H = 190, L = 64, R = 12, T = 10, B = 28;
      const pts = (points || []).map((p) => [Date.parse(p.at), p.value]);
      const spans = (firing || []).map((f) => [Date.parse(f.from), f.until ? Date.parse(f.until) : null, f.alert]);
      if (pts.length === 0) return '<div class="chart"><h3>' + esc(name) + '</h3><p class="muted">no values yet</p></div>';
      const t0 = Math.min(pts[0][0], ...spans.map((s) => s[0])), t1 = Math.max(pts[pts.length - 1][0], ...spans.map((s) => s[1] || 0), t0 + 1);
      const values = pts.map((p) => p[1]).filter((v) => v !== null);
      let lo = Math.min(0, ...values), hi = Math.max(...values, lo + 1);
      const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R), y = (v) => T + (hi - v) / (hi - lo) * (H - T - B);
      let svg = '<svg class="chart-svg" viewBox="0 0 ' + W + " " + H + '" preserveAspectRatio="none" data-kpi="' + esc(name) + '">';
      for (const [from, until, alert] of spans) {
        const x0 = x(from), x1 = x(until === null ? t1 : until);
        svg += '<rect class="firing" x="' + x0.toFixed(1) + '" y="' + T + '" width="' + Math.max(1, x1 - x0).toFixed(1) + '" height="' + (H - T - B)
          + '"><title>' + esc(alert) + " firing " + new Date(from).toISOString() + " – " + (until === null ? "now" : new Date(until).toISOString()) + "</title></rect>";
      }
      for (let i = 0; i <= 4; i++) {
        const v = lo + (hi - lo) * i / 4, yy = y(v).toFixed(1);
        svg += '<line class="grid" x1="' + L + '" x2="' + (W - R) + '" y1="' + yy + '" y2="' + yy + '"/>'
          + '<text x="' + (L - 6) + '" y="' + (Number(yy) + 4) + '" text-anchor="end">' + esc(fmt(Math.round(v * 100) / 100)) + "</text>";
      }
      for (let i = 0; i <= 3; i++) {
        const t = t0 + (t1 - t0) * i / 3, iso = new Date(t).toISOString();
        svg += '<text x="' + x(t).toFixed(1) + '" y="' + (H - 8) + '" text-anchor="' + (i === 0 ? "start" : i === 3 ? "end" : "middle") + '">'
          + esc(iso.slice(5, 10) + " " + iso.slice(11, 16)) + "</text>";
      }
      svg += '<line class="axis" x1="' + L + '" x2="' + L + '" y1="' + T + '" y2="' + (H - B) + '"/><line class="axis" x1="' + L + '" x2="' + (W - R) + '" y1="' + (H - B) + '" y2="' + (H - B) + '"/>';
      let path = "", last = null;
      for (const [t, v] of pts.concat([[t1, pts[pts.length - 1][1]]])) {
        if (v === null) { last = null; continue; }
        path += (last === null ? " M" : " H" + x(t).toFixed(1) + " V") + (last === null ? x(t).toFixed(1) + " " : "") + y(v).toFixed(1);
        last = v;
      }
      svg += '<path class="series" d="' + path.trim() + '"/></svg>';
      const fired = spans.length ? ' <span class="muted">· ' + spans.length + " firing period" + (spans.length > 1 ? "s" : "") + "</span>" : "";
      return '<div class="chart"><h3>' + esc(name) + fired + "</h3>" + svg + "</div>";
    }

    async function renderCharts(segments) {
      const select = $("chart-segment");
      if (segments && select.options.length === 0) {
        for (const s of segments) select.add(new Option(s.segment, s.segment));
        const wanted = new URLSearchParams(location.hash.slice(1)).get("chart");
        if (wanted) select.value = wanted;
      }
      if (!select.value) return;
      const h = await get("api/history?segment=" + encodeURIComponent(select.value));
      if (!h) return;
      $("charts").innerHTML = Object.keys(h.kpis).sort().map((k) => chart(k, h.kpis[k], h.firing.filter((f) => f.kpi === k))).join("");
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
        await renderCharts(segments);
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
      if (x.metrics && x.metrics.length) {
        html += "<h3>metrics</h3>" + x.metrics.map((m) => '<div class="rule"><b>' + esc(m.name) + '</b> <span class="muted">' + esc(m.definition) + "</span></div>"
          + m.values.map((v) => '<div class="rule" style="padding-left:16px">' + esc(v.feature) + " = <b>" + esc(JSON.stringify(v.value)) + "</b></div>").join("")
          + m.instances.map((i) => '<div class="rule" style="padding-left:16px">open instance at ' + esc(i.first) + ": " + esc(i.status) + "</div>").join("")).join("");
      }
      const n = x.next_change;
      html += "<p>next change by time: " + (n ? esc((n.changes.length ? n.changes.join(", ") : "no membership change") + " at " + n.at + ", when " + n.reason) : "none") + "</p>";
      if (x.waiting && x.waiting.length) html += '<p class="muted">' + x.waiting.length + " event(s) wait for the watermark, the first at " + esc(x.waiting[0]) + "</p>";
      if (x.history && x.history.length) {
        html += "<h3>recent membership changes</h3>" + x.history.map((c) => '<div class="rule">' + esc(c.as_of) + " " + (c.change === "enter" ? "entered " : "left ")
          + esc(c.segment) + ' <span class="muted">(cause ' + esc(c.cause) + ")</span></div>").join("");
      }
      $("explain").innerHTML = html;
    }
    $("explain-form").addEventListener("submit", (event) => { event.preventDefault(); location.hash = "explain=" + encodeURIComponent($("explain-user").value); });
    $("chart-segment").addEventListener("change", () => renderCharts(null));
    function fromHash() { const m = location.hash.match(/^#explain=(.+)$/); if (m) { const id = decodeURIComponent(m[1]); $("explain-user").value = id; explain(id); } }
    window.addEventListener("hashchange", fromHash);
    fromHash();
    </script>
    </body>
    </html>
    """#
}
