/*
 * riskd's console, the enterprise page: GET /v1/enterprises/{id} (the
 * document of `riskctl explain --json`, docs/outputs.md) shown as a person
 * reads it: grade, mode and frequency, the score and its parts (the static
 * rules and each live contribution with its event, start, expiry and
 * rectification deadline), the flags with their end, and the timeline of
 * its grades (grade_history: its latest adjustments).  Read-only.
 */
"use strict";

const MODES = {
  double_random: "双随机抽查",
  key_inspection: "重点检查",
  flying_inspection: "飞行检查",
};

/* An adjustment's cause (docs/outputs.md §2) */
const CAUSES = {
  event: "事件",
  profile: "企业档案更新",
  expiry: "风险分到期",
  dwell: "降级观察期满",
  timer: "定时规则",
  reload: "规则更新",
  cycle: "新评定周期",
};

function mode(m) {
  return MODES[m] ? MODES[m] + "（" + m + "）" : m || "—";
}

function text(id, value) {
  document.getElementById(id).textContent = value;
}

/* An RFC 3339 UTC time as Beijing time, "2026-03-11 10:00" */
function time(ts) {
  if (!ts) return "—";
  const d = new Date(ts);
  if (isNaN(d)) return ts;
  const b = new Date(d.getTime() + 8 * 3600 * 1000);
  return b.toISOString().slice(0, 16).replace("T", " ");
}

function row(tbody, cells) {
  const tr = document.createElement("tr");
  for (const [value, cls] of cells) {
    const td = document.createElement("td");
    td.textContent = value === null || value === undefined ? "—" : String(value);
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  tbody.appendChild(tr);
  return tr;
}

function show(doc) {
  text("enterprise", "企业 " + doc.enterprise_id);
  const grade = document.getElementById("grade");
  grade.textContent = doc.current.grade || "未评级";
  grade.className = "grade grade-" + (doc.current.grade || "none");
  text("mode", mode(doc.current.mode));
  text("frequency", doc.current.inspections_per_year === null ? "—" : doc.current.inspections_per_year + " 次/年");
  text("score", doc.score);
  text("static-score", doc.static_score);
  const o = doc.official;
  text("official", o && o.grade ? o.grade + " 级（" + o.score + " 分：静态 " + o.static + "，动态 " + o.dynamic + "）" : "—");
  text("last-event", time(doc.last_event));
  text("as-of", time(doc.as_of));

  const srows = document.getElementById("static-rows");
  for (const r of doc.static_rules || [])
    row(srows, [[r.rule_id], [r.points, "num"], [r.desc], [r.basis]]);
  const crows = document.getElementById("contribution-rows");
  for (const c of doc.contributions || []) {
    const tr = row(crows, [[c.rule_id], [c.points, "num"], [c.event_id, "nowrap"], [time(c.since), "nowrap"],
                           [time(c.expires), "nowrap"], [time(c.rectify_deadline), "nowrap"], [c.desc], [c.basis]]);
    tr.dataset.rule = c.rule_id;
    tr.dataset.event = c.event_id;
  }
  document.getElementById("no-contributions").hidden = (doc.contributions || []).length > 0;
  const frows = document.getElementById("flag-rows");
  for (const f of doc.flags || []) {
    const tr = row(frows, [[f.name], [f.until ? time(f.until) : "长期", "nowrap"]]);
    tr.dataset.flag = f.name;
  }
  document.getElementById("no-flags").hidden = (doc.flags || []).length > 0;
  const hrows = document.getElementById("history-rows");
  for (const h of doc.grade_history || []) {
    const tr = row(hrows, [[time(h.ts), "nowrap"], [h.grade], [mode(h.mode)], [h.inspections_per_year + " 次/年", "num"],
                           [CAUSES[h.cause] || h.cause], [h.adjustment_id, "nowrap"]]);
    tr.dataset.adjustment = h.adjustment_id;
    tr.dataset.grade = h.grade;
  }
  for (const id of ["summary", "parts", "history", "static", "contributions", "flags"])
    document.getElementById(id).hidden = false;
  chart(doc);
  timeline(doc);
}

/* The grades over time as a step line: each change holds until the next,
 * the last until the document's as_of; the higher risk grades on top. */
function timeline(doc) {
  const h = doc.grade_history || [];
  if (typeof Chart === "undefined" || !h.length) {
    document.getElementById("history-chart").parentNode.hidden = true;
    return;
  }
  const grades = [...new Set(h.map((c) => c.grade))].sort().reverse();
  const points = h.map((c) => ({ x: time(c.ts), y: c.grade }));
  if (doc.as_of > h[h.length - 1].ts)
    points.push({ x: time(doc.as_of), y: h[h.length - 1].grade });
  new Chart(document.getElementById("history-chart"), {
    type: "line",
    data: {
      labels: points.map((p) => p.x),
      datasets: [{ label: "风险等级", data: points.map((p) => p.y), stepped: true, borderColor: "#0b4f71",
                   backgroundColor: "#0b4f71", pointRadius: 4 }],
    },
    options: { animation: false, maintainAspectRatio: false, plugins: { legend: { display: false } },
               scales: { y: { type: "category", labels: grades, offset: true } } },
  });
}

/* The score's parts as one bar per rule: the static rules, then the live
 * contributions summed by rule. */
function chart(doc) {
  if (typeof Chart === "undefined") {
    document.getElementById("chart-missing").hidden = false;
    return;
  }
  const parts = new Map();
  for (const r of doc.static_rules || [])
    if (r.points) parts.set(r.rule_id + "（静态）", r.points);
  for (const c of doc.contributions || [])
    parts.set(c.rule_id, (parts.get(c.rule_id) || 0) + c.points);
  new Chart(document.getElementById("parts-chart"), {
    type: "bar",
    data: {
      labels: [...parts.keys()],
      datasets: [{ label: "分值", data: [...parts.values()], backgroundColor: "#4f8fc0" }],
    },
    options: { indexAxis: "y", animation: false, maintainAspectRatio: false,
               plugins: { legend: { display: false } } },
  });
}

async function load() {
  const page = document.getElementById("page");
  if (!page) return; /* not the enterprise page (the overview is overview.js's) */
  const id = new URLSearchParams(location.search).get("id");
  if (!id) {
    text("status", "缺少企业代码（?id=…）");
    page.dataset.state = "error";
    return;
  }
  try {
    const r = await fetch("/v1/enterprises/" + encodeURIComponent(id));
    const doc = await r.json();
    if (!r.ok) {
      document.getElementById("status").className = "status error";
      text("status", r.status === 404 ? "未找到企业 " + id + "（或其分区不在本实例）" : "错误 " + r.status + "：" + doc.error);
      page.dataset.state = "error";
      return;
    }
    document.getElementById("status").hidden = true;
    show(doc);
    page.dataset.state = "ready";
  } catch (e) {
    document.getElementById("status").className = "status error";
    text("status", "无法读取：" + e);
    page.dataset.state = "error";
  }
}

document.addEventListener("DOMContentLoaded", load);
