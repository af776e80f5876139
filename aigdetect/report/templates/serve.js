// The drop-a-file page of `aigdetect serve`: each chosen file is posted to /v1/inspect of this very
// service and its report drawn in the look of the scan report's detail view. Every value from a
// report or a file name is inserted as text (textContent, title), never as markup.
(function () {
  const data = JSON.parse(document.getElementById('aig-data').textContent);
  const own = function (map, key) { return Object.prototype.hasOwnProperty.call(map, key); };
  const results = document.getElementById('results');
  const status = document.getElementById('status');
  const input = document.getElementById('files');
  const drop = document.getElementById('drop');
  const token = document.getElementById('token');
  const queue = [];
  let running = 0;
  let done = 0;
  let total = 0;

  function label(kind) { return own(data.labels, kind) ? data.labels[kind] : kind; }
  function badgeClass(kind) { return 'badge v-' + (own(data.classes, kind) ? data.classes[kind] : 'other'); }
  function fixed(x) { return x === null || x === undefined ? '' : x.toFixed(4); }
  function percent(x) { return (Math.min(1, Math.max(0, x)) * 100).toFixed(1) + '%'; }

  function gauge(score, threshold, bands) {
    const wrap = el('div', 'gauge wide');
    const bar = el('div', 'bar');
    const zone = score < bands[0] ? 'real' : (score > bands[1] ? 'ai' : 'mid');
    const band = el('div', 'band');
    band.style.left = percent(bands[0]);
    band.style.width = (Math.max(0, bands[1] - bands[0]) * 100).toFixed(1) + '%';
    band.title = 'inconclusive band ' + bands[0] + ' to ' + bands[1];
    const fill = el('div', 'fill z-' + zone);
    fill.style.width = percent(score);
    const tick = el('div', 'tick');
    tick.style.left = percent(threshold);
    tick.title = 'threshold ' + threshold;
    bar.append(fill, band, tick);
    wrap.append(bar, el('span', 'value', fixed(score)));
    return wrap;
  }

  function preview(file) {
    const box = el('div', 'big');
    const placeholder = el('div', 'placeholder', 'no preview');
    box.appendChild(placeholder);
    if (file.size > data.preview_bytes) return box;
    const reader = new FileReader();
    reader.onload = function () {
      const img = el('img');
      img.alt = 'preview';
      img.onload = function () { box.replaceChildren(img); };
      img.src = String(reader.result);
    };
    reader.readAsDataURL(file);
    return box;
  }

  function findingsTable(findings) {
    const table = el('table', 'data small findings');
    const head = el('tr');
    ['Source', 'Claim', 'Strength', 'Detail', 'Generator'].forEach(function (name) { head.appendChild(el('th', null, name)); });
    table.appendChild(el('thead')).appendChild(head);
    const body = table.appendChild(el('tbody'));
    findings.forEach(function (f) {
      const tr = el('tr');
      ['source', 'claim', 'strength', 'detail', 'generator'].forEach(function (key) { tr.appendChild(el('td', null, f[key])); });
      body.appendChild(tr);
    });
    return table;
  }

  function chain(stores) {
    const box = el('div', 'chain');
    box.appendChild(el('h3', null, stores.length ? 'Content Credentials (C2PA)' : 'Content Credentials: none found'));
    stores.forEach(function (store) {
      const item = el('div', 'store' + (store.validation === 'invalid' || store.error ? ' invalid' : ''));
      const facts = el('dl', 'facts');
      if (store.error) fact(facts, 'Error', store.error);
      fact(facts, 'Where', store.where);
      fact(facts, 'Validation', store.validation);
      if (store.signer) fact(facts, 'Signer', [store.signer.common_name, store.signer.issuer].filter(Boolean).join(', issued by '));
      fact(facts, 'Claim generator', store.claim_generator);
      fact(facts, 'Title', store.title);
      (store.actions || []).forEach(function (a) {
        fact(facts, 'Action', [a.action, a.digitalSourceType, a.softwareAgent].filter(Boolean).join(' \u00b7 '));
      });
      (store.failures || []).forEach(function (f) { fact(facts, 'Failure', typeof f === 'string' ? f : JSON.stringify(f)); });
      (store.ingredients || []).forEach(function (i) { fact(facts, 'Ingredient', typeof i === 'string' ? i : JSON.stringify(i)); });
      item.appendChild(facts);
      box.appendChild(item);
    });
    return box;
  }

  function show(article, report, file) {
    const body = el('div', 'detail-body');
    body.appendChild(preview(file));
    const facts = el('dl', 'facts');
    const verdict = el('dd', 'verdict');
    const kind = report.error ? 'error' : report.verdict;
    verdict.appendChild(el('span', badgeClass(kind), label(kind)));
    if (report.generator) verdict.appendChild(el('span', 'muted', ' ' + report.generator));
    facts.append(el('dt', null, 'Verdict'), verdict);
    if (report.error) fact(facts, 'Error', report.error.reason + ': ' + report.error.detail);
    if (report.reasons.length) {
      const list = el('ul', 'reasons');
      report.reasons.forEach(function (reason) { list.appendChild(el('li', null, reason)); });
      const dd = el('dd');
      dd.appendChild(list);
      facts.append(el('dt', null, 'Reasons'), dd);
    }
    if (report.score !== null) {
      const dd = el('dd');
      dd.appendChild(gauge(report.score, report.threshold, report.bands));
      facts.append(el('dt', null, 'Score'), dd);
    }
    fact(facts, 'Model verdict', report.model_verdict);
    fact(facts, 'Threshold', report.threshold);
    fact(facts, 'Inconclusive band', report.bands[0] + ' to ' + report.bands[1]);
    fact(facts, 'Crop scores', report.crop_scores.map(fixed).join(', '));
    fact(facts, 'Format', report.format);
    fact(facts, 'Dimensions', report.width !== null && report.height !== null ? report.width + ' \u00d7 ' + report.height : '');
    fact(facts, 'Size', report.size === null ? '' : report.size + ' bytes');
    fact(facts, 'SHA-256', report.sha256);
    fact(facts, 'Detector', report.detector);
    body.appendChild(facts);
    body.appendChild(el('h3', null, report.findings.length ? 'Evidence (' + report.findings.length + ')' : 'Evidence: none found'));
    if (report.findings.length) body.appendChild(findingsTable(report.findings));
    body.appendChild(chain(report.c2pa));
    article.firstChild.firstChild.textContent = report.path;
    article.replaceChildren(article.firstChild, body);
    article.classList.remove('pending');
    article.dataset.verdict = kind;
  }

  function failed(article, message) {
    article.replaceChildren(article.firstChild, el('p', 'error-text', message));
    article.classList.remove('pending');
    article.dataset.verdict = 'refused';
  }

  function progress() {
    status.textContent = done + ' of ' + total + ' files answered';
    if (done === total) document.body.dataset.done = String(done);
  }

  function send(file, article) {
    const form = new FormData();
    form.append('files', file, file.name);
    const headers = {};
    if (token.value) headers.Authorization = 'Bearer ' + token.value;
    running += 1;
    fetch('v1/inspect', { method: 'POST', body: form, headers: headers, credentials: 'omit' })
      .then(function (response) {
        return response.json().then(function (body) {
          if (response.ok && Array.isArray(body) && body.length === 1) show(article, body[0], file);
          else failed(article, 'refused (' + response.status + '): ' + (body && body.detail ? body.detail : 'no detail'));
        }, function () { failed(article, 'refused (' + response.status + ')'); });
      }, function (error) { failed(article, 'the service did not answer: ' + error); })
      .finally(function () { running -= 1; done += 1; progress(); pump(); });
  }

  function pump() {
    while (running < data.parallel && queue.length) {
      const next = queue.shift();
      send(next[0], next[1]);
    }
  }

  function accept(files) {
    Array.from(files).forEach(function (file) {
      const article = el('article', 'result pending');
      const head = el('div', 'detail-head');
      head.appendChild(el('h2', null, file.name));
      article.append(head, el('p', 'muted', 'scoring\u2026'));
      results.prepend(article);
      queue.push([file, article]);
      total += 1;
    });
    delete document.body.dataset.done;
    progress();
    pump();
  }

  input.addEventListener('change', function () { accept(input.files); input.value = ''; });
  ['dragenter', 'dragover'].forEach(function (name) {
    drop.addEventListener(name, function (event) { event.preventDefault(); drop.classList.add('over'); });
  });
  ['dragleave', 'drop'].forEach(function (name) {
    drop.addEventListener(name, function () { drop.classList.remove('over'); });
  });
  drop.addEventListener('drop', function (event) {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) accept(event.dataTransfer.files);
  });
  document.body.dataset.ready = '1';
})();
