/*
 * riskd's console, the overview (index.html): the enterprises by grade and
 * the grade distribution by region and by food category (GET /v1/summary),
 * the live feed of alerts and their state transitions (GET /v1/events),
 * (which starts with the alerts open when the page is opened, GET
 * /v1/alerts?state=open), the overdue rectifications (GET
 * /v1/alerts?state=escalated) and the
 * highest-risk enterprises (GET /v1/enterprises?sort=-score).  The counts
 * and tables are read again a second after the stream shows the state
 * moved, and every 30 s.  Uses console.js's helpers (text, time, row,
 * MODES).  Read-only.
 */
"use strict";

const OV_GRADE_COLOURS = { A: "#2e8b57", B: "#4f8fc0", C: "#e0a020", D: "#c0392b" };
const OV_OTHER_COLOURS = ["#7d5ba6", "#3b8686", "#a0522d", "#5d6d7e"];
const OV_UNGRADED = "#b8c2cc";
const OV_STATES = { open: "未关闭", escalated: "逾期未整改", closed: "已关闭", none: "即时预警" };
const OV_CAUSES = { deadline: "整改期限已过", expired: "风险分值到期", resolved: "已整改或已处理", superseded: "被新预警取代" };
const OV_SEVERITY = { info: "提示", low: "低", medium: "中", high: "高", critical: "严重" };
/* GB/T 2260: the province of an administrative division code's first two digits */
const OV_PROVINCES = {
  11: "北京", 12: "天津", 13: "河北", 14: "山西", 15: "内蒙古", 21: "辽宁", 22: "吉林", 23: "黑龙江",
  31: "上海", 32: "江苏", 33: "浙江", 34: "安徽", 35: "福建", 36: "江西", 37: "山东", 41: "河南",
  42: "湖北", 43: "湖南", 44: "广东", 45: "广西", 46: "海南", 50: "重庆", 51: "四川", 52: "贵州",
  53: "云南", 54: "西藏", 61: "陕西", 62: "甘肃", 63: "青海", 64: "宁夏", 65: "新疆", 71: "台湾",
  81: "香港", 82: "澳门",
};
const OV_FEED_MAX = 200;    /* feed items kept, the oldest dropped */
const OV_OVERDUE_MAX = 1000; /* overdue rectifications listed */

const ov = {
  rules: new Map(),         /* rule id -> its alerts have a lifecycle (GET /v1/rules) */
  rulesVersion: null,
  labels: new Map(),        /* category -> its label (the summary's by_category) */
  charts: {},
  refreshing: null,
  again: false,
  timer: null,
  events: Promise.resolve(), /* the stream's events, handled one after another */
};

function ovRegion(key) {
  if (key === null) return "未填报";
  const p = OV_PROVINCES[key.slice(0, 2)];
  return p ? (key.length > 2 ? key + "（" + p + "）" : p + "（" + key + "）") : key;
}

function ovCategory(key) {
  if (key === null) return "未填报";
  return ov.labels.get(key) || key;
}

function ovColour(grade, i) {
  return OV_GRADE_COLOURS[grade] || OV_OTHER_COLOURS[i % OV_OTHER_COLOURS.length];
}

function ovLink(id) {
  const a = document.createElement("a");
  a.href = "enterprise.html?id=" + encodeURIComponent(id);
  a.textContent = id;
  return a;
}

async function ovJson(path) {
  const r = await fetch(path);
  const doc = await r.json();
  if (!r.ok) throw new Error(path + "：" + r.status + " " + (doc.error || ""));
  return doc;
}

/* the grades in the summary's order (byte order), without null */
function ovGrades(summary) {
  return summary.by_grade.map((g) => g.key).filter((k) => k !== null);
}

