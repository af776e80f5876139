'use strict';
// What the report pages' scripts share: elements made from text only (textContent), never from markup.
function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function fact(list, name, value) {
  if (value === null || value === undefined || value === '') return;
  list.append(el('dt', null, name), el('dd', null, value));
}
