// Asking for a case with a lesion where the trainee wants it: a drag on the frame draws a box, whose
// corners (in the frame's own pixels, the model's image size) go into the request form. The canvas
// names the elements to fill: data-fields (four input ids: x0 y0 x1 y1) and data-report (an id).
(function () {
  "use strict";
  document.querySelectorAll("canvas[data-draw-box]").forEach(function (canvas) {
    const ctx = canvas.getContext("2d");
    const fields = canvas.dataset.fields.split(" ").map(id => document.getElementById(id));
    const report = document.getElementById(canvas.dataset.report);
    let start = null;
    function at(event) {
      const r = canvas.getBoundingClientRect();
      return [Math.round((event.clientX - r.left) * canvas.width / r.width),
              Math.round((event.clientY - r.top) * canvas.height / r.height)];
    }
    function draw(a, b) {
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.strokeStyle = "#ffcc00";
      ctx.lineWidth = Math.max(1, canvas.width / 128);
      ctx.strokeRect(Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.abs(b[0] - a[0]), Math.abs(b[1] - a[1]));
    }
    canvas.addEventListener("mousedown", e => { start = at(e); });
    canvas.addEventListener("mousemove", e => { if (start) draw(start, at(e)); });
    canvas.addEventListener("mouseup", e => {
      if (!start) return;
      const end = at(e), box = [Math.min(start[0], end[0]), Math.min(start[1], end[1]),
                                Math.max(start[0], end[0]), Math.max(start[1], end[1])];
      start = null;
      if (box[2] - box[0] < 2 || box[3] - box[1] < 2) return;  // a click, not a box
      fields.forEach((field, i) => { field.value = box[i]; });
      report.textContent = "Box: x " + box[0] + "-" + box[2] + ", y " + box[1] + "-" + box[3];
    });
  });
})();
