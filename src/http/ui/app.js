// Coordinator pages. No framework and no build step: this file is served as is.
//
// Rules kept throughout: the bearer token lives in sessionStorage only (this
// tab; never a cookie, so no other site can make requests with it); every
// piece of data reaches the page through textContent or DOM building, never
// as HTML, so a record note such as <script> shows as text.
'use strict';

(function () {
  const SESSION_KEY = 'coordinator.session';
  const NOTICE_KEY = 'coordinator.notice';
  const ADMIN_REFRESH_MS = 5000;
  const EVENTS_REFRESH_MS = 2000;
  const KEYS_REFRESH_MS = 5000;
  const CONFIRM_MS = 5000;
  const MAX_RECORDS_SHOWN = 200;

  const PAGES = {
    '/': 'login',
    '/login': 'login',
    '/drafts': 'drafts',
    '/admin/drafts': 'admin-drafts',
    '/admin/activity': 'activity',
  };
  const ADMIN_PAGES = new Set(['admin-drafts', 'activity']);

  // ---- session ---------------------------------------------------------

  const session = {
    get() {
      try {
        const raw = sessionStorage.getItem(SESSION_KEY);
        const s = raw ? JSON.parse(raw) : null;
        if (!s || typeof s.token !== 'string') return null;
        if (s.expiresAt && Date.parse(s.expiresAt) <= Date.now()) return null;
        return s;
      } catch (_) {
        return null;
      }
    },
    set(s) { sessionStorage.setItem(SESSION_KEY, JSON.stringify(s)); },
    clear() { sessionStorage.removeItem(SESSION_KEY); },
  };

  class SessionEnded extends Error {}

  function goToLogin(message) {
    session.clear();
    if (message) sessionStorage.setItem(NOTICE_KEY, message);
    const next = location.pathname + location.search;
    location.replace(PAGES[location.pathname] === 'login' ? '/' : '/?next=' + encodeURIComponent(next));
  }

  // ---- API -------------------------------------------------------------

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const s = session.get();
    if (s) headers.Authorization = 'Bearer ' + s.token;
    const init = { method, headers, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (_) {
      return { status: 0, ok: false, data: { error: 'network', message: 'The coordinator cannot be reached.' } };
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = { error: 'bad_response', message: text.slice(0, 200) };
      }
    }
    if (response.status === 401 && path !== '/api/login') {
      goToLogin('Your session has ended. Please sign in again.');
      throw new SessionEnded();
    }
    return { status: response.status, ok: response.ok, data };
  }

  function errorText(result) {
    const d = result.data || {};
    if (d.message && d.error) return d.message + ' (' + d.error + ')';
    return d.message || d.error || 'HTTP ' + result.status;
  }

  // ---- DOM helpers -----------------------------------------------------

  const $ = (selector, root) => (root || document).querySelector(selector);

  // el('td', {className: 'num', title: '...'}, 'text', childNode, ...)
  // Strings become text nodes: nothing here is ever parsed as HTML.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'dataset') {
        for (const [key, data] of Object.entries(value)) if (data !== undefined && data !== null) node.dataset[key] = String(data);
      }
      else if (name === 'onclick') node.addEventListener('click', value);
      else if (name in node && name !== 'list') node[name] = value;
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function cell(label, props, ...children) {
    return el('td', Object.assign({ 'data-label': label }, props || {}), ...children);
  }

  function pad(n) { return String(n).padStart(2, '0'); }

  function formatTime(iso, withDate) {
    const at = new Date(iso);
    if (!iso || Number.isNaN(at.getTime())) return iso ? String(iso) : '—';
    const time = pad(at.getHours()) + ':' + pad(at.getMinutes()) + ':' + pad(at.getSeconds());
    if (withDate === false) return time;
    return at.getFullYear() + '-' + pad(at.getMonth() + 1) + '-' + pad(at.getDate()) + ' ' + time;
  }

  function timeCell(label, iso, withDate) {
    return cell(label, { className: 'nowrap' }, el('time', { dateTime: iso || '', title: iso || '' }, formatTime(iso, withDate)));
  }

  function idText(id) {
    return typeof id === 'string' ? id : JSON.stringify(id);
  }

  function chips(ids, className) {
    if (!ids || ids.length === 0) return [el('span', { className: 'muted' }, 'none')];
    return ids.map((id) => el('span', { className: 'chip' + (className ? ' ' + className : '') }, idText(id)));
  }

  function setStatus(node, text, kind) {
    node.textContent = text || '';
    node.className = 'status' + (kind ? ' ' + kind : '');
  }

  function showNotice(text) {
    const node = $('#notice');
    node.textContent = text || '';
    node.hidden = !text;
  }

  function reasonBadge(reason) {
    const kind = reason === 'conflict' ? 'warn' : reason === 'write_failed' ? 'bad' : '';
    return el('span', { className: 'badge ' + kind }, reason || '—');
  }

  // ---- drafts table (shared by My drafts and Storage Drafts) ----------

  // One table of drafts with its actions. `mode` is 'mine' or 'admin'.
  class DraftTable {
    constructor(mode, table, statusNode, emptyNode) {
      this.mode = mode;
      this.tbody = $('tbody', table);
      this.statusNode = statusNode;
      this.emptyNode = emptyNode;
      this.drafts = [];
      this.expanded = new Set(); // ids whose detail row is open
      this.details = new Map(); // id -> the GET .../drafts/{id} answer: the draft and its diff
      this.outcomes = new Map(); // id -> the last submit's answer when it did not save
      this.busy = new Set(); // ids with a request in flight
      this.confirming = null; // { id, timer } while a Discard waits for its second click
      this.onChange = () => {};
    }

    base() { return this.mode === 'admin' ? '/api/admin/drafts/' : '/api/drafts/'; }

    setDrafts(drafts) {
      this.drafts = drafts;
      const ids = new Set(drafts.map((d) => d.id));
      for (const id of [...this.expanded]) if (!ids.has(id)) this.expanded.delete(id);
      for (const id of [...this.outcomes.keys()]) if (!ids.has(id)) this.outcomes.delete(id);
      this.render();
      // Open rows follow the current value: their comparison may have changed.
      for (const id of this.expanded) this.loadDetail(id).catch(ignoreSessionEnd);
    }

    render() {
      const rows = [];
      for (const draft of this.drafts) {
        rows.push(this.row(draft));
        if (this.expanded.has(draft.id)) rows.push(this.detailRow(draft));
      }
      this.tbody.replaceChildren(...rows);
      this.emptyNode.hidden = this.drafts.length > 0;
    }

    row(draft) {
      const open = this.expanded.has(draft.id);
      const outcome = this.outcomes.get(draft.id);
      const busy = this.busy.has(draft.id);
      const confirming = this.confirming && this.confirming.id === draft.id;
      const tr = el('tr', {
        className: 'draft' + (busy ? ' busy' : '') + (outcome ? ' conflicting' : ''),
        dataset: { id: draft.id },
      });
      tr.append(cell('', { className: 'toggle-cell' }, el('button', {
        type: 'button',
        className: 'toggle',
        'aria-expanded': String(open),
        title: open ? 'Hide what this draft changes' : 'Show what this draft changes',
        onclick: () => this.toggle(draft.id),
      }, open ? '▾' : '▸', el('span', { className: 'toggle-label' }, open ? ' Hide details' : ' Details'))));
      if (this.mode === 'admin') tr.append(cell('User', { className: 'user' }, draft.username));
      tr.append(
        cell('Key', { className: 'key' }, el('code', {}, draft.key)),
        cell('Reason', {}, reasonBadge(draft.reason)),
        timeCell('Created', draft.createdAt),
        cell('Records', { className: 'num records' }, draft.incomingCount == null ? '—' : String(draft.incomingCount)),
        cell('Attempts', { className: 'num attempts' }, String(draft.attempts)),
        cell('Last error', { className: 'last-error' }, el('div', {}, this.errorContent(draft, outcome))),
        cell('Actions', { className: 'actions' },
          el('button', { type: 'button', className: 'submit', disabled: busy, onclick: () => this.submit(draft.id) }, 'Submit'),
          el('button', {
            type: 'button',
            className: 'discard danger' + (confirming ? ' confirm' : ''),
            disabled: busy,
            onclick: () => this.discard(draft.id),
          }, confirming ? 'Really discard?' : 'Discard'),
        ),
      );
      return tr;
    }

    errorContent(draft, outcome) {
      const parts = [];
      if (draft.lastError) parts.push(el('div', { className: 'error-text' }, draft.lastError));
      if (outcome) {
        const o = el('div', { className: 'outcome' });
        if (outcome.status === 'conflict') {
          o.append(el('span', { className: 'label' }, 'Still conflicting'), ' (' + (outcome.error || 'conflict') + ')');
          if (outcome.conflictingIds && outcome.conflictingIds.length) {
            o.append(el('div', { className: 'conflicting-ids' }, 'Records changed by someone else too: ', chips(outcome.conflictingIds, 'bad')));
          }
        } else {
          o.append(el('span', { className: 'label' }, 'Not saved: '), outcome.message || outcome.error || outcome.status);
        }
        parts.push(o);
      }
      if (parts.length === 0) parts.push(el('span', { className: 'muted' }, '—'));
      return parts;
    }

    detailRow(draft) {
      const span = this.mode === 'admin' ? 9 : 8;
      const body = el('div', { className: 'detail-body' });
      const detail = this.details.get(draft.id);
      if (detail) body.append(...this.describe(detail, draft));
      else body.append(el('p', { className: 'detail-note' }, 'Loading…'));
      return el('tr', { className: 'detail', dataset: { for: draft.id } }, el('td', { colSpan: span }, body));
    }

    // What a submit would add, change and remove in the current value (the
    // server's `diff`), then the draft's records as text.
    describe(detail, listed) {
      const out = [];
      const draft = detail.draft || listed;
      const diff = detail.diff;
      const status = new Map();
      if (diff) {
        const current = detail.currentVersion == null ? 'the key does not exist yet' : 'current version ' + detail.currentVersion;
        if (diff.mergeable === false) {
          out.push(el('p', { className: 'detail-note conflict-note' }, 'Would not save as it is (' + current +
            '): the records marked in conflict were changed by someone else too. Below, what this draft changes compared with the version it started from.'));
        } else {
          out.push(el('p', { className: 'detail-note' }, 'What submitting would do to the stored data (' + current + '):'));
        }
        const group = (name, label, ids, bad) => el('div', { className: name },
          el('span', { className: 'label' }, label + ' (' + (ids ? ids.length : 0) + ')'), chips(ids, bad ? 'bad' : ''));
        const groups = [group('added', 'Adds', diff.added), group('changed', 'Changes', diff.changed), group('removed', 'Removes', diff.removed)];
        if (diff.conflictingIds && diff.conflictingIds.length) groups.push(group('conflicting', 'In conflict', diff.conflictingIds, true));
        out.push(el('div', { className: 'diff' }, groups));
        for (const id of diff.added || []) status.set(idText(id), ['added', 'ok']);
        for (const id of diff.changed || []) status.set(idText(id), ['changed', 'warn']);
        for (const id of diff.conflictingIds || []) status.set(idText(id), ['conflict', 'bad']);
      } else {
        out.push(el('p', { className: 'detail-note' }, 'The server sent no comparison with the current value; these are the records this draft holds.'));
      }
      const payload = draft.payload;
      if (Array.isArray(payload)) {
        const list = el('ol', { className: 'records' });
        for (const record of payload.slice(0, MAX_RECORDS_SHOWN)) {
          const id = record && typeof record === 'object' && 'id' in record ? idText(record.id) : null;
          const tag = id !== null ? status.get(id) : null;
          list.append(el('li', { className: 'record' },
            id !== null ? el('span', { className: 'chip' }, id) : null,
            tag ? el('span', { className: 'badge ' + tag[1] }, tag[0]) : null,
            el('span', { className: 'record-text mono' }, JSON.stringify(record))));
        }
        if (payload.length > MAX_RECORDS_SHOWN) {
          list.append(el('li', { className: 'muted' }, '… and ' + (payload.length - MAX_RECORDS_SHOWN) + ' more'));
        }
        if (payload.length === 0) list.append(el('li', { className: 'muted' }, 'The draft is an empty list.'));
        out.push(list);
      } else if (payload !== undefined) {
        out.push(el('pre', { className: 'record-text mono' }, JSON.stringify(payload, null, 2).slice(0, 20000)));
      }
      return out;
    }

    async toggle(id) {
      if (this.expanded.has(id)) {
        this.expanded.delete(id);
        this.render();
        return;
      }
      this.expanded.add(id);
      this.render();
      await this.loadDetail(id);
    }

    async loadDetail(id) {
      const result = await api('GET', this.base() + encodeURIComponent(id));
      if (!this.expanded.has(id)) return;
      if (result.ok) {
        this.details.set(id, result.data);
      } else if (result.status !== 404) {
        setStatus(this.statusNode, 'Could not load the draft: ' + errorText(result), 'bad');
      }
      this.render();
    }

    // Applies one submit answer; returns 'saved', 'conflict', 'gone' or 'failed'.
    apply(id, status, data) {
      const d = data || {};
      if (d.status === 'saved') {
        this.outcomes.delete(id);
        this.drafts = this.drafts.filter((x) => x.id !== id);
        this.expanded.delete(id);
        return 'saved';
      }
      if (d.status === 'not_found' || status === 404) {
        this.drafts = this.drafts.filter((x) => x.id !== id);
        return 'gone';
      }
      if (d.status === 'conflict') {
        this.outcomes.set(id, d);
        return 'conflict';
      }
      this.outcomes.set(id, { status: 'failed', error: d.error, message: d.message || 'the coordinator could not store it now; try again' });
      return 'failed';
    }

    async submit(id) {
      const draft = this.drafts.find((d) => d.id === id);
      this.busy.add(id);
      this.render();
      let outcome;
      try {
        const result = await api('POST', this.base() + encodeURIComponent(id) + '/submit');
        outcome = this.apply(id, result.status, result.data);
        if (outcome === 'saved') {
          setStatus(this.statusNode, 'Saved the draft for ' + (draft ? draft.key : 'the key') + ' (now version ' + result.data.version + ').', 'ok');
        } else if (outcome === 'gone') {
          setStatus(this.statusNode, 'That draft was already gone (submitted or discarded elsewhere).', '');
        } else if (outcome === 'conflict') {
          setStatus(this.statusNode, 'Not saved: ' + (result.data.message || 'it still conflicts'), 'bad');
        } else {
          setStatus(this.statusNode, 'Not saved: ' + errorText(result), 'bad');
        }
      } finally {
        this.busy.delete(id);
        this.render();
      }
      this.onChange();
    }

    async discard(id) {
      if (!this.confirming || this.confirming.id !== id) {
        if (this.confirming) clearTimeout(this.confirming.timer);
        const timer = setTimeout(() => { this.confirming = null; this.render(); }, CONFIRM_MS);
        this.confirming = { id, timer };
        this.render();
        return;
      }
      clearTimeout(this.confirming.timer);
      this.confirming = null;
      this.busy.add(id);
      this.render();
      try {
        const result = await api('DELETE', this.base() + encodeURIComponent(id));
        if (result.ok || result.status === 404) {
          this.drafts = this.drafts.filter((x) => x.id !== id);
          this.expanded.delete(id);
          this.outcomes.delete(id);
          setStatus(this.statusNode, result.ok ? 'Draft discarded.' : 'That draft was already gone.', result.ok ? 'ok' : '');
        } else {
          setStatus(this.statusNode, 'Could not discard: ' + errorText(result), 'bad');
        }
      } finally {
        this.busy.delete(id);
        this.render();
      }
      this.onChange();
    }

    summarize(counts) {
      const parts = [];
      if (counts.saved) parts.push(counts.saved + ' saved');
      if (counts.conflict) parts.push(counts.conflict + ' still conflicting');
      if (counts.failed) parts.push(counts.failed + ' failed');
      if (counts.gone) parts.push(counts.gone + ' already gone');
      const total = counts.saved + counts.conflict + counts.failed + counts.gone;
      if (total === 0) return ['There was nothing to submit.', ''];
      return [total + ' submitted: ' + parts.join(', ') + '.', counts.conflict || counts.failed ? 'bad' : 'ok'];
    }
  }

  function emptyCounts() { return { saved: 0, conflict: 0, failed: 0, gone: 0 }; }

  // ---- pages -----------------------------------------------------------

  function initLogin() {
    const s = session.get();
    const params = new URLSearchParams(location.search);
    const next = params.get('next');
    const safeNext = next && next.startsWith('/') && !next.startsWith('//') && PAGES[next.split('?')[0]] && PAGES[next.split('?')[0]] !== 'login' ? next : null;
    if (s) {
      location.replace(safeNext || homeOf(s));
      return;
    }
    const notice = sessionStorage.getItem(NOTICE_KEY);
    if (notice) {
      sessionStorage.removeItem(NOTICE_KEY);
      showNotice(notice);
    }
    const form = $('#login-form');
    const error = $('#login-error');
    const button = $('#login-submit');
    $('#login-username').focus();
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.hidden = true;
      button.disabled = true;
      try {
        const result = await api('POST', '/api/login', {
          username: $('#login-username').value.trim(),
          password: $('#login-password').value,
        });
        if (!result.ok) {
          error.textContent = result.status === 401 ? 'Unknown user or wrong password.' : 'Could not sign in: ' + errorText(result);
          error.hidden = false;
          return;
        }
        const d = result.data;
        session.set({ token: d.token, username: d.username, role: d.role, expiresAt: d.expiresAt });
        location.replace(safeNext || homeOf(d));
      } finally {
        button.disabled = false;
      }
    });
  }

  function homeOf(s) { return s.role === 'admin' ? '/admin/drafts' : '/drafts'; }

  function initHeader(s, page) {
    $('#bar').hidden = false;
    $('#who-name').textContent = s.username;
    for (const link of document.querySelectorAll('.nav a')) {
      if (link.hasAttribute('data-admin')) link.hidden = s.role !== 'admin';
      if (link.dataset.page === page) link.setAttribute('aria-current', 'page');
    }
    $('.brand').href = homeOf(s);
    $('#logout').addEventListener('click', async () => {
      // Revoke the token on the server too; the page forgets it either way.
      try {
        await fetch('/api/logout', { method: 'POST', headers: { Authorization: 'Bearer ' + s.token }, cache: 'no-store', credentials: 'omit' });
      } catch (_) {
        // Offline: the token still expires on its own.
      }
      session.clear();
      location.replace('/');
    });
  }

  async function initMyDrafts() {
    const status = $('#drafts-status');
    const table = new DraftTable('mine', $('#drafts-table'), status, $('#drafts-empty'));
    const submitAll = $('#drafts-submit-all');

    async function load() {
      const result = await api('GET', '/api/drafts');
      if (!result.ok) {
        setStatus(status, 'Could not load your drafts: ' + errorText(result), 'bad');
        return;
      }
      table.setDrafts(result.data.drafts || []);
      submitAll.disabled = table.drafts.length === 0;
    }
    table.onChange = () => { load().catch(ignoreSessionEnd); };

    submitAll.addEventListener('click', async () => {
      submitAll.disabled = true;
      setStatus(status, 'Submitting all drafts…', '');
      try {
        const result = await api('POST', '/api/drafts/submit-all');
        if (!result.ok) {
          setStatus(status, 'Submit all failed: ' + errorText(result), 'bad');
          return;
        }
        const counts = emptyCounts();
        for (const r of result.data.results || []) counts[table.apply(r.draftId, 0, r)] += 1;
        table.render();
        const [text, kind] = table.summarize(counts);
        setStatus(status, text, kind);
      } finally {
        submitAll.disabled = false;
        await load();
      }
    });
    await load();
  }

  async function initAdminDrafts() {
    const status = $('#admin-status');
    const table = new DraftTable('admin', $('#admin-drafts-table'), status, $('#admin-empty'));
    const form = $('#admin-filter');
    const auto = $('#admin-auto');
    const updated = $('#admin-updated');
    const submitShown = $('#admin-submit-shown');
    const params = new URLSearchParams(location.search);
    $('#filter-key').value = params.get('key') || '';
    $('#filter-user').value = params.get('username') || '';
    $('#filter-reason').value = params.get('reason') || '';
    let loading = false;

    function filters() {
      const q = new URLSearchParams();
      for (const [name, input] of [['key', '#filter-key'], ['username', '#filter-user'], ['reason', '#filter-reason']]) {
        const value = $(input).value.trim();
        if (value) q.set(name, value);
      }
      return q;
    }

    function setFilter(name, value) {
      $('#filter-key').value = name === 'key' ? value : '';
      $('#filter-user').value = '';
      $('#filter-reason').value = name === 'reason' ? value : '';
      applyFilters();
    }

    function renderStats(stats) {
      $('#stat-total').textContent = String(stats.total);
      const rows = (entries, name) => {
        const sorted = Object.entries(entries || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
        if (sorted.length === 0) return [el('tr', {}, el('td', { className: 'muted' }, 'none'))];
        return sorted.map(([value, count]) => el('tr', { dataset: { [name]: value } },
          el('td', {}, el('button', { type: 'button', className: 'link', title: 'Show only these', onclick: () => setFilter(name, value) }, value)),
          el('td', { className: 'num' }, String(count))));
      };
      $('#stats-reason tbody').replaceChildren(...rows(stats.byReason, 'reason'));
      $('#stats-key tbody').replaceChildren(...rows(stats.byKey, 'key'));
    }

    async function load() {
      if (loading) return;
      loading = true;
      try {
        const q = filters();
        q.set('limit', '500');
        const [stats, list] = await Promise.all([
          api('GET', '/api/admin/drafts/stats'),
          api('GET', '/api/admin/drafts?' + q.toString()),
        ]);
        if (stats.status === 403 || list.status === 403) {
          showPage('forbidden');
          return;
        }
        if (stats.ok) renderStats(stats.data);
        if (list.ok) {
          table.setDrafts(list.data.drafts || []);
          const n = table.drafts.length;
          $('#admin-list-title').textContent = n + (n === 1 ? ' draft' : ' drafts') + (q.toString().replace(/&?limit=500/, '') ? ' matching the filters' : '');
          submitShown.disabled = n === 0;
        } else {
          setStatus(status, 'Could not load drafts: ' + errorText(list), 'bad');
        }
        updated.textContent = 'Updated ' + formatTime(new Date().toISOString(), false);
      } finally {
        loading = false;
      }
    }
    table.onChange = () => { load().catch(ignoreSessionEnd); };

    function applyFilters() {
      const q = filters();
      history.replaceState(null, '', '/admin/drafts' + (q.toString() ? '?' + q.toString() : ''));
      load().catch(ignoreSessionEnd);
    }
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      applyFilters();
    });
    $('#filter-reason').addEventListener('change', applyFilters);
    $('#filter-clear').addEventListener('click', () => {
      form.reset();
      applyFilters();
    });

    submitShown.addEventListener('click', async () => {
      submitShown.disabled = true;
      const counts = emptyCounts();
      // Oldest first, as the server's own submit-all does.
      const ids = table.drafts.slice().sort((a, b) => a.createdAt.localeCompare(b.createdAt)).map((d) => d.id);
      setStatus(status, 'Submitting ' + ids.length + ' drafts…', '');
      try {
        for (const id of ids) {
          const result = await api('POST', '/api/admin/drafts/' + encodeURIComponent(id) + '/submit');
          counts[table.apply(id, result.status, result.data)] += 1;
          table.render();
        }
        const [text, kind] = table.summarize(counts);
        setStatus(status, text, kind);
      } finally {
        submitShown.disabled = false;
        await load();
      }
    });

    every(ADMIN_REFRESH_MS, () => auto.checked, load);
    auto.addEventListener('change', () => { if (auto.checked) load().catch(ignoreSessionEnd); });
    await load();
  }

  const EVENT_KINDS = {
    storage_write: ['write', 'ok'],
    storage_conflict: ['conflict', 'warn'],
    storage_pending_draft_saved: ['draft saved', 'info'],
    storage_pending_draft_failed: ['draft failed', 'bad'],
    storage_write_failed: ['write failed', 'bad'],
    storage_draft_recovered: ['draft recovered', 'ok'],
    storage_draft_conflict: ['draft still conflicts', 'warn'],
    storage_draft_discarded: ['draft discarded', ''],
    storage_draft_submit_failed: ['draft submit failed', 'bad'],
  };

  async function initActivity() {
    const live = $('#activity-live');
    const updated = $('#activity-updated');
    let newestSeen = null;

    function mono(text, truncate) {
      if (text === undefined || text === null || text === '') return el('span', { className: 'muted' }, '—');
      return el('code', { className: truncate ? 'trunc' : '', title: truncate ? String(text) : undefined }, String(text));
    }

    function eventRow(e, isNew) {
      const kind = EVENT_KINDS[e.event] || [e.event, ''];
      let version = '—';
      if (e.version != null) version = 'v' + e.version;
      else if (e.currentVersion != null) version = 'current v' + e.currentVersion;
      const detail = [];
      if (e.error) detail.push(String(e.error));
      if (e.reason) detail.push('reason ' + e.reason);
      if (e.submittedBy && e.submittedBy !== e.username) detail.push('by ' + e.submittedBy);
      if (e.discardedBy && e.discardedBy !== e.username) detail.push('by ' + e.discardedBy);
      if (e.statusCode) detail.push('HTTP ' + e.statusCode);
      return el('tr', { className: isNew ? 'new' : '', dataset: { event: e.event, seq: e.seq, key: e.key, draft: e.draftId } },
        timeCell('Time', e.time, false),
        cell('Event', {}, el('span', { className: 'badge ' + kind[1], title: e.event }, kind[0])),
        cell('User', { className: 'user' }, e.username || '—'),
        cell('Key', {}, mono(e.key)),
        cell('Version', { className: 'num' }, version),
        cell('Transaction', {}, mono(e.transactionId, true)),
        cell('Draft', {}, mono(e.draftId, true)),
        cell('Detail', { className: 'muted' }, detail.join(' · ') || '—'));
    }

    async function loadEvents() {
      const result = await api('GET', '/api/admin/events?limit=200');
      if (result.status === 403) {
        showPage('forbidden');
        return;
      }
      if (!result.ok) {
        showNotice('Could not load events: ' + errorText(result));
        return;
      }
      showNotice('');
      const events = result.data.events || [];
      $('#activity-capacity').textContent = String(result.data.capacity);
      const rows = events.map((e) => eventRow(e, newestSeen !== null && e.seq > newestSeen));
      if (events.length) newestSeen = events[0].seq;
      $('#events-table tbody').replaceChildren(...rows);
      $('#events-empty').hidden = events.length > 0;
      updated.textContent = 'Updated ' + formatTime(new Date().toISOString(), false);
    }

    async function loadKeys() {
      const result = await api('GET', '/api/admin/keys');
      if (!result.ok) return;
      const keys = result.data.keys || [];
      $('#keys-table tbody').replaceChildren(...keys.map((k) => el('tr', { dataset: { key: k.key } },
        cell('Key', {}, el('code', {}, k.key)),
        cell('Version', { className: 'num version' }, String(k.version)),
        timeCell('Last update', k.updatedAt),
        cell('By', {}, k.updatedBy),
        cell('Records', { className: 'num' }, k.recordCount == null ? '—' : String(k.recordCount)),
        cell('Transaction', {}, mono(k.transactionId, true)))));
      $('#keys-empty').hidden = keys.length > 0;
    }

    every(EVENTS_REFRESH_MS, () => live.checked, loadEvents);
    every(KEYS_REFRESH_MS, () => live.checked, loadKeys);
    live.addEventListener('change', () => {
      if (live.checked) Promise.all([loadEvents(), loadKeys()]).catch(ignoreSessionEnd);
    });
    await Promise.all([loadEvents(), loadKeys()]);
  }

  // Runs `task` every `ms` while `enabled()` and the tab is visible, never
  // two at once.
  function every(ms, enabled, task) {
    let running = false;
    setInterval(async () => {
      if (running || document.hidden || !enabled()) return;
      running = true;
      try {
        await task();
      } catch (error) {
        ignoreSessionEnd(error);
      } finally {
        running = false;
      }
    }, ms);
  }

  function ignoreSessionEnd(error) {
    if (!(error instanceof SessionEnded)) throw error;
  }

  function showPage(page) {
    for (const section of document.querySelectorAll('section.page')) section.hidden = section.id !== 'page-' + page;
    document.body.dataset.page = page;
    const titles = { login: 'Sign in', drafts: 'My drafts', 'admin-drafts': 'Storage Drafts', activity: 'Activity', forbidden: 'For admins only' };
    document.title = (titles[page] || 'Not found') + ' · Coordinator';
  }

  async function start() {
    const page = PAGES[location.pathname];
    if (!page) {
      location.replace('/');
      return;
    }
    if (page === 'login') {
      showPage('login');
      initLogin();
      return;
    }
    const s = session.get();
    if (!s) {
      goToLogin(null);
      return;
    }
    initHeader(s, page);
    if (ADMIN_PAGES.has(page) && s.role !== 'admin') {
      showPage('forbidden');
      return;
    }
    showPage(page);
    try {
      if (page === 'drafts') await initMyDrafts();
      else if (page === 'admin-drafts') await initAdminDrafts();
      else if (page === 'activity') await initActivity();
      document.body.dataset.ready = 'true';
    } catch (error) {
      ignoreSessionEnd(error);
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    start().catch((error) => {
      if (!(error instanceof SessionEnded)) showNotice('Something went wrong: ' + error.message);
    });
  });
})();