function ovCards(summary) {
  const box = document.getElementById("grade-cards");
  box.replaceChildren();
  const tile = (cls, label, count, attrs) => {
    const d = document.createElement("div");
    d.className = "tile " + cls;
    for (const [k, v] of Object.entries(attrs || {})) d.dataset[k] = v;
    const n = document.createElement("span");
    n.className = "count";
    n.textContent = count;
    const l = document.createElement("span");
    l.className = "label";
    l.textContent = label;
    d.append(n, l);
    box.appendChild(d);
  };
  for (const g of summary.by_grade) {
    const pct = summary.enterprises ? " · " + Math.round((100 * g.count) / summary.enterprises) + "%" : "";
    tile(g.key === null ? "grade-none" : "grade-" + g.key, (g.key === null ? "未评级" : g.key + " 级") + pct,
         g.count, { grade: g.key === null ? "none" : g.key });
  }
  tile("total", "企业总数", summary.enterprises, { total: "enterprises" });
  tile("alerts", "未关闭预警（" + summary.enterprises_with_open_alerts + " 家企业）", summary.open_alerts,
       { total: "open_alerts" });
  tile("overdue", "逾期未整改（" + summary.enterprises_with_escalated_alerts + " 家企业）",
       summary.escalated_alerts, { total: "escalated_alerts" });
  text("summary-note", "共 " + summary.enterprises + " 家企业（本实例所持分区）。");
}

/* One distribution (by_region or by_category): its table, its chart. */
function ovDistribution(list, grades, name, labelOf, heading) {
  const table = document.getElementById(name + "-table");
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  for (const h of [heading, ...grades.map((g) => g + " 级"), "未评级", "合计"]) {
    const th = document.createElement("th");
    th.textContent = h;
    head.appendChild(th);
  }
  const body = table.createTBody();
  const ungraded = (x) => x.count - Object.values(x.by_grade).reduce((s, n) => s + n, 0);
  for (const x of list) {
    const tr = body.insertRow();
    tr.dataset.key = x.key === null ? "" : x.key;
    tr.insertCell().textContent = labelOf(x.key);
    for (const g of grades) {
      const td = tr.insertCell();
      td.className = "num";
      td.dataset.grade = g;
      td.textContent = x.by_grade[g] || 0;
    }
    const u = tr.insertCell();
    u.className = "num";
    u.dataset.grade = "none";
    u.textContent = ungraded(x);
    const t = tr.insertCell();
    t.className = "num";
    t.dataset.total = "";
    t.textContent = x.count;
  }
  if (typeof Chart === "undefined") {
    document.getElementById("charts-missing").hidden = false;
    return;
  }
  const datasets = grades.map((g, i) => ({
    label: g + " 级", data: list.map((x) => x.by_grade[g] || 0), backgroundColor: ovColour(g, i),
  }));
  if (list.some((x) => ungraded(x) > 0))
    datasets.push({ label: "未评级", data: list.map(ungraded), backgroundColor: OV_UNGRADED });
  const data = { labels: list.map((x) => labelOf(x.key)), datasets };
  const canvas = document.getElementById(name + "-chart");
  if (ov.charts[name]) {
    ov.charts[name].data = data;
    ov.charts[name].update("none");
  } else {
    ov.charts[name] = new Chart(canvas, {
      type: "bar",
      data,
      options: {
        animation: false, maintainAspectRatio: false,
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 },
                                              title: { display: true, text: "企业数" } } },
        plugins: { legend: { position: "bottom" } },
      },
    });
  }
  canvas.dataset.drawn = "1";
}

