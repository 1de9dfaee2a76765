// Review page: keyboard navigation between queries, a decision per query, CSV export.
(function () {
  const data = JSON.parse(document.getElementById("review-data").textContent);
  const sections = Array.from(document.querySelectorAll("section.query"));
  let current = 0;
  function show(i) {
    if (!sections.length) return;
    current = (i + sections.length) % sections.length;
    sections.forEach((s, j) => s.classList.toggle("active", j === current));
    document.getElementById("position").textContent = (current + 1) + " / " + sections.length;
    history.replaceState(null, "", "#" + (current + 1));
  }
  function mark(section) {
    const picked = section.querySelector("input[type=radio]:checked");
    section.querySelectorAll("figure[data-choice]").forEach((f) => {
      f.classList.toggle("picked", !!picked && f.dataset.choice === picked.value);
    });
  }
  function choose(i, value) {
    const radio = sections[i].querySelector("input[type=radio][value='" + value + "']");
    if (radio) { radio.checked = true; mark(sections[i]); }
  }
  sections.forEach((s, i) => {
    s.addEventListener("change", () => mark(s));
    s.querySelectorAll("figure[data-choice]").forEach((f) => {
      f.addEventListener("click", () => {
        choose(i, f.dataset.choice);
        if (f.dataset.choice === "new") s.querySelector("input[type=text]").focus();
      });
    });
  });
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT" && e.target.type === "text") return;
    if (e.key === "ArrowRight" || e.key === "j") show(current + 1);
    else if (e.key === "ArrowLeft" || e.key === "k") show(current - 1);
    else if (/^[1-5]$/.test(e.key)) choose(current, "c" + (Number(e.key) - 1));
    else if (e.key === "n") { choose(current, "new"); sections[current].querySelector("input[type=text]").focus(); e.preventDefault(); }
  });
  function csvCell(v) { v = String(v); return /[",\n\r]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }
  function decisionsCsv() {
    const rows = [["photo", "decision", "individual_id"]];
    sections.forEach((s, i) => {
      const q = data.queries[i];
      const picked = s.querySelector("input[type=radio]:checked");
      if (!picked || picked.value === "skip") return;
      if (picked.value === "new") {
        const name = s.querySelector("input[type=text]").value.trim();
        if (name) rows.push([q.photo, "new", name]);
      } else {
        rows.push([q.photo, "match", q.candidates[Number(picked.value.slice(1))]]);
      }
    });
    return rows.map((r) => r.map(csvCell).join(",")).join("\n") + "\n";
  }
  window.decisionsCsv = decisionsCsv;
  document.getElementById("export").addEventListener("click", () => {
    const blob = new Blob([decisionsCsv()], { type: "text/csv" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "decisions.csv";
    a.click();
  });
  // Mark every image once the page has loaded: data-loaded="1" with its natural width, "0" if broken
  // (lets a headless browser check the page; a broken image is also outlined for the reviewer).
  window.addEventListener("load", () => {
    document.querySelectorAll("img").forEach((img) => {
      const ok = img.complete && img.naturalWidth > 0;
      img.dataset.loaded = ok ? "1" : "0";
      img.dataset.naturalWidth = String(img.naturalWidth);
      if (!ok) img.classList.add("broken");
    });
    document.body.dataset.imagesChecked = "1";
  });
  show((Number(location.hash.slice(1)) || 1) - 1);  // review.html#7 opens the 7th photo
})();
