// Review pages and their index. Decisions live in localStorage under the identify run's id, so a reload,
// another page of the run or the index sees them; "Export decisions.csv" writes them all for `whale-reid enroll`.
(function () {
  const data = JSON.parse(document.getElementById("review-data").textContent);
  const storageKey = "whale-reid:decisions:" + data.run;
  // A map without a prototype: a photo named "__proto__" (or "constructor") is a key like any other, not the
  // object's prototype, so its decision is stored and exported.
  function load() {
    const store = Object.create(null);
    try { return Object.assign(store, JSON.parse(localStorage.getItem(storageKey) || "{}")); }
    catch (e) { return store; }
  }
  let store = load();
  // One entry per section key (the photo, or "encounter:<id>"): c = the radio picked, n = the typed name,
  // d = match|new, i = the individual id, o = the section's place in the run, p = the photos when they are not
  // just the key (an encounter). Short, so a 28,000-photo survey fits the browser's ~5 MB.
  function save() {
    try { localStorage.setItem(storageKey, JSON.stringify(store)); } catch (e) {
      alert("The browser's storage for this page is full: export decisions.csv now (" + e.name + ").");
    }
  }
  function decided(entry) { return !!(entry && entry.i); }
  function counter() {
    const n = Object.values(store).filter(decided).length;
    document.getElementById("counter").textContent = n + " / " + data.total + " decided";
  }
  function csvCell(v) { v = String(v); return /[",\n\r]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }
  function decisionsCsv() {
    store = load();
    const rows = [["photo", "decision", "individual_id"]];
    Object.entries(store).filter((kv) => decided(kv[1])).sort((a, b) => a[1].o - b[1].o).forEach(([key, d]) => {
      (d.p || [key]).forEach((p) => rows.push([p, d.d, d.i]));
    });
    return rows.map((r) => r.map(csvCell).join(",")).join("\n") + "\n";
  }
  window.decisionsCsv = decisionsCsv;
  document.getElementById("export").addEventListener("click", () => {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([decisionsCsv()], { type: "text/csv" }));
    a.download = "decisions.csv";
    a.click();
  });
  // Mark every image once loaded: data-loaded="1" with its natural width, "0" if broken (outlined for the
  // reviewer; a headless browser can check the page with it).
  window.addEventListener("load", () => {
    document.querySelectorAll("img[src]").forEach((img) => {
      const ok = img.complete && img.naturalWidth > 0;
      img.dataset.loaded = ok ? "1" : "0";
      img.dataset.naturalWidth = String(img.naturalWidth);
      if (!ok) img.classList.add("broken");
    });
    document.body.dataset.imagesChecked = "1";
  });
  let refresh = counter;  // redraws from the store (another tab of the run may change it)
  window.addEventListener("storage", (e) => { if (e.key === storageKey) { store = load(); refresh(); } });

  if (data.index) {  // the index: each page's progress
    refresh = function () {
      counter();
      document.querySelectorAll("tr[data-page]").forEach((tr) => {
        const keys = data.pages[Number(tr.dataset.page)].keys;
        tr.querySelector(".progress").textContent = keys.filter((k) => decided(store[k])).length + " / " + keys.length + " decided";
      });
    };
    refresh();
    return;
  }

  const sections = Array.from(document.querySelectorAll("section.query"));
  let current = 0;
  function text(i) { return sections[i].querySelector("input[type=text]"); }
  function show(i, fromHash) {
    if (!sections.length) return;
    current = (i + sections.length) % sections.length;
    sections.forEach((s, j) => s.classList.toggle("active", j === current));
    document.getElementById("position").textContent = "photo " + (data.offset + current + 1) + " · page " + data.page + " / " + data.pages;
    if (!fromHash && location.hash !== "#" + (current + 1)) history.replaceState(null, "", "#" + (current + 1));
    if (!compare.hidden) { cmpCand = 0; cmpPhoto = 0; renderCompare(); }
  }
  function mark(section) {
    const picked = section.querySelector("input[type=radio]:checked");
    section.querySelectorAll("figure[data-choice]").forEach((f) => {
      f.classList.toggle("picked", !!picked && f.dataset.choice === picked.value);
    });
    section.classList.toggle("decided", decided(store[data.queries[sections.indexOf(section)].key]));
  }
  function record(i) {  // the section's controls → the store
    const q = data.queries[i], s = sections[i];
    const picked = s.querySelector("input[type=radio]:checked");
    store = load();
    if (!picked || picked.value === "skip") delete store[q.key];
    else {
      const name = text(i).value.trim();
      const isNew = picked.value === "new";
      store[q.key] = { c: picked.value, n: name, d: isNew ? "new" : "match",
        i: isNew ? name : q.candidates[Number(picked.value.slice(1))].id, o: data.offset + i };
      if (q.photos.length !== 1 || q.photos[0] !== q.key) store[q.key].p = q.photos;
    }
    save();
    mark(s);
    counter();
    if (!compare.hidden && i === current) renderCompare();  // the compare view follows the pick
  }
  function choose(i, value) {
    const radio = sections[i].querySelector("input[type=radio][value='" + value + "']");
    if (radio) { radio.checked = true; record(i); }
  }
  function chooseNew(i) { choose(i, "new"); text(i).focus(); }
  function pickNumber(i, number) {  // the keys 1–5 decide: the candidate of that number on the card
    if (number <= data.queries[i].candidates.length) choose(i, "c" + (number - 1));
  }
  function accept(i) {  // the card's recommendation: its individual, or a new one (named next)
    const q = data.queries[i];
    if (q.error) return;
    const c = q.candidates.findIndex((cand) => cand.id === q.call);
    if (c >= 0) choose(i, "c" + c); else chooseNew(i);
  }
  function undo(i) {
    const skip = sections[i].querySelector("input[value='skip']");
    if (skip) { skip.checked = true; text(i).value = ""; record(i); }
  }
  function nextUndecided() {
    for (let step = 1; step <= sections.length; step++) {
      const j = (current + step) % sections.length;
      if (!data.queries[j].error && !decided(store[data.queries[j].key])) { show(j); return; }
    }
    const next = document.getElementById("next-page");
    if (next) location.href = next.href;
    else document.getElementById("position").textContent += " · all decided on this page";
  }
  function restore() {
    sections.forEach((s, i) => {
      if (data.queries[i].error) return;
      const entry = store[data.queries[i].key];
      const radio = s.querySelector("input[type=radio][value='" + (entry ? entry.c : "skip") + "']");
      if (radio) radio.checked = true;
      text(i).value = entry && entry.c === "new" ? entry.n : "";  // (another tab may have undone it)
      mark(s);
    });
    counter();
  }
  refresh = restore;
  sections.forEach((s, i) => {
    if (data.queries[i].error) return;  // an unreadable photo: nothing to decide
    s.addEventListener("change", () => record(i));
    text(i).addEventListener("input", () => {
      if (text(i).value.trim()) s.querySelector("input[value='new']").checked = true;
      record(i);
    });
    s.querySelectorAll("figure[data-choice]").forEach((f) => {
      f.addEventListener("click", () => (f.dataset.choice === "new" ? chooseNew(i) : choose(i, f.dataset.choice)));
    });
    s.querySelector(".compare-open").addEventListener("click", () => { show(i); openCompare(); });
    s.querySelector("button.accept").addEventListener("click", () => accept(i));
  });

  // Compare: the query crop beside any candidate, fitted to the panes, one zoom and pan for both sides.
  // Choosing which candidate to look at (←/→, Shift+1–5, a thumbnail) never records a decision.
  const compare = document.getElementById("compare"), help = document.getElementById("help");
  let cmpCand = 0, cmpQuery = 0, cmpPhoto = 0, showMatches = false;
  const view = { s: 1, x: 0, y: 0 };
  const zooms = Array.from(compare.querySelectorAll(".zoom"));
  function applyView() {
    zooms.forEach((z) => { z.querySelector("img").style.transform = "translate(" + view.x + "px," + view.y + "px) scale(" + view.s + ")"; });
  }
  function resetView() { view.s = 1; view.x = 0; view.y = 0; applyView(); }
  let drag = null;
  zooms.forEach((z) => {
    z.addEventListener("wheel", (e) => { e.preventDefault(); view.s = Math.min(12, Math.max(1, view.s * Math.pow(1.0015, -e.deltaY))); applyView(); });
    z.addEventListener("mousedown", (e) => { drag = [e.clientX - view.x, e.clientY - view.y]; e.preventDefault(); });
  });
  window.addEventListener("mouseup", () => { drag = null; });
  window.addEventListener("mousemove", (e) => { if (drag) { view.x = e.clientX - drag[0]; view.y = e.clientY - drag[1]; applyView(); } });
  function link(href, label) {  // hrefs are URLs already (encoded once by the page's writer)
    const a = document.createElement("a");
    a.href = href; a.target = "_blank"; a.textContent = label;
    return a;
  }
  function fill(id, parts) {
    const el = document.getElementById(id);
    el.replaceChildren(...parts.filter((p) => p).map((p) => (typeof p === "string" ? document.createTextNode(p) : p)));
  }
  function scoreText(q, c) {
    const label = q.scale === "probability" ? "P(same) " : "similarity ";
    const value = c.score === null ? "n/a" : c.score.toFixed(3);
    return label + value + (q.threshold === null ? "" : " (threshold " + q.threshold.toFixed(3) + ")");
  }
  function renderCompare() {
    const q = data.queries[current];
    if (q.error || !q.candidates.length) { compare.hidden = true; return; }
    cmpCand = Math.min(cmpCand, q.candidates.length - 1);
    const c = q.candidates[cmpCand], m = q.members[Math.min(cmpQuery, q.members.length - 1)];
    cmpPhoto = cmpPhoto % c.images.length;
    const matches = showMatches && c.evidence;
    document.getElementById("cmp-query").src = m.crop;
    document.getElementById("cmp-cand").src = matches ? c.evidence : c.images[cmpPhoto];
    const picked = sections[current].querySelector("input[type=radio]:checked");
    const decision = !picked || picked.value === "skip" ? "undecided" : picked.value === "new" ? "decided: new" : "decided: " + q.candidates[Number(picked.value.slice(1))].id;
    fill("cmp-title", ["candidate " + (cmpCand + 1) + " / " + q.candidates.length + ": ", Object.assign(document.createElement("b"), { textContent: c.id }),
      " · " + scoreText(q, c) + (c.inliers === null ? "" : " · " + c.inliers + " keypoint matches") + " · " + decision]);
    fill("cmp-query-links", ["query crop " + (cmpQuery + 1) + " / " + q.members.length + " ", link(m.crop, "full size"), " ", m.original ? link(m.original, "original") : ""]);
    fill("cmp-cand-links", [(matches ? "keypoint matches (m: photo) · " : "photo " + (cmpPhoto + 1) + " / " + c.images.length + " (" + c.gallery_photos[cmpPhoto] + ") · "),
      c.originals[cmpPhoto] ? link(c.originals[cmpPhoto], "full-resolution original") : ""]);
    const thumbs = document.getElementById("cmp-thumbs");
    thumbs.replaceChildren();
    c.images.forEach((src, n) => {
      const t = document.createElement("img");
      t.src = src;
      t.className = !matches && n === cmpPhoto ? "on" : "";
      t.title = c.gallery_photos[n];
      t.addEventListener("click", () => { cmpPhoto = n; showMatches = false; renderCompare(); });
      thumbs.appendChild(t);
    });
  }
  function openCompare(candidate) {
    if (candidate === undefined) {  // the picked candidate, else the first
      const picked = sections[current] && sections[current].querySelector("input[type=radio]:checked");
      candidate = picked && /^c\d$/.test(picked.value) ? Number(picked.value.slice(1)) : 0;
    }
    const opening = compare.hidden;
    compare.hidden = false; cmpCand = candidate; cmpPhoto = 0;
    if (opening) { cmpQuery = 0; resetView(); }
    renderCompare();
  }
  function stepCandidate(step) {
    const n = data.queries[current].candidates.length;
    if (n) { cmpCand = (cmpCand + step + n) % n; cmpPhoto = 0; renderCompare(); }
  }

  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (t.tagName === "INPUT" && t.type === "text") {  // Esc/Enter leave the name field (Enter confirms the name)
      if (e.key === "Escape" || e.key === "Enter") {
        e.preventDefault();
        if (e.key === "Enter" && t.value.trim()) sections[current].querySelector("input[value='new']").checked = true;
        record(current);
        t.blur();
      }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const digit = /^Digit[1-5]$/.test(e.code) ? Number(e.code.slice(5)) : null;
    const comparing = !compare.hidden;
    if (e.key === "Escape") { help.hidden = true; compare.hidden = true; }
    else if (e.key === "?") help.hidden = !help.hidden;
    else if (digit && e.shiftKey) { openCompare(digit - 1); e.preventDefault(); }  // looking, not deciding
    else if (comparing && e.key === "ArrowRight") stepCandidate(1);
    else if (comparing && e.key === "ArrowLeft") stepCandidate(-1);
    else if (e.key === "ArrowRight" || e.key === "j") show(current + 1);
    else if (e.key === "ArrowLeft" || e.key === "k") show(current - 1);
    else if (/^[1-5]$/.test(e.key)) pickNumber(current, Number(e.key));
    else if (e.key === "a") { accept(current); e.preventDefault(); }
    else if (e.key === "n") { chooseNew(current); e.preventDefault(); }
    else if (e.key === "u") nextUndecided();
    else if (e.key === "z" || e.key === "Backspace") { undo(current); e.preventDefault(); }
    else if (e.key === "c") { if (comparing) compare.hidden = true; else openCompare(); }
    else if (e.key === "m" && comparing) { showMatches = !showMatches; renderCompare(); }
    else if (e.key === "p" && comparing) { cmpPhoto += 1; showMatches = false; renderCompare(); }
    else if (e.key === "q" && comparing) { cmpQuery = (cmpQuery + 1) % data.queries[current].members.length; renderCompare(); }
    else if (e.key === "0") resetView();
  });
  function fromHash() { return (Number(location.hash.slice(1)) || 1) - 1; }
  window.addEventListener("hashchange", () => show(fromHash(), true));  // review/page-0001.html#7: the 7th photo
  restore();
  show(fromHash(), true);
})();