async function ovOverdue() {
  const alerts = [];
  let cursor = null, more = false;
  do {
    const doc = await ovJson("/v1/alerts?state=escalated&limit=200" + (cursor ? "&cursor=" + cursor : ""));
    alerts.push(...doc.alerts);
    cursor = doc.next_cursor;
    more = cursor && alerts.length >= OV_OVERDUE_MAX;
  } while (cursor && !more);
  const tbody = document.getElementById("overdue-rows");
  tbody.replaceChildren();
  for (const a of alerts.slice(0, OV_OVERDUE_MAX)) {
    const tr = row(tbody, [[null], [a.rule_id], [a.key], [time(a.opened_at), "nowrap"], [time(a.deadline), "nowrap"]]);
    tr.firstChild.replaceChildren(ovLink(a.enterprise_id));
    tr.dataset.alert = a.alert_id;
  }
  text("overdue-count", more ? "前 " + OV_OVERDUE_MAX + " 条" : alerts.length + " 条");
  document.getElementById("overdue-empty").hidden = alerts.length > 0;
}

async function ovTop() {
  const doc = await ovJson("/v1/enterprises?sort=-score&limit=20");
  const tbody = document.getElementById("top-rows");
  tbody.replaceChildren();
  doc.enterprises.forEach((x, i) => {
    const tr = row(tbody, [[i + 1, "num"], [null], [null], [x.score, "num"], [MODES[x.mode] || x.mode],
                           [x.region === null ? null : ovRegion(x.region)],
                           [x.category === null ? null : ovCategory(x.category)], [x.open_alerts, "num"],
                           [x.flags.length ? x.flags.join("、") : "—"]]);
    tr.children[1].replaceChildren(ovLink(x.enterprise_id));
    const g = document.createElement("span");
    g.className = "grade grade-" + (x.grade || "none");
    g.textContent = x.grade || "未评级";
    tr.children[2].replaceChildren(g);
    tr.dataset.enterprise = x.enterprise_id;
  });
}

async function ovSummary() {
  const digits = document.getElementById("region-digits").value;
  const s = await ovJson("/v1/summary?region_digits=" + encodeURIComponent(digits));
  for (const c of s.by_category)
    if (c.key !== null && c.label) ov.labels.set(c.key, c.label);
  const grades = ovGrades(s);
  ovCards(s);
  ovDistribution(s.by_region, grades, "region", ovRegion, "地区");
  ovDistribution(s.by_category, grades, "category", ovCategory, "食品类别");
}

/* Everything but the feed, read again; one at a time (a refresh asked
 * for meanwhile runs after it). */
async function ovRefresh() {
  if (ov.refreshing) {
    ov.again = true;
    return ov.refreshing;
  }
  const page = document.getElementById("overview");
  ov.refreshing = (async () => {
    try {
      await ovSummary();
      await ovTop();
      await ovOverdue();
      document.getElementById("overview-status").hidden = true;
      page.dataset.refreshed = String(Number(page.dataset.refreshed || 0) + 1);
      page.dataset.state = "ready";
    } catch (e) {
      const st = document.getElementById("overview-status");
      st.hidden = false;
      st.className = "status error";
      st.textContent = "无法读取：" + e.message;
      page.dataset.state = "error";
    }
  })();
  await ov.refreshing;
  ov.refreshing = null;
  if (ov.again) {
    ov.again = false;
    return ovRefresh();
  }
}

function ovSoon() {
  if (!ov.timer)
    ov.timer = setTimeout(() => { ov.timer = null; ovRefresh(); }, 1000);
}

async function ovRules() {
  const doc = await ovJson("/v1/rules");
  ov.rules = new Map(doc.rules.map((r) => [r.id, r.lifecycle === true]));
  ov.rulesVersion = doc.version;
}

/* ---- the feed ---- */

function ovBadge(state) {
  const s = document.createElement("span");
  s.className = "state state-" + state;
  s.textContent = OV_STATES[state] || state;
  return s;
}

/* A feed item: the alert (or, for one raised before the page was opened,
 * what its transition says of it), its state, its transitions. */
