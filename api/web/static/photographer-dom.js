// Small DOM helpers shared by the photographer page's modules.

export const $ = (id) => document.getElementById(id);

export const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

export function showError(node, text) {
  node.textContent = text;
  node.hidden = !text;
}
