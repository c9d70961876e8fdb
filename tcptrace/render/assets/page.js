// tcptrace's workshop page: step through one connection's ladder.
// Everything shown from the data block is set with textContent, never as markup: the
// explanations are ours, but comments come from the capture file.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("ladder-data").textContent);
  const steps = data.segments;
  const segs = Array.from(document.querySelectorAll("svg.ladder .seg"));
  const rows = Array.from(document.querySelectorAll("#segments tbody tr"));
  const states = Array.from(document.querySelectorAll("svg.state-diagram .state"));
  const $ = (id) => document.getElementById(id);
  let current = -1;

  function text(id, value) { $(id).textContent = value; }

  function list(id, items) {
    const ul = $(id);
    ul.replaceChildren();
    for (const item of items) {
      const li = document.createElement("li");
      li.textContent = item;
      ul.appendChild(li);
    }
    ul.closest("section").hidden = items.length === 0;
  }

  function light(side, state) {
    for (const box of states) {
      box.classList.toggle("lit-" + side, box.dataset.state === state);
    }
  }

  function select(i, scroll) {
    if (!steps.length) return;
    i = Math.max(0, Math.min(steps.length - 1, i));
    if (current >= 0) {
      segs[current].classList.remove("sel");
      rows[current].classList.remove("sel");
      rows[current].removeAttribute("aria-selected");
    }
    current = i;
    const s = steps[i];
    segs[i].classList.add("sel");
    rows[i].classList.add("sel");
    rows[i].setAttribute("aria-selected", "true");
    text("p-index", `segment ${i + 1} of ${steps.length}`);
    text("p-frame", s.frame === null ? "" : `frame ${s.frame}`);
    text("p-time", `${s.ms} ms`);
    text("p-arrow", (s.from === "client" ? "client → server  " : "server → client  ") + s.arrow);
    text("p-client", s.client);
    text("p-server", s.server);
    text("p-note", s.note);
    list("p-tags", s.tags);
    list("p-around", s.around);
    list("p-comments", s.comments);
    light("client", s.client);
    light("server", s.server);
    history.replaceState(null, "", "#" + (i + 1));   // a link to this segment
    if (scroll) {
      reveal($("ladder"), segs[i]);
      reveal($("segments"), rows[i]);
    }
  }

  // Scroll `box` (not the window: the panel stays where the reader looks) to show `el`.
  function reveal(box, el) {
    const b = box.getBoundingClientRect(), r = el.getBoundingClientRect();
    const head = box.querySelector("thead");
    const top = b.top + (head ? head.getBoundingClientRect().height : 0);
    if (r.top < top) box.scrollTop += r.top - top - 8;
    else if (r.bottom > b.bottom) box.scrollTop += r.bottom - b.bottom + 8;
  }

  function closing(from, step) {
    for (let i = from + step; i >= 0 && i < steps.length; i += step) {
      if (steps[i].close) return i;
    }
    return current;
  }

  const KEYS = {
    ArrowRight: () => current + 1, ArrowDown: () => current + 1, " ": () => current + 1,
    j: () => current + 1, n: () => current + 1,
    ArrowLeft: () => current - 1, ArrowUp: () => current - 1, k: () => current - 1,
    b: () => current - 1, Backspace: () => current - 1,
    Home: () => 0, g: () => 0, End: () => steps.length - 1, G: () => steps.length - 1,
    f: () => closing(current, 1), F: () => closing(current, -1),
  };

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const onButton = event.target instanceof HTMLButtonElement;
    if (onButton && (event.key === " " || event.key === "Enter")) return;
    if (event.key === "p") { toggleProjector(); event.preventDefault(); return; }
    const move = KEYS[event.key];
    if (!move) return;
    event.preventDefault();
    select(move(), true);
  });

  function pick(event) {
    const target = event.target.closest("[data-i]");
    if (target) select(Number(target.dataset.i), false);
  }
  document.querySelector("svg.ladder").addEventListener("click", pick);
  $("segments").addEventListener("click", pick);

  function toggleProjector() {
    const on = document.body.classList.toggle("projector");
    $("projector").setAttribute("aria-pressed", String(on));
  }
  $("projector").addEventListener("click", toggleProjector);
  $("print").addEventListener("click", () => window.print());

  // page.html#8 opens at segment 8 (and a typed #N jumps there).
  function linked() {
    const n = /^#(\d+)$/.exec(location.hash);
    return n ? Number(n[1]) - 1 : null;
  }
  window.addEventListener("hashchange", () => {
    if (linked() !== null) select(linked(), true);
  });
  select(linked() ?? 0, linked() !== null);
  document.documentElement.dataset.ready = String(Math.round(performance.now()));
})();