function ovItem(d, state, before) {
  const li = document.createElement("li");
  li.dataset.alert = d.alert_id;
  li.dataset.state = state;
  const head = document.createElement("div");
  head.className = "feed-head";
  const when = document.createElement("span");
  when.className = "when";
  when.textContent = time(d.ts || d.opened_at);
  const sev = document.createElement("span");
  sev.className = "severity severity-" + (d.severity || "none");
  sev.textContent = d.severity ? (OV_SEVERITY[d.severity] || d.severity) + "风险" : "预警";
  const rule = document.createElement("span");
  rule.className = "rule";
  rule.textContent = d.rule_id;
  head.append(when, ovBadge(state), sev, ovLink(d.enterprise_id), rule);
  const msg = document.createElement("div");
  msg.className = "message";
  msg.textContent = d.message || (before ? "打开本页之前的预警" + (d.key ? "，事项 " + d.key : "") +
                                  (d.deadline ? "，整改期限 " + time(d.deadline) : "") : "");
  const steps = document.createElement("ul");
  steps.className = "transitions";
  li.append(head, msg, steps);
  const feed = document.getElementById("feed");
  feed.prepend(li);
  while (feed.children.length > OV_FEED_MAX) feed.lastElementChild.remove();
  document.getElementById("feed-empty").hidden = true;
  return li;
}

async function ovAlert(d) {
  if (d.rules_version !== ov.rulesVersion) await ovRules(); /* a reload: which rules have a lifecycle now */
  if (!document.querySelector('#feed > li[data-alert="' + CSS.escape(d.alert_id) + '"]'))
    ovItem(d, ov.rules.get(d.rule_id) ? "open" : "none", false);
}

function ovTransition(d) {
  let li = document.querySelector('#feed > li[data-alert="' + CSS.escape(d.alert_id) + '"]');
  if (!li) li = ovItem(d, d.from, true);
  li.dataset.state = d.to;
  li.querySelector(".state").replaceWith(ovBadge(d.to));
  const step = document.createElement("li");
  step.dataset.to = d.to;
  step.textContent = time(d.time) + "  " + (OV_STATES[d.from] || d.from) + " → " + (OV_STATES[d.to] || d.to) +
    "（" + (OV_CAUSES[d.cause] || d.cause) + (d.evidence.length ? "：" + d.evidence.join("、") : "") + "）";
  li.querySelector(".transitions").appendChild(step);
}

/* The feed starts with the alerts open now (the newest OV_FEED_MAX / 2),
 * oldest first so that the newest ends on top. */
async function ovSeed() {
  const doc = await ovJson("/v1/alerts?state=open&limit=" + OV_FEED_MAX / 2);
  doc.alerts.sort((a, b) => (a.opened_at < b.opened_at ? -1 : a.opened_at > b.opened_at ? 1 : 0));
  for (const a of doc.alerts) ovItem(a, a.state, true);
}

function ovFeed() {
  const status = document.getElementById("feed-status");
  const es = new EventSource("/v1/events?types=alert,alert_state,adjustment");
  const on = (type, fn) => es.addEventListener(type, (e) => {
    ov.events = ov.events.then(() => fn(JSON.parse(e.data))).catch((err) => console.error(err));
    ovSoon();
  });
  on("alert", ovAlert);
  on("alert_state", ovTransition);
  on("adjustment", () => {});
  on("reset", () => { text("feed-status", "部分事件已丢失，已重新读取"); });
  es.onopen = () => {
    status.textContent = "已连接";
    status.className = "badge ok";
    document.getElementById("overview").dataset.feed = "open";
  };
  es.onerror = () => {
    status.textContent = "重新连接中";
    status.className = "badge warn";
  };
}

async function ovLoad() {
  if (!document.getElementById("overview")) return; /* not the overview page */
  document.getElementById("region-digits").addEventListener("change", ovRefresh);
  try {
    await ovRules();
  } catch (e) {
    /* the feed then shows every alert as a fact, without states */
  }
  try {
    await ovSeed();
  } catch (e) {
    /* the feed then starts empty */
  }
  ovFeed();
  await ovRefresh();
  setInterval(ovRefresh, 30000);
}

document.addEventListener("DOMContentLoaded", ovLoad);
