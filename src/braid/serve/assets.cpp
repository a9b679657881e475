// braid/serve/assets.cpp — the search page (with the chat box of generative runs and the drawing form of
// drawing runs), its script, style and logo, compiled into the binary (nothing is downloaded at run time; the
// page works offline).
#include <map>
#include <string>

#include "braid/serve/server.h"

namespace braid::serve {

namespace {

const char* kPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>braid search</title>
<link rel="icon" href="/static/logo.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<header>
  <img src="/static/logo.svg" alt="" class="logo">
  <h1>braid search</h1>
  <span id="info" class="info"></span>
  <a id="reportlink" class="info" href="/report" hidden>training report</a>
</header>
<section id="search">
<form id="textform" autocomplete="off">
  <input id="q" name="q" type="search" placeholder="describe what you look for, e.g. red heart" autofocus>
  <button type="submit">Search</button>
</form>
<form id="fileform">
  <label>or upload an image or audio file: <input id="file" type="file" accept="image/*,audio/*"></label>
</form>
</section>
<section id="draw" class="chat" hidden>
  <form id="drawform" autocomplete="off">
    <input id="drawtext" type="text" placeholder="what to draw, e.g. red heart">
    <label>images <input id="drawn" type="number" min="1" max="16" value="8"></label>
    <label>guidance <input id="drawg" type="number" min="0" max="100" step="0.5" value="3"></label>
    <label>seed <input id="drawseed" type="number" min="0" value="0"></label>
    <button type="submit">Draw</button>
  </form>
  <p id="drawstatus" class="asked"></p>
  <div id="drawings" class="drawgrid"></div>
</section>
<section id="chat" class="chat" hidden>
  <form id="askform" autocomplete="off">
    <input id="prompt" type="text" placeholder="ask about an image or a recording, e.g. what is shown?">
    <label>with: <input id="askfile" type="file" accept="image/*,audio/*"></label>
    <button type="submit">Ask</button>
  </form>
  <p class="asked" id="asked"></p>
  <p id="answer" class="answer" data-state="idle"></p>
</section>
<p id="status" class="status"></p>
<main id="results" class="grid"></main>
<script src="/static/app.js"></script>
</body>
</html>
)HTML";

const char* kScript = R"JS(// braid search page: text queries, uploads, and `?q=` on load.
"use strict";
const $ = (id) => document.getElementById(id);

function show(data) {
  const box = $("results");
  box.innerHTML = "";
  if (data.error) { $("status").textContent = "Error: " + data.error; return; }
  $("status").textContent = data.results.length + " results for " + data.query.modality + " query \u201c" +
    (data.query.text || data.query.name) + "\u201d (" + data.took_ms.toFixed(1) + " ms)";
  for (const r of data.results) {
    const card = document.createElement("figure");
    card.className = "card";
    if (r.url && /\.(png|jpe?g|bmp)$/i.test(r.path)) {
      const img = document.createElement("img");
      img.src = r.url; img.alt = r.id; img.width = 96; img.height = 96;
      card.appendChild(img);
    } else if (r.url && /\.(wav|flac|ogg)$/i.test(r.path)) {
      const au = document.createElement("audio");
      au.src = r.url; au.controls = true;
      card.appendChild(au);
    }
    const cap = document.createElement("figcaption");
    cap.innerHTML = "<b>" + r.score.toFixed(3) + "</b><br>";
    cap.appendChild(document.createTextNode(r.id + (r.label ? " \u00b7 " + r.label : "")));
    card.appendChild(cap);
    box.appendChild(card);
  }
}

async function post(body, headers) {
  $("status").textContent = "searching\u2026";
  try {
    const res = await fetch("/api/search", {method: "POST", body: body, headers: headers || {}});
    show(await res.json());
  } catch (e) {
    $("status").textContent = "Error: " + e;
  }
}

function searchText(q) {
  if (!q) return;
  history.replaceState(null, "", "?q=" + encodeURIComponent(q));
  post(JSON.stringify({text: q, k: 12}), {"Content-Type": "application/json"});
}

$("textform").addEventListener("submit", (ev) => { ev.preventDefault(); searchText($("q").value.trim()); });
$("file").addEventListener("change", () => {
  const f = $("file").files[0];
  if (!f) return;
  const fd = new FormData();
  fd.append(f.type.startsWith("audio") || /\.(wav|flac|ogg)$/i.test(f.name) ? "audio" : "image", f, f.name);
  fd.append("k", "12");
  post(fd);
});

fetch("/api/health").then((r) => r.json()).then((h) => {
  if (!h.index) { $("info").textContent = h.run + (h.draws ? " \u00b7 draws images" : "") + " \u00b7 no index"; return; }
  $("info").textContent = h.index.count + " " + h.index.modality + " items \u00b7 " + h.index.type + " index \u00b7 " +
    "queries: " + h.modalities.join(", ");
}).catch(() => {});

// The drawing form (drawing runs): POST /api/generate {text, n, guidance, seed} -> a grid of PNG data URLs.
async function draw(text) {
  if (!text) return;
  const st = $("drawstatus"), box = $("drawings");
  st.textContent = "drawing \u201c" + text + "\u201d\u2026"; st.dataset.state = "drawing";
  const body = {text: text, n: Number($("drawn").value) || 1, guidance: Number($("drawg").value) || 0,
                seed: Number($("drawseed").value) || 0};
  try {
    const res = await fetch("/api/generate", {method: "POST", body: JSON.stringify(body),
                                              headers: {"Content-Type": "application/json"}});
    const j = await res.json();
    if (!res.ok || j.error) { st.textContent = "Error: " + (j.error || res.status); st.dataset.state = "error"; return; }
    box.innerHTML = "";
    for (const url of j.images) {
      const img = document.createElement("img");
      img.src = url; img.alt = j.text; img.width = 96; img.height = 96; img.className = "drawn";
      box.appendChild(img);
    }
    st.textContent = j.images.length + " image" + (j.images.length === 1 ? "" : "s") + " of \u201c" + j.text +
      "\u201d (" + j.width + "\u00d7" + j.height + ", guidance " + j.guidance + ", seed " + j.seed + ") in " +
      j.seconds.toFixed(2) + " s";
    st.dataset.state = "done";
  } catch (e) {
    st.textContent = "Error: " + e; st.dataset.state = "error";
  }
}

$("drawform").addEventListener("submit", (ev) => { ev.preventDefault(); draw($("drawtext").value.trim()); });

// The chat box (generative runs): POST /api/generate, the answer streamed in as server-sent events.
function onEvent(raw) {
  let name = "message", data = "";
  for (const line of raw.split("\n")) {
    if (line.startsWith("event: ")) name = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (!data) return;
  const j = JSON.parse(data);
  const a = $("answer");
  if (name === "message") { a.textContent += j.text; }
  else if (name === "done") {
    a.textContent = j.text; a.dataset.state = "done";
    $("asked").textContent = "\u201c" + j.prompt + "\u201d" + (j.task ? " (task " + j.task + ")" : "") + ", " +
      j.tokens + " tokens:";
  } else if (name === "error") { a.textContent = "Error: " + j.error; a.dataset.state = "error"; }
}

// XMLHttpRequest's progress events hand over the stream as it arrives (and a pending request keeps a
// headless browser waiting for the whole answer, which a fetch body reader does not).
function ask(body, headers) {
  const a = $("answer");
  a.textContent = ""; a.dataset.state = "streaming"; $("asked").textContent = "";
  const x = new XMLHttpRequest();
  let seen = 0, buf = "";
  const pump = () => {
    const t = x.responseText;
    buf += t.slice(seen); seen = t.length;
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) { onEvent(buf.slice(0, i)); buf = buf.slice(i + 2); }
  };
  x.open("POST", "/api/generate");
  for (const [k, v] of Object.entries(headers || {})) x.setRequestHeader(k, v);
  x.onprogress = () => { if (x.status === 200) pump(); };
  x.onload = () => {
    if (x.status === 200) { pump(); return; }
    let m = x.responseText;
    try { m = JSON.parse(m).error; } catch (e) {}
    a.textContent = "Error: " + m; a.dataset.state = "error";
  };
  x.onerror = () => { a.textContent = "Error: the request failed"; a.dataset.state = "error"; };
  x.send(body);
}

function askWith(prompt, file) {
  if (!file) return ask(JSON.stringify({prompt: prompt}), {"Content-Type": "application/json"});
  const fd = new FormData();
  fd.append(file.type.startsWith("audio") || /\.(wav|flac|ogg)$/i.test(file.name || "") ? "audio" : "image", file,
            file.name || "upload");
  if (prompt) fd.append("prompt", prompt);
  return ask(fd);
}

$("askform").addEventListener("submit", (ev) => {
  ev.preventDefault();
  askWith($("prompt").value.trim(), $("askfile").files[0]);
});

const params = new URLSearchParams(location.search);
const q0 = params.get("q");
if (q0) { $("q").value = q0; searchText(q0); }

// `?ask=PROMPT&media=SLOT` asks about an indexed file on load (links, tests)
// `?draw=TEXT` draws on load (links, tests)
fetch("/api/health").then((r) => r.json()).then(async (h) => {
  if (h.report) $("reportlink").hidden = false;
  if (h.searches === false) $("search").hidden = true;
  if (h.draws) {
    $("draw").hidden = false;
    const d0 = params.get("draw");
    if (d0) { $("drawtext").value = d0; draw(d0); }
  }
  if (!h.generates) return;
  $("chat").hidden = false;
  const p0 = params.get("ask"), m0 = params.get("media");
  if (p0 === null && m0 === null) return;
  $("prompt").value = p0 || "";
  let file = null;
  if (m0 !== null) {
    const r = await fetch("/media/" + encodeURIComponent(m0));
    if (r.ok) { const b = await r.blob(); file = new File([b], "media-" + m0 + (b.type.startsWith("audio") ? ".wav" : ".png"), {type: b.type}); }
  }
  askWith(p0 || "", file);
}).catch(() => {});
)JS";

