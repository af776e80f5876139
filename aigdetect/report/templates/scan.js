// The file table of a scan report: rows come from the JSON data island and are drawn a page at a
// time, so a 100,000-file scan opens quickly. Every value from the data is inserted as text
// (textContent, title, value), never as markup.
(function () {
  const data = JSON.parse(document.getElementById('aig-data').textContent);
  const F = {};
  data.fields.forEach(function (name, i) { F[name] = i; });
  const rows = data.rows;
  const thumbs = data.thumbs;
  // Verdicts are data: look them up as own keys only, so "constructor" or "__proto__" stay plain words.
  const own = function (map, key) { return Object.prototype.hasOwnProperty.call(map, key); };
  const rank = new Map(data.kinds.map(function (kind, i) { return [kind, i]; }));

  const tbody = document.getElementById('rows');
  const verdictSelect = document.getElementById('verdict');
  const search = document.getElementById('q');
  const pageSize = document.getElementById('page-size');
  const matchCount = document.getElementById('match-count');
  const pageInfo = document.getElementById('page-info');
  const prev = document.getElementById('prev');
  const next = document.getElementById('next');
  const dialog = document.getElementById('detail');
  const state = { key: null, dir: 1, kind: '', terms: [], page: 0, size: Number(pageSize.value) };
  let sorted = rows.map(function (_, i) { return i; });
  let view = sorted;
  let haystack = null;

  function label(kind) { return own(data.labels, kind) ? data.labels[kind] : kind; }
  function badgeClass(kind) { return 'badge v-' + (own(data.classes, kind) ? data.classes[kind] : 'other'); }

  function zone(score, threshold) {
    const bands = data.bands;
    if (bands) return score < bands[0] ? 'real' : (score > bands[1] ? 'ai' : 'mid');
    return threshold !== null && score > threshold ? 'ai' : 'real';
  }

  function bytes(n) {
    if (n === null) return '';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let value = n;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return (unit ? value.toFixed(1) : String(value)) + ' ' + units[unit];
  }

  function dims(r) {
    return r[F.width] !== null && r[F.height] !== null ? r[F.width] + ' \u00d7 ' + r[F.height] : '';
  }

  function fixed(x) { return x === null ? '' : x.toFixed(3); }

  function preview(r) {
    const t = r[F.thumb];
    if (typeof t === 'number' && typeof thumbs[t] === 'string' && thumbs[t].indexOf('data:image/jpeg;base64,') === 0) {
      const img = el('img');
      img.src = thumbs[t];
      img.alt = 'preview';
      return img;
    }
    const why = t !== null && own(data.placeholders, t) ? data.placeholders[t] : 'no preview';
    const box = el('div', 'placeholder', t === null ? '\u2014' : why);
    if (t !== null) box.title = why;
    return box;
  }

  function gauge(score, threshold) {
    const wrap = el('div', 'gauge');
    const bar = el('div', 'bar');
    const fill = el('div', 'fill z-' + zone(score, threshold));
    fill.style.width = (Math.min(1, Math.max(0, score)) * 100).toFixed(1) + '%';
    bar.appendChild(fill);
    if (threshold !== null) {
      const tick = el('div', 'tick');
      tick.style.left = (Math.min(1, Math.max(0, threshold)) * 100).toFixed(1) + '%';
      tick.title = 'threshold ' + threshold;
      bar.appendChild(tick);
    }
    wrap.append(bar, el('span', 'value', fixed(score)));
    return wrap;
  }

  function rowThreshold(r) { return r[F.threshold] !== null ? r[F.threshold] : data.threshold; }

  function rowElement(i) {
    const r = rows[i];
    const tr = el('tr');
    tr.dataset.row = String(i);
    tr.tabIndex = 0;
    const kind = r[F.kind];
    const cells = {};
    ['thumb', 'path', 'verdict', 'score', 'generator', 'evidence', 'size', 'dims'].forEach(function (name) {
      cells[name] = tr.appendChild(el('td', name));
    });
    cells.thumb.appendChild(preview(r));
    cells.path.textContent = r[F.path];
    cells.verdict.appendChild(el('span', badgeClass(kind), label(kind)));
    if (r[F.model_verdict] && r[F.model_verdict] !== kind) cells.verdict.appendChild(el('span', 'model', 'model: ' + r[F.model_verdict]));
    if (r[F.score] !== null) cells.score.appendChild(gauge(r[F.score], rowThreshold(r)));
    cells.generator.textContent = r[F.generator];
    if (kind === 'error') {
      cells.evidence.appendChild(el('span', 'error-text', r[F.error_reason] + (r[F.error_detail] ? ': ' + r[F.error_detail] : '')));
    } else {
      r[F.evidence].forEach(function (f) {
        const chip = el('span', 'chip c-' + (data.claims.indexOf(f[1]) >= 0 ? f[1] : 'other'), f[0] + ': ' + f[1]);
        chip.title = f[3];
        cells.evidence.appendChild(chip);
      });
    }
    cells.size.textContent = bytes(r[F.size]);
    cells.dims.textContent = dims(r);
    return tr;
  }

  function render() {
    const total = view.length;
    const pages = Math.max(1, Math.ceil(total / state.size));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * state.size;
    const stop = Math.min(total, start + state.size);
    const fragment = document.createDocumentFragment();
    for (let k = start; k < stop; k += 1) fragment.appendChild(rowElement(view[k]));
    if (!total) {
      const tr = el('tr');
      const td = el('td', 'empty', 'No file matches the filters.');
      td.colSpan = 8;
      tr.appendChild(td);
      fragment.appendChild(tr);
    }
    tbody.replaceChildren(fragment);
    matchCount.textContent = total === rows.length ? total + ' files' : total + ' of ' + rows.length + ' files';
    pageInfo.textContent = total ? (start + 1) + '\u2013' + stop + ' (page ' + (state.page + 1) + ' of ' + pages + ')' : '';
    prev.disabled = state.page === 0;
    next.disabled = state.page >= pages - 1;
  }

  const getters = {
    path: function (r) { return r[F.path]; },
    verdict: function (r) { return rank.has(r[F.kind]) ? rank.get(r[F.kind]) : data.kinds.length; },
    score: function (r) { return r[F.score]; },
    generator: function (r) { return r[F.generator] || null; },
    evidence: function (r) { return r[F.evidence].length; },
    size: function (r) { return r[F.size]; },
    dims: function (r) { return r[F.width] !== null && r[F.height] !== null ? r[F.width] * r[F.height] : null; },
  };

  function sortRows() {
    const order = rows.map(function (_, i) { return i; });
    if (state.key) {
      const get = getters[state.key];
      const dir = state.dir;
      const keys = rows.map(get);
      order.sort(function (a, b) {
        const x = keys[a];
        const y = keys[b];
        const xMissing = x === null || x === undefined;
        const yMissing = y === null || y === undefined;
        if (xMissing || yMissing) return xMissing === yMissing ? a - b : (xMissing ? 1 : -1);
        if (x < y) return -dir;
        if (x > y) return dir;
        return a - b;
      });
    }
    sorted = order;
  }

  function text(r) {
    const parts = [r[F.path], label(r[F.kind]), r[F.kind], r[F.model_verdict], r[F.generator], r[F.format],
      r[F.error_reason], r[F.error_detail], r[F.engine]];
    r[F.evidence].forEach(function (f) { parts.push(f[0], f[1], f[2], f[3], f[4]); });
    return parts.join('\n').toLowerCase();
  }

  function filterRows() {
    const kind = state.kind;
    const terms = state.terms;
    if (terms.length && haystack === null) haystack = rows.map(text);
    view = sorted.filter(function (i) {
      if (kind && rows[i][F.kind] !== kind) return false;
      for (let t = 0; t < terms.length; t += 1) if (haystack[i].indexOf(terms[t]) < 0) return false;
      return true;
    });
    state.page = 0;
  }

  function update() { filterRows(); render(); }

  document.querySelectorAll('#files-table th[data-sort]').forEach(function (th) {
    th.querySelector('button').addEventListener('click', function () {
      const key = th.dataset.sort;
      state.dir = state.key === key ? -state.dir : (th.dataset.first === 'desc' ? -1 : 1);
      state.key = key;
      document.querySelectorAll('#files-table th[data-sort]').forEach(function (other) { other.setAttribute('aria-sort', 'none'); });
      th.setAttribute('aria-sort', state.dir === 1 ? 'ascending' : 'descending');
      sortRows();
      update();
    });
  });

  verdictSelect.addEventListener('change', function () { state.kind = verdictSelect.value; update(); });
  // Typing is debounced; the table says it is busy until the filter has been applied.
  const table = document.getElementById('files-table');
  let pending = null;
  search.addEventListener('input', function () {
    clearTimeout(pending);
    table.setAttribute('aria-busy', 'true');
    pending = setTimeout(function () {
      state.terms = search.value.toLowerCase().split(/\s+/).filter(Boolean);
      update();
      table.removeAttribute('aria-busy');
    }, 120);
  });
  pageSize.addEventListener('change', function () { state.size = Number(pageSize.value); state.page = 0; render(); });
  prev.addEventListener('click', function () { state.page -= 1; render(); });
  next.addEventListener('click', function () { state.page += 1; render(); });
  document.querySelectorAll('button[data-verdict]').forEach(function (button) {
    button.addEventListener('click', function () {
      verdictSelect.value = button.dataset.verdict;
      state.kind = verdictSelect.value;
      update();
      document.getElementById('files').scrollIntoView();
    });
  });

  function openDetail(i) {
    const r = rows[i];
    const kind = r[F.kind];
    document.getElementById('detail-title').textContent = r[F.path];
    const body = document.getElementById('detail-body');
    const big = el('div', 'big');
    big.appendChild(preview(r));
    const facts = el('dl', 'facts');
    const verdict = el('dd');
    verdict.appendChild(el('span', badgeClass(kind), label(kind)));
    facts.append(el('dt', null, 'Verdict'), verdict);
    fact(facts, 'Model verdict', r[F.model_verdict]);
    fact(facts, 'Score', fixed(r[F.score]));
    fact(facts, 'Threshold', rowThreshold(r));
    fact(facts, 'Crop mean', fixed(r[F.crop_mean]));
    fact(facts, 'Crop max', fixed(r[F.crop_max]));
    fact(facts, 'Generator', r[F.generator]);
    if (kind === 'error') fact(facts, 'Error', r[F.error_reason] + (r[F.error_detail] ? ': ' + r[F.error_detail] : ''));
    fact(facts, 'Format', r[F.format]);
    fact(facts, 'Dimensions', dims(r));
    fact(facts, 'Size', r[F.size] === null ? '' : bytes(r[F.size]) + ' (' + r[F.size] + ' bytes)');
    fact(facts, 'Modified', r[F.mtime] === null ? '' : new Date(r[F.mtime] * 1000).toISOString().replace('.000Z', 'Z'));
    fact(facts, 'SHA-256', r[F.sha256]);
    fact(facts, 'Detector', r[F.detector]);
    fact(facts, 'Engine', r[F.engine]);
    const parts = [big, facts];
    const findings = r[F.evidence];
    parts.push(el('h3', null, findings.length ? 'Evidence (' + findings.length + ')' : 'Evidence: none found'));
    if (findings.length) {
      const table = el('table', 'data small findings');
      const head = el('tr');
      ['Source', 'Claim', 'Strength', 'Detail', 'Generator'].forEach(function (name) { head.appendChild(el('th', null, name)); });
      table.appendChild(el('thead')).appendChild(head);
      const rowsOut = table.appendChild(el('tbody'));
      findings.forEach(function (f) {
        const tr = el('tr');
        f.forEach(function (value) { tr.appendChild(el('td', null, value)); });
        rowsOut.appendChild(tr);
      });
      parts.push(table);
    }
    body.replaceChildren.apply(body, parts);
    if (!dialog.open) dialog.showModal();
  }

  tbody.addEventListener('click', function (event) {
    const tr = event.target.closest('tr[data-row]');
    if (tr) openDetail(Number(tr.dataset.row));
  });
  tbody.addEventListener('keydown', function (event) {
    const tr = event.target.closest('tr[data-row]');
    if (tr && event.key === 'Enter') openDetail(Number(tr.dataset.row));
  });
  document.getElementById('detail-close').addEventListener('click', function () { dialog.close(); });

  render();
  document.body.dataset.ready = String(Math.round(performance.now()));
})();
