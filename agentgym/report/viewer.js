// agentgym report viewer: plain JavaScript, no libraries, no network.
// Reads the JSON embedded in #agentgym-data and renders the summary, trajectory and group views.
// Data texts are always inserted with textContent; only the SVG figures, escaped in Python, are
// inserted as markup.
"use strict";

const DATA = JSON.parse(document.getElementById("agentgym-data").textContent);
const TRAJ = new Map(DATA.trajectories.map((t) => [t.key, t]));
const GROUP = new Map(DATA.groups.map((g) => [g.key, g]));

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null) continue;
    if (k === "text") node.textContent = v;
    else if (k === "cls") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function fmt(v, digits) {
  if (v === null || v === undefined) return "–";
  return (v >= 0 ? "+" : "") + v.toFixed(digits === undefined ? 3 : digits);
}

function num(v) {
  return Number.isInteger(v) ? String(v) : v.toPrecision(4).replace(/\.?0+$/, "");
}

function advColour(v, scale) {
  if (v === null || v === undefined) return "";
  const t = Math.min(1, Math.abs(v) / (scale || 1));
  const alpha = (0.12 + 0.78 * t).toFixed(3);
  if (v > 0) return `rgba(22,163,74,${alpha})`;
  if (v < 0) return `rgba(220,38,38,${alpha})`;
  return "rgba(156,163,175,0.25)";
}

function outcome(won) {
  return el("span", { cls: won ? "won" : "lost", text: won ? "won" : "lost" });
}

function metaTable(rows) {
  const table = el("table", { cls: "meta" });
  for (const [k, v] of rows) table.append(el("tr", {}, el("td", { text: k }), el("td", {}, v)));
  return table;
}

function gridTable(head, rows, rowClass) {
  const table = el("table", { cls: "grid" });
  table.append(el("tr", {}, ...head.map((h) => el("th", { text: h }))));
  rows.forEach((cells, i) => {
    const tr = el("tr", { cls: rowClass ? rowClass(i) : null });
    for (const c of cells) {
      const isNum = typeof c === "number";
      tr.append(el("td", { cls: isNum ? "num" : null }, isNum ? num(c) : c));
    }
    table.append(tr);
  });
  return table;
}

// ---- sidebar: search, filters, list ----------------------------------------------------------

const search = document.getElementById("search");
const fEnv = document.getElementById("f-env");
const fOutcome = document.getElementById("f-outcome");
const fIter = document.getElementById("f-iter");

function fillSelect(select, label, values) {
  select.append(el("option", { value: "", text: label }));
  for (const v of values) select.append(el("option", { value: String(v), text: String(v) }));
}

function haystack(t) {
  const parts = [t.id, t.task_id, t.task, t.group_id, t.env];
  for (const turn of t.turns) parts.push(turn.action, turn.user, turn.output);
  return parts.join("\n").toLowerCase();
}
const HAY = new Map(DATA.trajectories.map((t) => [t.key, haystack(t)]));

function matches(t) {
  const q = search.value.trim().toLowerCase();
  if (q && !HAY.get(t.key).includes(q)) return false;
  if (fEnv.value && t.env !== fEnv.value) return false;
  if (fOutcome.value && (fOutcome.value === "won") !== t.won) return false;
  if (fIter.value && String(t.iteration) !== fIter.value) return false;
  return true;
}

function renderList() {
  const list = document.getElementById("list");
  list.replaceChildren();
  let shown = 0;
  for (const g of DATA.groups) {
    const members = g.trajs.map((k) => TRAJ.get(k)).filter(matches);
    if (!members.length) continue;
    shown += members.length;
    const won = g.trajs.filter((k) => TRAJ.get(k).won).length;
    const head = el("div", {
      cls: "group-head", "data-group": g.key, text: `iter ${g.iteration} · ${g.group_id} · ${won}/${g.trajs.length} won`,
      onclick: () => go("group", g.key),
    });
    const box = el("div", { cls: "group-item" }, head);
    for (const t of members) {
      box.append(el("div", { cls: "traj-item", "data-traj": t.key, title: t.key, onclick: () => go("traj", t.key) },
        el("span", { cls: "id", text: t.id }),
        el("span", {}, `${t.turns.length} turns · ${num(t.ret)} · `, outcome(t.won))));
    }
    list.append(box);
  }
  document.getElementById("count").textContent = `${shown} of ${DATA.trajectories.length} trajectories`;
  markActive();
}

function markActive() {
  const [view, key] = route();
  for (const n of document.querySelectorAll(".traj-item, .group-head")) {
    const k = n.dataset.traj || n.dataset.group;
    n.classList.toggle("active", k === key && (view === "traj") === Boolean(n.dataset.traj));
  }
}

// ---- routing ---------------------------------------------------------------------------------

function go(view, key) {
  location.hash = `${view}=${encodeURIComponent(key)}`;
}

