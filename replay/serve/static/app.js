// The live parts of the pages: upload with drag and drop, job progress (server-sent
// events), deletes, and the SQL console. No framework, nothing from the network.
"use strict";

function token() {
  const field = document.getElementById("token");
  return field ? field.value : "";
}

function authHeaders() {
  const t = token();
  return t ? { Authorization: "Bearer " + t } : {};
}

function el(tag, text) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

// --- jobs -------------------------------------------------------------------------
function showJob(row, job) {
  row.dataset.state = job.state;
  row.querySelector(".state").textContent = job.state;
  row.querySelector(".phase").textContent = job.phase || "";
  row.querySelector("progress").value = job.progress;
  row.querySelector(".error").textContent = job.error || "";
  if (job.state === "done") {
    const cell = row.querySelector(".dataset");
    cell.textContent = "";
    const a = el("a", job.dataset);
    a.href = "/datasets/" + encodeURIComponent(job.dataset);
    cell.appendChild(a);
  }
}

// The datasets table as the server renders it now (a job just added a dataset).
async function refreshDatasets() {
  const page = new DOMParser().parseFromString(await (await fetch("/")).text(), "text/html");
  const fresh = page.getElementById("datasets");
  document.getElementById("datasets").replaceWith(document.adoptNode(fresh));
  for (const button of document.querySelectorAll("#datasets button.delete")) {
    button.addEventListener("click", () => remove(button));
  }
}

function follow(row) {
  const source = new EventSource("/api/jobs/" + row.dataset.job + "/events");
  source.onmessage = (ev) => {
    const job = JSON.parse(ev.data);
    showJob(row, job);
    if (job.state === "done" || job.state === "failed") source.close();
    if (job.state === "done") refreshDatasets();
  };
}

function addJobRow(job, filename) {
  const row = el("tr");
  row.className = "job active";
  row.dataset.job = job.id;
  for (const [cls, text] of [["file", filename], ["dataset", job.dataset],
                             ["state", job.state], ["phase", job.phase], ["", null],
                             ["error", job.error]]) {
    const td = el("td", text);
    if (cls) td.className = cls;
    row.appendChild(td);
  }
  const bar = el("progress");
  bar.max = 1;
  bar.value = job.progress;
  row.children[4].appendChild(bar);
  document.querySelector("#jobs tbody").prepend(row);
  return row;
}

async function upload(file) {
  const error = document.getElementById("upload-error");
  error.textContent = "";
  const body = new FormData();
  body.append("trace", file, file.name);
  const resp = await fetch("/api/traces", { method: "POST", body, headers: authHeaders() });
  const answer = await resp.json();
  if (!resp.ok) {
    error.textContent = answer.error;
    return;
  }
  const job = await (await fetch("/api/jobs/" + answer.job)).json();
  follow(addJobRow(job, file.name));
}

function setUpUpload(form) {
  const input = document.getElementById("trace");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (input.files.length) upload(input.files[0]);
  });
  form.addEventListener("dragover", (ev) => { ev.preventDefault(); form.classList.add("over"); });
  form.addEventListener("dragleave", () => form.classList.remove("over"));
  form.addEventListener("drop", (ev) => {
    ev.preventDefault();
    form.classList.remove("over");
    for (const file of ev.dataTransfer.files) upload(file);
  });
}

async function remove(button) {
  const id = button.dataset.dataset;
  if (!confirm("Delete dataset " + id + "?")) return;
  const resp = await fetch("/api/datasets/" + encodeURIComponent(id),
                           { method: "DELETE", headers: authHeaders() });
  if (resp.ok) button.closest("tr").remove();
  else alert((await resp.json()).error);
}

// --- SQL console ------------------------------------------------------------------
function showResult(answer, ms) {
  const result = document.getElementById("result");
  const error = document.getElementById("sql-error");
  const status = document.getElementById("sql-status");
  result.textContent = "";
  if (answer.error) {
    error.hidden = false;
    error.textContent = answer.error + (answer.hint ? "\n" + answer.hint : "");
    status.textContent = "";
    return;
  }
  error.hidden = true;
  const table = el("table");
  const head = el("tr");
  for (const c of answer.columns) head.appendChild(el("th", c));
  table.appendChild(el("thead")).appendChild(head);
  const body = table.appendChild(el("tbody"));
  for (const r of answer.rows) {
    const tr = body.appendChild(el("tr"));
    for (const v of r) tr.appendChild(el("td", typeof v === "object" && v !== null ? JSON.stringify(v) : v));
  }
  result.appendChild(table);
  status.textContent = answer.rows.length + " rows" +
    (answer.truncated ? " (cut at the row limit)" : "") + " in " + ms + " ms";
}

async function post(url, payload) {
  const t0 = performance.now();
  const resp = await fetch(url, { method: "POST", body: JSON.stringify(payload),
                                  headers: { "Content-Type": "application/json" } });
  showResult(await resp.json(), Math.round(performance.now() - t0));
}

function setUpConsole(box) {
  const base = "/api/datasets/" + encodeURIComponent(box.dataset.dataset);
  const form = document.getElementById("sql");
  const run = () => post(base + "/sql", { sql: form.elements.sql.value });
  form.addEventListener("submit", (ev) => { ev.preventDefault(); run(); });
  form.elements.sql.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); run(); }
  });
  for (const named of document.querySelectorAll("form.named")) {
    named.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const params = {};
      for (const input of named.querySelectorAll("input")) {
        if (input.value !== "") params[input.name] = input.value;
      }
      post(base + "/query/" + encodeURIComponent(named.dataset.query), { params });
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const field = document.getElementById("token");
  if (field) {
    field.value = localStorage.getItem("replay-token") || "";
    field.addEventListener("change", () => localStorage.setItem("replay-token", field.value));
  }
  const form = document.getElementById("upload");
  if (form) setUpUpload(form);
  for (const row of document.querySelectorAll("tr.job.active")) follow(row);
  for (const button of document.querySelectorAll("#datasets button.delete")) {
    button.addEventListener("click", () => remove(button));
  }
  const box = document.getElementById("console");
  if (box) setUpConsole(box);
});
