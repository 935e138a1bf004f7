// Where files come from: the file and folder pickers, and drag and drop of files or whole folders.
import { $ } from "./photographer-dom.js";
import { addFiles } from "./photographer-uploads.js";

// readEntries returns a directory's entries in batches, until an empty one.
function readAll(reader) {
  return new Promise((resolve, reject) => {
    const out = [];
    const next = () =>
      reader.readEntries((batch) => {
        if (!batch.length) return resolve(out);
        out.push(...batch);
        next();
      }, reject);
    next();
  });
}

async function walk(entry, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ file, path: entry.fullPath.replace(/^\//, "") });
  } else if (entry.isDirectory) {
    for (const child of await readAll(entry.createReader())) await walk(child, out);
  }
}

export function initDropzone() {
  // Inputs: plain files or a folder (webkitRelativePath keeps the sub-folders for display).
  $("pick-files").addEventListener("change", (e) => {
    addFiles([...e.target.files].map((file) => ({ file, path: file.name })));
    e.target.value = "";
  });
  $("pick-folder").addEventListener("change", (e) => {
    addFiles([...e.target.files].map((file) => ({ file, path: file.webkitRelativePath || file.name })));
    e.target.value = "";
  });

  const zone = $("dropzone");
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", (e) => {
    if (!zone.contains(e.relatedTarget)) zone.classList.remove("over");
  });
  zone.addEventListener("drop", async (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const items = [...(e.dataTransfer.items || [])];
    // Entries must be taken synchronously, before the first await ends the drop event.
    const entries = items.map((it) => (it.webkitGetAsEntry ? it.webkitGetAsEntry() : null));
    if (entries.length && entries.every(Boolean)) {
      const out = [];
      for (const entry of entries) await walk(entry, out);
      addFiles(out);
    } else {
      addFiles([...e.dataTransfer.files].map((file) => ({ file, path: file.name })));
    }
  });
  // A file dropped just outside the zone must not navigate away from the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
}
