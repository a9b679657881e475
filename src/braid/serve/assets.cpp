// braid/serve/assets.cpp — the search page, its script, style and logo, compiled into the binary
// (nothing is downloaded at run time; the page works offline).
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
</header>
<form id="textform" autocomplete="off">
  <input id="q" name="q" type="search" placeholder="describe what you look for, e.g. red heart" autofocus>
  <button type="submit">Search</button>
</form>
<form id="fileform">
  <label>or upload an image or audio file: <input id="file" type="file" accept="image/*,audio/*"></label>
</form>
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
  $("info").textContent = h.index.count + " " + h.index.modality + " items \u00b7 " + h.index.type + " index \u00b7 " +
    "queries: " + h.modalities.join(", ");
}).catch(() => {});

const q0 = new URLSearchParams(location.search).get("q");
if (q0) { $("q").value = q0; searchText(q0); }
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
