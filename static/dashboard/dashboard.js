/* AutoTrader live dashboard: renders the first snapshot, then lives on /ws/live/.
 * The socket pushes `chart` (a symbol's series), `bar` (one closed bar + indicators) and `panel`
 * (account, state, trades, orders, fills, signals, markers). It reconnects by itself.
 * A setup's preview (where it would have fired on the chart's stored bars) adds its markers. */
(function () {
  "use strict";
  const LWC = window.LightweightCharts;
  const $ = (id) => document.getElementById(id);
  const ET = "America/New_York";
  const timeFmt = new Intl.DateTimeFormat("en-US", { timeZone: ET, hour: "2-digit", minute: "2-digit", hour12: false });
  const dateTimeFmt = new Intl.DateTimeFormat("en-US", { timeZone: ET, month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  // Chart times are New York wall time encoded as UTC seconds: format them in UTC.
  const chartClockFmt = new Intl.DateTimeFormat("en-US", { timeZone: "UTC", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });

  const LINE_STYLE = {
    vwap: { color: "#e3b341", lineWidth: 2 },
    vwap_upper_1: { color: "#8b949e", lineWidth: 1, lineStyle: 2 },
    vwap_lower_1: { color: "#8b949e", lineWidth: 1, lineStyle: 2 },
    vwap_upper_2: { color: "#6e7681", lineWidth: 1, lineStyle: 1 },
    vwap_lower_2: { color: "#6e7681", lineWidth: 1, lineStyle: 1 },
    ema_20: { color: "#58a6ff", lineWidth: 1 },
    ema_50: { color: "#d2a8ff", lineWidth: 1 },
  };

  const charts = {};          // symbol -> {chart, candles, volume, lines, markers, lastTime, count, el, tab}
  let symbols = JSON.parse($("initial-symbols").textContent);
  let active = null;
  let seenSignals = null;     // ids already shown; null until the first render
  let socket = null;
  let retry = 0;

  // --- formatting helpers ---------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const fmtMoney = (v) => (v === null || v === undefined ? "–" : money.format(Number(v)));
  const fmtPx = (v) => (v === null || v === undefined || v === "" ? "–" : Number(v).toFixed(2));
  const fmtTime = (iso) => (iso ? timeFmt.format(new Date(iso)) : "–");
  const signClass = (v) => (Number(v) > 0 ? "pos" : Number(v) < 0 ? "neg" : "");
  function td(value, cls) { return el("td", { class: cls || null }, value); }
  function fill(tbody, rows) { tbody.replaceChildren(...rows); }

  // --- panels -------------------------------------------------------------------------------
  function renderAccount(a) {
    if (!a) return;
    $("acct-equity").textContent = fmtMoney(a.equity);
    $("acct-cash").textContent = fmtMoney(a.cash);
    const pnl = $("acct-daypnl");
    pnl.textContent = fmtMoney(a.day_pnl);
    pnl.className = "value " + signClass(a.day_pnl);
    $("acct-daypnl-split").textContent = `realized ${fmtMoney(a.realized_today)} · open ${fmtMoney(a.unrealized)}`;
    $("acct-positions").textContent = a.open_positions;
    $("acct-asof").textContent = a.as_of ? `as of ${dateTimeFmt.format(new Date(a.as_of))}` : "no broker snapshot yet";
    $("acct-source").textContent = a.source === "ledger" ? "from the paper ledger" : `broker: ${a.source}`;
  }

  function renderState(s) {
    if (!s) return;
    const badge = $("trading-state");
    badge.textContent = s.state;
    badge.dataset.state = s.state;
    const who = s.changed_by ? ` — ${s.changed_by}` : "";
    const when = s.changed_at ? `, ${dateTimeFmt.format(new Date(s.changed_at))}` : "";
    $("trading-state-reason").textContent = (s.reason || "") + who + when;
  }

  function renderTrades(trades) {
    $("acct-trades").textContent = `${trades.length} managed trade(s)`;
    fill($("trades-table").tBodies[0], trades.map((t) => el("tr", { dataset: { tradeId: t.id } },
      td(t.id), td(t.setup), td(t.symbol === t.execution_symbol ? t.symbol : `${t.symbol}→${t.execution_symbol}`),
      td(t.status + (t.partial_done ? " · T1 hit" : "")), td(`${t.remaining_qty}/${t.qty}`, "num"),
      td(fmtPx(t.entry_price), "num"),
      td(fmtPx(t.stop_price) + (t.stop_price !== t.initial_stop_price ? ` (was ${fmtPx(t.initial_stop_price)})` : ""), "num"),
      td(fmtPx(t.target_one), "num"), td(fmtPx(t.target_two), "num"),
      td(t.trail_pct ? `${(Number(t.trail_pct) * 100).toFixed(2)}%${t.trail_active ? " active" : ""}` : "–"),
      td(fmtTime(t.deadline)), td(fmtPx(t.last_price), "num"),
      td(fmtMoney(t.unrealized), "num " + signClass(t.unrealized)))));
  }

  function renderOrders(orders) {
    fill($("orders-table").tBodies[0], orders.map((o) => el("tr", { dataset: { orderId: o.id } },
      td(fmtTime(o.created_at)), td(o.symbol), td(o.side, "side-" + o.side), td(o.role), td(o.type),
      td(o.qty, "num"), td(o.type === "market" ? "mkt" : fmtPx(o.price || o.stop_price), "num"),
      el("td", { class: "status-" + o.status, title: o.reject_reason || null }, o.status),
      td(o.filled_qty ? `${o.filled_qty} @ ${fmtPx(o.avg_fill_price)}` : "–", "num"))));
  }

  function renderFills(fills) {
    fill($("fills-table").tBodies[0], fills.map((f) => el("tr", { dataset: { fillId: f.id } },
      td(fmtTime(f.ts)), td(f.symbol), td(f.side, "side-" + f.side), td(f.qty, "num"),
      td(fmtPx(f.price), "num"), td("#" + f.order_id))));
  }

  function renderSignals(signals) {
    const list = $("signal-feed");
    const first = seenSignals === null;
    seenSignals = seenSignals || new Set();
    const items = signals.map((s) => {
      const fresh = !first && !seenSignals.has(s.id);
      seenSignals.add(s.id);
      const plan = [["entry", s.entry_price], ["stop", s.stop_price], ["T1", s.target_one], ["T2", s.target_two]]
        .filter(([, v]) => v !== null && v !== undefined)
        .map(([k, v]) => `${k} ${fmtPx(v)}`)
        .concat(s.qty ? [`qty ${s.qty}`] : [])
        .join(" · ");
      const reasons = s.blocked.length
        ? el("ul", { class: "reasons" }, ...s.blocked.map((b) => el("li", { dataset: { code: b.code } }, b.message ? `${b.code}: ${b.message}` : b.code)))
        : null;
      return el("li", { class: fresh ? "fresh" : null, dataset: { signalId: s.id, outcome: s.outcome } },
        el("div", { class: "row1" },
          el("span", { class: "setup" }, s.setup),
          el("span", {}, s.symbol === s.execution_symbol ? s.symbol : `${s.symbol}→${s.execution_symbol}`),
          el("span", { class: "outcome", dataset: { outcome: s.outcome } }, s.outcome.replace("_", " ")),
          el("span", { class: "time" }, fmtTime(s.bar_ts))),
        plan ? el("div", { class: "plan" }, plan) : null,
        reasons);
    });
    list.replaceChildren(...items);
    $("signal-count").textContent = signals.length ? `newest ${signals.length}` : "none yet";
  }

  function renderPanel(p) {
    if (p.now) $("market-clock").textContent = dateTimeFmt.format(new Date(p.now));
    renderAccount(p.account);
    renderState(p.trading_state);
    renderTrades(p.trades || []);
    renderOrders(p.orders || []);
    renderFills(p.fills || []);
    renderSignals(p.signals || []);
    for (const [symbol, markers] of Object.entries(p.markers || {})) {
      if (charts[symbol]) { charts[symbol].liveMarkers = markers; applyMarkers(charts[symbol]); }
    }
  }

  // --- charts -------------------------------------------------------------------------------
  function selectSymbol(symbol) {
    active = symbol;
    for (const [s, c] of Object.entries(charts)) {
      c.el.hidden = s !== symbol;
      c.tab.setAttribute("aria-selected", String(s === symbol));
    }
    updateFoot();
  }

  function ensureChart(symbol) {
    if (charts[symbol]) return charts[symbol];
    const box = el("div", { class: "chart", id: "chart-" + symbol, dataset: { symbol, bars: "0" } });
    $("charts").append(box);
    const tab = el("button", { class: "tab", role: "tab", type: "button", dataset: { symbol } }, symbol, el("span", { class: "last" }, ""));
    tab.addEventListener("click", () => selectSymbol(symbol));
    $("symbol-tabs").append(tab);
    const chart = LWC.createChart(box, {
      autoSize: true,
      layout: { background: { color: "#161b22" }, textColor: "#c9d1d9", attributionLogo: false },
      grid: { vertLines: { color: "#21262d" }, horzLines: { color: "#21262d" } },
      timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#30363d", rightOffset: 5 },
      rightPriceScale: { borderColor: "#30363d" },
      crosshair: { mode: 0 },
    });
    const candles = chart.addSeries(LWC.CandlestickSeries, {
      upColor: "#26a69a", downColor: "#ef5350", borderVisible: false,
      wickUpColor: "#26a69a", wickDownColor: "#ef5350",
    });
    const volume = chart.addSeries(LWC.HistogramSeries, { priceScaleId: "vol", priceFormat: { type: "volume" }, lastValueVisible: false, priceLineVisible: false });
    chart.priceScale("vol").applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
    const lines = {};
    for (const [name, style] of Object.entries(LINE_STYLE)) {
      lines[name] = chart.addSeries(LWC.LineSeries, { ...style, priceLineVisible: false, lastValueVisible: name === "vwap", crosshairMarkerVisible: false });
    }
    const markers = LWC.createSeriesMarkers(candles, []);
    charts[symbol] = { chart, candles, volume, lines, markers, lastTime: 0, firstTime: 0, count: 0, el: box, tab, lastClose: null, lastPoints: {}, liveMarkers: [], previewMarkers: [] };
    if (!active) selectSymbol(symbol);
    else box.hidden = true;
    return charts[symbol];
  }

  const volBar = (c) => ({ time: c.time, value: c.volume || 0, color: c.close >= c.open ? "#26a69a55" : "#ef535055" });

  function setChart(msg) {
    const c = ensureChart(msg.symbol);
    c.candles.setData(msg.candles);
    c.volume.setData(msg.candles.map(volBar));
    c.lastPoints = {};
    for (const [name, series] of Object.entries(c.lines)) {
      const data = msg.lines[name] || [];
      series.setData(data);
      if (data.length) c.lastPoints[name] = { time: data[data.length - 1].time, value: data[data.length - 1].value };
    }
    c.liveMarkers = msg.markers || [];
    c.count = msg.candles.length;
    c.firstTime = c.count ? msg.candles[0].time : 0;
    c.lastTime = c.count ? msg.candles[c.count - 1].time : 0;
    applyMarkers(c);
    c.lastClose = c.count ? msg.candles[c.count - 1].close : null;
    afterBar(msg.symbol, c);
    if (c.count) c.chart.timeScale().scrollToRealTime();
  }

  function addBar(msg) {
    const c = charts[msg.symbol];
    if (!c || msg.candle.time <= c.lastTime) return;  // older or duplicate bar
    c.candles.update(msg.candle);
    c.volume.update(volBar(msg.candle));
    if (msg.session_break) {
      // A point's colour paints the segment after it: hide the overnight join.
      for (const [name, last] of Object.entries(c.lastPoints)) {
        c.lines[name].update({ ...last, color: "transparent" });
      }
    }
    for (const [name, value] of Object.entries(msg.lines || {})) {
      if (!c.lines[name]) continue;
      c.lines[name].update({ time: msg.candle.time, value });
      c.lastPoints[name] = { time: msg.candle.time, value };
    }
    c.lastTime = msg.candle.time;
    c.lastClose = msg.candle.close;
    c.count += 1;
    afterBar(msg.symbol, c);
    // The market clock moves with every closed bar (its close), not only with panel changes.
    $("market-clock").textContent = chartClockFmt.format(new Date((msg.candle.time + 60) * 1000));
  }

  function afterBar(symbol, c) {
    c.el.dataset.bars = String(c.count);
    c.tab.querySelector(".last").textContent = c.lastClose === null ? "" : Number(c.lastClose).toFixed(2);
    if (symbol === active) updateFoot();
  }

  function updateFoot() {
    const c = charts[active];
    if (!c) return;
    const last = c.lastTime ? new Date(c.lastTime * 1000).toISOString().slice(0, 16).replace("T", " ") : "–";
    $("chart-foot").textContent = `${active}: ${c.count} one-minute bars · last bar ${last} ET · times in America/New_York`;
  }

  // --- setup preview -------------------------------------------------------------------------
  // Where a setup would have fired on the stored bars of the chart (GET /api/v1/setups/NAME/
  // preview): its markers are drawn next to the live fills and signals until cleared.
  function applyMarkers(c) {
    const all = c.liveMarkers.concat(c.previewMarkers);
    all.sort((a, b) => a.time - b.time);
    c.markers.setMarkers(all);
    c.el.dataset.previewMarkers = String(c.previewMarkers.length);
  }

  // The drift ledger changes once a day (analytics.drift_ledger_daily after the close): read
  // once when the page opens, not pushed.
  function fmt(v, digits) { return v === null || v === undefined ? "–" : Number(v).toFixed(digits); }

  async function loadDrift() {
    const status = $("drift-status");
    try {
      const r = await fetch("/api/v1/analytics/drift/summary", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!r.ok) { status.textContent = `unavailable (${r.status})`; return; }
      const body = await r.json();
      const tbody = $("drift-table").querySelector("tbody");
      tbody.replaceChildren();
      const rows = Object.entries(body.by_setup || {});
      if (body.all && rows.length > 1) rows.push(["all setups", body.all]);
      for (const [setup, s] of rows) {
        tbody.append(el("tr", { dataset: { setup } },
          el("td", {}, setup), el("td", { class: "num" }, s.pairs), el("td", { class: "num" }, s.missed),
          el("td", { class: "num" }, s.live_only), el("td", { class: "num" }, fmt(s.entry_slippage_bps, 1)),
          el("td", { class: "num" }, fmt(s.exit_slippage_bps, 1)), el("td", { class: "num" }, fmt(s.entry_delay_sec, 1)),
          el("td", { class: "num" }, fmt(s.live_pnl, 2)), el("td", { class: "num" }, fmt(s.sim_pnl, 2))));
      }
      status.textContent = rows.length ? "" : "no paired trades yet";
    } catch (e) {
      status.textContent = "unavailable";
    }
  }

  async function loadSetups() {
    try {
      const r = await fetch("/api/v1/setups", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!r.ok) return;
      const body = await r.json();
      const select = $("preview-setup");
      for (const s of body.results || []) {
        if (s.error) continue;  // a definition that does not load cannot be previewed
        select.append(el("option", { value: s.name }, `${s.name} (${s.mode})`));
      }
    } catch (e) { /* the chart works without the preview */ }
  }

  async function showPreview(event) {
    event.preventDefault();
    const name = $("preview-setup").value;
    const c = charts[active];
    if (!name || !c || !c.count) return;
    const status = $("preview-status");
    status.textContent = "scanning…";
    // chart times are New York wall time as UTC seconds: a day earlier covers the offset
    const start = new Date((c.firstTime - 86400) * 1000).toISOString();
    const url = `/api/v1/setups/${encodeURIComponent(name)}/preview?symbol=${encodeURIComponent(active)}&start=${encodeURIComponent(start)}`;
    try {
      const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      const body = await r.json();
      if (!r.ok) { status.textContent = body.error || body.detail || `error ${r.status}`; return; }
      c.previewMarkers = (body.markers || []).filter((m) => m.time >= c.firstTime && m.time <= c.lastTime);
      applyMarkers(c);
      if (c.previewMarkers.length) c.chart.timeScale().fitContent();  // every fire in view
      status.textContent = `${name}: ${c.previewMarkers.length} fires on these bars`;
      $("preview-clear").hidden = false;
    } catch (e) {
      status.textContent = "preview failed";
    }
  }

  function clearPreview() {
    for (const c of Object.values(charts)) { c.previewMarkers = []; applyMarkers(c); }
    $("preview-status").textContent = "";
    $("preview-clear").hidden = true;
  }

  // --- websocket ----------------------------------------------------------------------------
  function setConn(state, text) {
    const badge = $("conn-status");
    badge.dataset.state = state;
    badge.textContent = text;
  }

  // Stale: the panels show what was true when live updates stopped (socket closed, or the
  // server lost its channel layer); they are dimmed and say since when, until fresh data arrives.
  let staleSince = null;
  // The server said its channel layer is gone (status live=false): only its live=true ends
  // that. A panel snapshot it sent just before (already in flight) is not news of recovery.
  let serverStale = false;
  function markStale(reason, sinceSeconds) {
    if (staleSince === null) staleSince = sinceSeconds ? new Date(sinceSeconds * 1000) : new Date();
    document.body.dataset.stale = "1";
    $("stale-banner").hidden = false;
    $("stale-banner").textContent = `Stale since ${dateTimeFmt.format(staleSince)} ET: ${reason}. Retrying…`;
  }

  function clearStale() {
    staleSince = null;
    delete document.body.dataset.stale;
    $("stale-banner").hidden = true;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/live/`);
    socket.onopen = () => { retry = 0; serverStale = false; setConn("live", "live"); };
    socket.onmessage = (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      if (msg.type === "hello") {
        document.body.dataset.mode = msg.mode || "poll";
        symbols = msg.symbols.length ? msg.symbols : symbols;
        socket.send(JSON.stringify({ action: "subscribe", symbols }));
      } else if (msg.type === "chart") setChart(msg);
      else if (msg.type === "bar") addBar(msg);
      else if (msg.type === "panel") { renderPanel(msg); if (!serverStale) clearStale(); }
      else if (msg.type === "status") {
        serverStale = !msg.live;
        if (msg.live) { clearStale(); setConn("live", "live"); }
        else { markStale(msg.reason || "live updates lost", msg.since); setConn("reconnecting", "stale"); }
      }
    };
    socket.onclose = (event) => {
      markStale("connection to the server lost");
      if (event.code === 4401) { setConn("closed", "logged out — reload to log in"); return; }
      retry = Math.min(retry + 1, 6);
      const delay = Math.min(1000 * 2 ** (retry - 1), 15000);
      setConn("reconnecting", `reconnecting in ${Math.round(delay / 1000)}s…`);
      setTimeout(connect, delay);
    };
  }

  // --- trading state form -------------------------------------------------------------------
  function wireStateForm() {
    const form = $("state-form");
    if (!form) return;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = event.submitter;
      const state = button ? button.value : "HALTED";
      if (state === "ACTIVE" && !window.confirm("Resume trading: new entries will be allowed. Continue?")) return;
      const data = new FormData(form);
      data.set("state", state);
      $("state-error").textContent = "";
      for (const b of form.querySelectorAll("button")) b.disabled = true;
      try {
        const response = await fetch(form.action, { method: "POST", body: data, credentials: "same-origin", headers: { "X-Requested-With": "fetch" } });
        const body = await response.json().catch(() => ({}));
        if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
        renderState(body.trading_state);
        $("state-reason").value = "";
        if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ action: "refresh" }));
      } catch (err) {
        $("state-error").textContent = `could not change the state: ${err.message}`;
      } finally {
        for (const b of form.querySelectorAll("button")) b.disabled = false;
      }
    });
  }

  renderPanel(JSON.parse($("initial-snapshot").textContent));
  for (const s of symbols) ensureChart(s);
  wireStateForm();
  $("preview-form").addEventListener("submit", showPreview);
  $("preview-clear").addEventListener("click", clearPreview);
  loadSetups();
  loadDrift();
  connect();
})();
