// A QR code as an inline SVG, for the link code of a new device (docs/PROTOCOL.md section 18: a
// phone's camera opens `<origin>/#link=<code>`). The modules come from the vendored @paulmillr/qr;
// the SVG is built with DOM calls, never parsed from a string, and holds nothing but the squares
// (the text itself is shown next to it, selectable).
import encodeQR from "../../vendor/paulmillr-qr/esm/index.js";

const SVG = "http://www.w3.org/2000/svg";
const QUIET_ZONE = 4; // modules of white around the code, as ISO/IEC 18004 asks

/** The dark modules of `text` (rows of booleans, the quiet zone included). */
export function qrModules(text) {
  return encodeQR(text, "raw", { ecc: "medium", border: QUIET_ZONE });
}

/**
 * An SVG path drawing the dark modules of `rows`: one rectangle per run of dark modules in a row,
 * in units of one module.
 * @param {boolean[][]} rows
 */
export function qrPath(rows) {
  const parts = [];
  rows.forEach((row, y) => {
    let x = 0;
    while (x < row.length) {
      if (!row[x]) {
        x += 1;
        continue;
      }
      const start = x;
      while (x < row.length && row[x]) x += 1;
      parts.push(`M${start} ${y}h${x - start}v1h-${x - start}z`);
    }
  });
  return parts.join("");
}

/** An <svg role="img"> of the QR code of `text`, labelled `label`. */
export function qrSvg(text, label) {
  const rows = qrModules(text);
  const size = rows.length;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  svg.setAttribute("shape-rendering", "crispEdges");
  const background = document.createElementNS(SVG, "rect");
  background.setAttribute("width", String(size));
  background.setAttribute("height", String(size));
  background.setAttribute("fill", "#fff");
  const modules = document.createElementNS(SVG, "path");
  modules.setAttribute("d", qrPath(rows));
  modules.setAttribute("fill", "#000");
  svg.append(background, modules);
  return svg;
}
