// Keys for readers going through a hundred cases: R or S ticks real or synthetic, 1-5 the confidence,
// Enter saves. Wired to the form marked data-answer-keys; a key for a question the study does not
// ask finds no input and does nothing.
(function () {
  "use strict";
  const form = document.querySelector("form[data-answer-keys]");
  if (!form) return;
  function tick(name, value) {
    const input = form.querySelector(`input[name="${name}"][value="${value}"]`);
    if (input) input.checked = true;
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const key = event.key.toLowerCase();
    if (key === "r") tick("origin", "real");
    else if (key === "s") tick("origin", "synthetic");
    else if (["1", "2", "3", "4", "5"].includes(key)) tick("confidence", key);
    else if (key === "enter") { event.preventDefault(); form.requestSubmit(); }
  });
})();