const char* kStyle = R"CSS(body { font-family: sans-serif; margin: 0 2em 2em; background: #fafafa; color: #222; }
header { display: flex; align-items: center; gap: 0.8em; }
header h1 { font-size: 1.6em; margin: 0.6em 0; }
.logo { width: 40px; height: 40px; }
.info { color: #666; font-size: 0.9em; }
form { margin: 0.6em 0; }
#q { width: 28em; max-width: 70vw; font-size: 1.1em; padding: 0.3em 0.5em; }
button { font-size: 1.1em; padding: 0.3em 1em; background: #3a6ea5; color: white; border: 0; border-radius: 4px; }
.status { color: #555; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
.card { margin: 0; width: 130px; padding: 8px; background: white; border: 1px solid #ddd; border-radius: 6px;
        text-align: center; font-size: 0.8em; overflow-wrap: anywhere; }
.card img { image-rendering: auto; background: #fff; }
.card audio { width: 120px; }
.chat { margin: 0.6em 0 1em; padding: 0.6em 0.8em; background: white; border: 1px solid #ddd; border-radius: 6px; }
#prompt { width: 24em; max-width: 60vw; font-size: 1.05em; padding: 0.3em 0.5em; }
.asked { color: #555; margin: 0.4em 0 0; font-size: 0.9em; }
.answer { font-size: 1.3em; margin: 0.2em 0; min-height: 1.4em; }
#drawtext { width: 20em; max-width: 60vw; font-size: 1.05em; padding: 0.3em 0.5em; }
#drawform input[type=number] { width: 4em; }
.drawgrid { display: grid; grid-template-columns: repeat(auto-fill, 96px); gap: 6px; margin-top: 0.4em; }
.drawgrid img { image-rendering: pixelated; background: #fff; border: 1px solid #ddd; }
)CSS";

const char* kLogo = R"SVG(<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 40">
<path d="M6 8 C20 14 20 26 34 32" stroke="#3a6ea5" stroke-width="4" fill="none" stroke-linecap="round"/>
<path d="M6 20 C20 26 20 14 34 20" stroke="#e07a3f" stroke-width="4" fill="none" stroke-linecap="round"/>
<path d="M6 32 C20 26 20 14 34 8" stroke="#4f9d5d" stroke-width="4" fill="none" stroke-linecap="round"/>
</svg>
)SVG";

}  // namespace

const std::string& index_html() {
  static const std::string page = kPage;
  return page;
}

const std::string* static_asset(const std::string& name, std::string* content_type) {
  static const std::map<std::string, std::pair<std::string, std::string>> assets = {
      {"app.js", {kScript, "application/javascript"}},
      {"style.css", {kStyle, "text/css"}},
      {"logo.svg", {kLogo, "image/svg+xml"}},
  };
  auto it = assets.find(name);
  if (it == assets.end()) return nullptr;
  if (content_type) *content_type = it->second.second;
  return &it->second.first;
}

}  // namespace braid::serve