function route() {
  const m = location.hash.match(/^#(traj|group)=(.*)$/);
  return m ? [m[1], decodeURIComponent(m[2])] : ["summary", null];
}

function render() {
  const [view, key] = route();
  const main = document.getElementById("main");
  main.replaceChildren();
  if (view === "traj" && TRAJ.has(key)) main.append(...trajectoryView(TRAJ.get(key)));
  else if (view === "group" && GROUP.has(key)) main.append(...groupView(GROUP.get(key)));
  else main.append(...summaryView());
  main.scrollTop = 0;
  markActive();
}

// ---- summary ---------------------------------------------------------------------------------

function summaryView() {
  const r = DATA.run;
  const out = [el("h2", { text: `Run ${r.name}` }), metaTable([
    ["path", r.path],
    ["iterations", r.iterations.join(", ") || "none"],
    ["trajectories / groups", `${r.trajectories} / ${r.groups}`],
    ["success rate", `${(100 * r.success_rate).toFixed(1)}%`],
    ["mean return", num(r.mean_return)],
    ["estimators stored", DATA.estimators.join(", ") || "none"],
  ])];
  out.push(el("h3", { text: "Learning curves" }));
  const curves = el("div", { cls: "curves" });
  curves.innerHTML = DATA.curves.join("") || "<p>No metrics logged.</p>";
  out.push(curves);
  const diag = DATA.diagnostics;
  if (diag && diag.rows.length) {
    out.push(el("h3", { text: "Credit diagnostics (what credit had to work with)" }));
    out.push(el("p", { text: `From ${diag.source}. Zero-variance groups get no GRPO/RLOO signal; ` +
      "singleton-anchor turns get no GiGPO step advantage; SALT's step credit differs from its base only on merged edges." }));
    const chart = el("div", { cls: "curves" });
    chart.innerHTML = diag.curve;
    out.push(chart, gridTable(diag.columns, diag.rows));
  }
  out.push(el("h3", { text: "Per iteration (from the stored trajectories)" }));
  out.push(gridTable(["iteration", "trajectories", "success rate", "mean return", "mean turns"],
    DATA.per_iteration.map((p) => [p.iteration, p.trajectories, p.success_rate, p.mean_return, p.mean_turns])));
  if (r.config) out.push(el("h3", { text: "Config" }), el("pre", { cls: "config", text: r.config }));
  return out;
}

// ---- trajectory ------------------------------------------------------------------------------

function flashTurn(i) {
  const node = document.getElementById(`turn-${i}`);
  if (!node) return;
  node.scrollIntoView({ block: "center" });
  node.classList.add("flash");
  setTimeout(() => node.classList.remove("flash"), 900);
}

function advantageStrip(t) {
  const table = el("table", { cls: "adv-strip" });
  table.append(el("tr", {}, el("th", { text: "turn" }), ...t.turns.map((_, i) => el("th", { text: String(i) }))));
  table.append(el("tr", { cls: "reward-row" }, el("th", { text: "reward" }),
    ...t.turns.map((turn) => el("td", { cls: "cell", text: num(turn.reward) }))));
  for (const name of DATA.estimators) {
    const row = el("tr", { "data-estimator": name }, el("th", { text: name }));
    t.turns.forEach((turn, i) => {
      const v = turn.adv[name];
      const cell = el("td", {
        cls: v === null ? "cell missing" : "cell", "data-estimator": name, "data-turn": String(i),
        "data-value": v === null ? "" : String(v), title: `${name}, turn ${i}: ${v === null ? "not stored" : v}`,
        text: fmt(v), onclick: () => flashTurn(i),
      });
      cell.style.background = advColour(v, DATA.scale[name]);
      row.append(cell);
    });
    table.append(row);
  }
  return el("div", { cls: "strip-wrap" }, table);
}

function turnBlock(t, turn, i) {
  const head = el("div", { cls: "turn-head" }, el("span", { cls: "n", text: `Turn ${i}` }),
    el("span", { cls: "chip", text: `reward ${num(turn.reward)}` }),
    el("span", { cls: "chip", text: `return ${num(turn.rtg)}` }),
    el("span", { cls: "chip", title: "GiGPO anchor group: turns of the group taken in this state", text: `anchor ${turn.anchor} ×${turn.anchor_n}` }),
    el("span", { cls: "chip", title: "SALT edge: turns and trajectories of the group on this transition", text: `edge ${turn.edge} ×${turn.edge_n} (${turn.edge_trajs} traj) ${fmt(turn.edge_credit)}` }));
  for (const name of DATA.estimators) {
    const v = turn.adv[name];
    head.append(el("span", { cls: v > 0 ? "chip good" : v < 0 ? "chip bad" : "chip", text: `${name} ${fmt(v)}` }));
  }
  if (turn.invalid) head.append(el("span", { cls: "chip bad", text: "invalid" }));
  if (turn.terminated) head.append(el("span", { cls: "chip", text: "terminated" }));
  if (turn.truncated) head.append(el("span", { cls: "chip", text: "truncated" }));
  const said = el("div", { cls: "msg assistant" }, el("div", { cls: "role", text: "assistant" }), el("pre", { text: turn.output }));
  if (turn.action !== turn.output) said.append(el("div", { cls: "legend-note", text: `action: ${turn.action}` }));
  return el("div", { cls: "turn", id: `turn-${i}` }, head,
    el("div", { cls: "msg user" }, el("div", { cls: "role", text: "user (observation)" }), el("pre", { text: turn.user })), said);
}

function trajectoryView(t) {
  const group = GROUP.get(t.group);
  const out = [el("h2", { text: t.id }), metaTable([
    ["iteration", String(t.iteration)],
    ["env", t.env],
    ["task", t.task ? `${t.task_id}: ${t.task}` : t.task_id],
    ["group", el("a", { href: "#", text: t.group_id, onclick: (e) => { e.preventDefault(); go("group", t.group); } })],
    ["seed", String(t.seed)],
    ["turns / return", `${t.turns.length} / ${num(t.ret)}`],
    ["outcome", outcome(t.won)],
  ])];
  out.push(el("h3", { text: "Advantage per turn" }),
    el("div", { cls: "legend-note", text: "Green: positive, red: negative; stronger colour = larger magnitude (relative to the run's largest for that estimator). Click a cell to jump to the turn." }),
    advantageStrip(t));
  out.push(el("h3", { text: "Conversation" }));
  out.push(el("details", { cls: "msg system" }, el("summary", { text: "system prompt" }), el("pre", { text: t.system })));
  t.turns.forEach((turn, i) => out.push(turnBlock(t, turn, i)));
  if (group) out.push(el("p", {}, el("a", { href: "#", text: "Show this group's anchor groups and SALT graph", onclick: (e) => { e.preventDefault(); go("group", group.key); } })));
  return out;
}

// ---- group -----------------------------------------------------------------------------------

function highlight(svg, idx, buttons) {
  svg.classList.toggle("focus", idx !== null);
  for (const e of svg.querySelectorAll(".edge")) {
    const on = idx !== null && e.dataset.tidx.split(" ").includes(String(idx));
    e.classList.toggle("hl", on);
  }
  buttons.forEach((b, i) => b.classList.toggle("on", i === idx));
}

function groupView(g) {
  const members = g.trajs.map((k) => TRAJ.get(k));
  const out = [el("h2", { text: `Group ${g.group_id}` }), metaTable([
    ["iteration", String(g.iteration)], ["env", g.env], ["task", g.task_id],
    ["trajectories", `${members.length} (${members.filter((t) => t.won).length} won)`],
  ])];
  out.push(el("h3", { text: "Trajectories" }));
  out.push(gridTable(["#", "trajectory", "turns", "return", "outcome"], members.map((t, i) => [
    String(i), el("a", { href: "#", text: t.id, onclick: (e) => { e.preventDefault(); go("traj", t.key); } }),
    t.turns.length, t.ret, outcome(t.won)])));
  out.push(el("h3", { text: "SALT trajectory graph" }),
    el("div", { cls: "legend-note", text: "Nodes are states (S#, the thick one is the start; boxes are ends), arrows are actions, labelled with their SALT edge; colour = the edge's credit (green positive, red negative), width = how often it was taken. Hover for details; pick a trajectory to highlight its path." }));
  const wrap = el("div", { cls: "graph-wrap" });
  wrap.innerHTML = g.svg;
  const svg = wrap.querySelector("svg");
  const buttons = [];
  const bar = el("div", { cls: "members" }, el("button", { text: "all", onclick: () => highlight(svg, null, buttons) }));
  members.forEach((t, i) => {
    const b = el("button", { text: `#${i} ${t.won ? "won" : "lost"}`, title: t.id, onclick: () => highlight(svg, i, buttons) });
    buttons.push(b);
    bar.append(b);
  });
  out.push(bar, wrap);
  out.push(el("h3", { text: "States" }), gridTable(["node", "state key"], g.nodes.map((n) => [n.label, n.key])));
  out.push(el("h3", { text: "GiGPO anchor groups" }),
    el("div", { cls: "legend-note", text: "Turns of this group taken in the same anchor state; their step advantages are normalized together (a single turn gets A_S = 0)." }));
  const gigpo = DATA.estimators.includes("gigpo") ? "gigpo" : null;
  const rows = g.anchors.map((a) => [a.label, a.state_key, a.members.length,
    a.members.map(([k, turn]) => {
      const idx = g.trajs.indexOf(k);
      const v = gigpo ? TRAJ.get(k).turns[turn].adv.gigpo : null;
      return `#${idx}.${turn}` + (gigpo ? ` (${fmt(v)})` : "");
    }).join(", ")]);
  out.push(gridTable(["anchor", "state", "turns", "members (trajectory#.turn" + (gigpo ? ", gigpo advantage)" : ")")], rows,
    (i) => (g.anchors[i].members.length < 2 ? "singleton" : null)));
  return out;
}

// ---- start -----------------------------------------------------------------------------------

document.getElementById("run-name").textContent = `${DATA.run.name} · ${DATA.run.path}`;
fillSelect(fEnv, "all envs", [...new Set(DATA.trajectories.map((t) => t.env))].sort());
fillSelect(fIter, "all iterations", DATA.run.iterations);
for (const n of [search, fEnv, fOutcome, fIter]) n.addEventListener("input", renderList);
window.addEventListener("hashchange", render);
renderList();
render();
