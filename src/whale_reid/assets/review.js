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
    if (!compare.hidden) renderCompare();
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
  function pickRank(i, rank) {  // the keys 1–5 are matches.csv's ranks (new_individual's rank included)
    const q = data.queries[i];
    if (q.new_rank === rank - 1) { chooseNew(i); return; }
    const c = q.candidates.findIndex((cand) => cand.rank === rank);
    if (c >= 0) choose(i, "c" + c);
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
  });

  // Compare: the query crop and the candidate's photos side by side, large, with zoom (wheel) and pan (drag).
  const compare = document.getElementById("compare");
  let cmpQuery = 0, cmpPhoto = 0;
  function zoomable(pane) {
    const img = pane.querySelector("img");
    let s = 1, x = 0, y = 0, drag = null;
    const apply = () => { img.style.transform = "translate(" + x + "px," + y + "px) scale(" + s + ")"; };
    pane.addEventListener("wheel", (e) => { e.preventDefault(); s = Math.min(12, Math.max(1, s * Math.pow(1.0015, -e.deltaY))); apply(); });
    pane.addEventListener("mousedown", (e) => { drag = [e.clientX - x, e.clientY - y]; e.preventDefault(); });
    window.addEventListener("mouseup", () => { drag = null; });
    window.addEventListener("mousemove", (e) => { if (drag) { x = e.clientX - drag[0]; y = e.clientY - drag[1]; apply(); } });
    pane.reset = () => { s = 1; x = 0; y = 0; apply(); };
    return pane;
  }
  const panes = Array.from(compare.querySelectorAll(".zoom")).map(zoomable);
  function link(href, label) { return href ? "<a target='_blank' href='" + encodeURI(href).replace(/'/g, "%27") + "'>" + label + "</a>" : ""; }
  function candIndex() {
    const picked = sections[current].querySelector("input[type=radio]:checked");
    return picked && /^c\d$/.test(picked.value) ? Number(picked.value.slice(1)) : 0;
  }
  function renderCompare() {
    const q = data.queries[current];
    if (q.error || !q.candidates.length) { compare.hidden = true; return; }
    const c = q.candidates[candIndex()], m = q.members[Math.min(cmpQuery, q.members.length - 1)];
    const pictures = c.images.concat(c.evidence ? [c.evidence] : []);
    cmpPhoto = cmpPhoto % pictures.length;
    document.getElementById("cmp-query").src = m.crop;
    document.getElementById("cmp-cand").src = pictures[cmpPhoto];
    document.getElementById("cmp-query-links").innerHTML = "query crop " + (cmpQuery + 1) + " / " + q.members.length + " " + link(m.crop, "full size") + " " + link(m.original, "original");
    document.getElementById("cmp-cand-links").textContent = "#" + (c.rank || "–") + " " + c.id + " · ";
    document.getElementById("cmp-cand-links").insertAdjacentHTML("beforeend", link(c.originals[cmpPhoto] || "", "full-resolution original"));
    const thumbs = document.getElementById("cmp-thumbs");
    thumbs.innerHTML = "";
    pictures.forEach((src, n) => {
      const t = document.createElement("img");
      t.src = src;
      t.className = n === cmpPhoto ? "on" : "";
      t.title = n < c.images.length ? c.gallery_photos[n] : "verified keypoint matches";
      t.addEventListener("click", () => { cmpPhoto = n; renderCompare(); });
      thumbs.appendChild(t);
    });
    panes.forEach((p) => p.reset());
  }
  function openCompare() { compare.hidden = false; cmpPhoto = 0; cmpQuery = 0; renderCompare(); }

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
    if (e.key === "Escape" && !compare.hidden) compare.hidden = true;
    else if (e.key === "ArrowRight" || e.key === "j") show(current + 1);
    else if (e.key === "ArrowLeft" || e.key === "k") show(current - 1);
    else if (/^[1-5]$/.test(e.key)) pickRank(current, Number(e.key));
    else if (e.key === "n") { chooseNew(current); e.preventDefault(); }
    else if (e.key === "u") nextUndecided();
    else if (e.key === "z" || e.key === "Backspace") { undo(current); e.preventDefault(); }
    else if (e.key === "c") { if (compare.hidden) openCompare(); else compare.hidden = true; }
    else if (e.key === "p" && !compare.hidden) { cmpPhoto += 1; renderCompare(); }
    else if (e.key === "q" && !compare.hidden) { cmpQuery = (cmpQuery + 1) % data.queries[current].members.length; renderCompare(); }
    else if (e.key === "0") panes.forEach((p) => p.reset());
  });
  function fromHash() { return (Number(location.hash.slice(1)) || 1) - 1; }
  window.addEventListener("hashchange", () => show(fromHash(), true));  // review/page-0001.html#7: the 7th photo
  restore();
  show(fromHash(), true);
})();
