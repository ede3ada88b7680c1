// The quiz that asks where the lesion is: a click on the image fills the answer's x and y in the
// image's own pixels, whatever size the browser shows it at. The image names the elements to fill
// in its data-x, data-y and data-report attributes (element ids).
(function () {
  "use strict";
  document.querySelectorAll("img[data-click-point]").forEach(function (image) {
    const element = name => document.getElementById(image.dataset[name]);
    image.addEventListener("click", function (event) {
      const r = image.getBoundingClientRect();
      const x = Math.round((event.clientX - r.left) * image.naturalWidth / r.width);
      const y = Math.round((event.clientY - r.top) * image.naturalHeight / r.height);
      element("x").value = x;
      element("y").value = y;
      element("report").textContent = "You clicked at " + x + ", " + y + ".";
    });
  });
})();
