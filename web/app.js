// cvmm web console: plain JavaScript, no framework, served by cvmmd from
// memory (core/web.c). The token lives in sessionStorage (this tab only) and
// goes in an Authorization header on every API call; EventSource and
// WebSocket cannot send headers, so those two carry it as ?access_token=,
// which the daemon accepts on exactly those two routes.
'use strict';

const $ = (id) => document.getElementById(id);
const KEY = 'cvmm.token';
let token = sessionStorage.getItem(KEY);
let host = null;
let vms = [];
let events = null;
let term = null; // {vm, ws, decoder}

// ---- helpers ----

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Calls the API; an error answer becomes an ApiError carrying the daemon's
// own message, shown to the user as it is.
async function api(method, path, body, tok = token) {
  const headers = {};
  if (tok) headers.Authorization = 'Bearer ' + tok;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method, headers, cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let o = null;
  try { o = text ? JSON.parse(text) : null; } catch (e) { o = null; }
  if (!r.ok) {
    const err = o && o.error ? o.error : { code: 'http_' + r.status, message: text || r.statusText };
    throw new ApiError(r.status, err.code, err.message);
  }
  return o;
}

function showError(e) {
  const msg = e instanceof ApiError ? `${e.status} ${e.code}: ${e.message}` : String(e.message || e);
  $('error-text').textContent = msg;
  $('error').hidden = false;
}

function fmtMem(mb) {
  return mb >= 1024 && mb % 1024 === 0 ? `${mb / 1024} GiB` : `${mb} MiB`;
}

function fmtDuration(s) {
  s = Math.max(0, Math.floor(s));
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  const sec = s % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${sec}s`;
  return `${sec}s`;
}

function withToken(path) {
  return token ? `${path}${path.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(token)}` : path;
}

// ---- login ----

function takeTokenFromUrl() {
  // dstack's ?token= on the first load: kept for the tab, then removed
  // from the address bar (and history) so that it is not bookmarked/shared.
  const u = new URL(location.href);
  const t = u.searchParams.get('token');
  if (t === null) return;
  u.searchParams.delete('token');
  history.replaceState(null, '', u.pathname + (u.search || '') + u.hash);
  if (t) {
    token = t;
    sessionStorage.setItem(KEY, t);
  }
}

function showLogin(message) {
  $('app').hidden = true;
  $('logout').hidden = true;
  $('login-view').hidden = false;
  $('login-error').textContent = message || '';
  $('token').focus();
}

async function login(ev) {
  ev.preventDefault();
  const t = $('token').value.trim();
  $('login-error').textContent = '';
  try {
    await api('GET', '/v1/host', undefined, t);
  } catch (e) {
    $('login-error').textContent = e instanceof ApiError ? `${e.status} ${e.code}: ${e.message}` : String(e);
    return;
  }
  token = t;
  sessionStorage.setItem(KEY, t);
  $('token').value = '';
  start();
}

function logout() {
  sessionStorage.removeItem(KEY);
  token = null;
  if (events) events.close();
  events = null;
  detachConsole();
  showLogin('Logged out.');
}

// ---- VM table ----

function cellList(items) {
  return items.length ? items.join(', ') : '—';
}

function appUrl(vm) {
  for (const v of Object.values(vm)) if (v && typeof v === 'object' && typeof v.app_url === 'string' && v.app_url) return v.app_url;
  return '';
}

function gpus(vm) {
  const g = vm.gpus;
  if (Array.isArray(g)) return g.map((x) => (typeof x === 'string' ? x : x.address || x.slot || x.name || JSON.stringify(x)));
  if (g && typeof g === 'object') {
    const list = g.devices || g.gpus || g.assigned;
    if (Array.isArray(list)) return list.map((x) => (typeof x === 'string' ? x : x.address || x.slot || JSON.stringify(x)));
  }
  return [];
}

const ACTIONS = [
  ['start', 'POST', (vm) => !['running', 'starting', 'paused'].includes(vm.state)],
  ['stop', 'POST', (vm) => ['running', 'starting', 'paused'].includes(vm.state)],
  ['restart', 'POST', (vm) => vm.state === 'running'],
  ['kill', 'POST', (vm) => ['running', 'starting', 'stopping', 'paused'].includes(vm.state)],
  ['remove', 'DELETE', () => true],
];

async function action(vm, name, method) {
  if (name === 'remove' && !confirm(`Remove VM '${vm.name}' and its disk?`)) return;
  try {
    const path = `/v1/vms/${encodeURIComponent(vm.id)}` + (name === 'remove' ? '' : `/${name}`);
    await api(method, path);
  } catch (e) {
    showError(e);
  }
  refreshVms();
}

function uptimeText(vm) {
  return vm.state === 'running' && vm.started ? fmtDuration(Date.now() / 1000 - vm.started) : '—';
}

function renderVms() {
  const tb = $('vms').tBodies[0];
  tb.replaceChildren();
  for (const vm of vms) {
    const nets = (vm.nics || vm.networks || []).map((n) => n.mode + (n.address ? ` ${n.address}` : ''));
    const ports = (vm.ports || []).map((p) => `${p.protocol}:${p.host_port}→${p.vm_port}`);
    const url = appUrl(vm);
    const buttons = ACTIONS.map(([name, method, ok]) =>
      el('button', { type: 'button', 'data-action': name, class: name === 'kill' || name === 'remove' ? 'danger' : '',
        ...(ok(vm) ? {} : { disabled: '' }), onclick: () => action(vm, name, method) }, name));
    buttons.push(el('button', { type: 'button', 'data-action': 'console', onclick: () => openConsole(vm) }, 'console'));
    const job = vm.job && vm.job.op ? ` (${vm.job.op}${vm.job.waiting ? ' waiting' : ''})` : '';
    tb.append(el('tr', { 'data-name': vm.name, 'data-state': vm.state, class: term && term.vm.id === vm.id ? 'selected' : '' },
      el('td', {}, vm.name),
      el('td', { class: `state state-${vm.state}`, title: vm.reason || '' }, vm.state + job),
      el('td', { class: 'num' }, String(vm.vcpu)),
      el('td', { class: 'num' }, fmtMem(vm.memory_mb)),
      el('td', {}, vm.backend || ''),
      el('td', {}, cellList(nets)),
      el('td', {}, cellList(ports)),
      el('td', {}, cellList(gpus(vm))),
      el('td', {}, url ? el('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, url) : '—'),
      el('td', { class: 'uptime num' }, uptimeText(vm)),
      el('td', { class: 'actions' }, ...buttons)));
  }
  $('vms-empty').hidden = vms.length > 0;
}

let refreshTimer = null;
function refreshVms() {
  // Events come in bursts (a start is several): one refresh per burst.
  if (refreshTimer) return;
  refreshTimer = setTimeout(async () => {
    refreshTimer = null;
    try {
      const o = await api('GET', '/v1/vms');
      vms = (o.vms || []).sort((a, b) => a.name.localeCompare(b.name));
      renderVms();
      syncConsole();
      await refreshHost(); // its usage counts follow the VMs
    } catch (e) {
      if (e.status === 401) showLogin(`${e.status} ${e.code}: ${e.message}`);
      else showError(e);
    }
  }, 150);
}

// ---- host and plugins ----

async function refreshHost() {
  host = await api('GET', '/v1/host');
  const dl = $('host');
  dl.replaceChildren();
  const row = (k, v) => dl.append(el('dt', {}, k), el('dd', {}, v));
  row('Version', `${host.version} (plugin ABI ${host.abi})`);
  if (host.node_name) row('Node', host.node_name);
  row('vCPUs', `${host.usage.vcpu} of ${host.limits.vcpu} allocated`);
  row('Memory', `${fmtMem(host.usage.memory_mb)} of ${fmtMem(host.limits.memory_mb)} allocated`);
  row('VMs', `${host.usage.vms} (${host.usage.running} running)`);
  row('Backends', (host.backends || []).map((b) => b.name + (b.default ? ' (default)' : '')).join(', '));
  row('Accelerator', host.accelerator || '');
  row('Networks', (host.network_modes || []).map((n) => n.name + (n.default ? ' (default)' : '')).join(', '));
  if (host.port_mapping) row('Port mapping', host.port_mapping.enabled ? `on ${host.port_mapping.address}` : 'off');
  row('Daemon uptime', fmtDuration(host.uptime));
  $('host-summary').textContent = `${host.node_name || location.host} · cvmm ${host.version}`;
}

async function refreshPlugins() {
  const o = await api('GET', '/v1/plugins');
  const tb = $('plugins').tBodies[0];
  tb.replaceChildren();
  for (const p of o.plugins || [])
    tb.append(el('tr', {}, el('td', {}, p.name), el('td', {}, p.version || ''),
      el('td', {}, (p.provides || []).join(', ')), el('td', {}, p.description || '')));
}

// ---- events ----

function addEvent(e) {
  const list = $('events');
  const t = e.time ? new Date(e.time * 1000).toLocaleTimeString() : '';
  list.prepend(el('li', { class: `ev ev-${e.type}` }, el('time', {}, t), ' ',
    el('b', {}, e.name || e.vm || ''), ' ', el('span', { class: 'type' }, e.type), ' ', e.message || ''));
  while (list.children.length > 200) list.lastChild.remove();
}

function connectEvents() {
  if (events) events.close();
  // Resumes after a drop by itself (Last-Event-ID); a refusal closes it.
  events = new EventSource(withToken('/v1/events'));
  events.onopen = () => { $('live').textContent = 'live'; $('live').className = 'badge ok'; refreshVms(); };
  events.onmessage = (m) => {
    let e;
    try { e = JSON.parse(m.data); } catch (x) { return; }
    addEvent(e);
    refreshVms();
  };
  events.onerror = () => {
    $('live').textContent = 'reconnecting';
    $('live').className = 'badge warn';
    if (events.readyState === EventSource.CLOSED) setTimeout(connectEvents, 3000);
  };
}

// ---- create dialog ----

async function openCreate() {
  $('c-error').textContent = '';
  try {
    const [imgs] = await Promise.all([api('GET', '/v1/images'), refreshHost()]);
    const sel = $('c-image');
    sel.replaceChildren(...(imgs.images || []).map((i) => el('option', { value: i.name }, i.name)));
    const nets = $('c-nets');
    nets.replaceChildren(el('legend', {}, 'Networks'));
    for (const n of host.network_modes || [])
      nets.append(el('label', { class: 'inline' },
        el('input', { type: 'checkbox', value: n.name, ...(n.default ? { checked: '' } : {}) }), ` ${n.name}`));
  } catch (e) {
    showError(e);
    return;
  }
  $('create').showModal();
  $('c-name').focus();
}

function parsePorts(text) {
  const out = [];
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(tcp|udp):(\d+):(\d+)$/.exec(part);
    if (!m) throw new Error(`ports: "${part}": expected protocol:host port:VM port, e.g. tcp:18080:8080`);
    out.push({ protocol: m[1], host_port: Number(m[2]), vm_port: Number(m[3]) });
  }
  return out;
}

async function submitCreate(ev) {
  ev.preventDefault();
  $('c-error').textContent = '';
  let body;
  try {
    body = {
      name: $('c-name').value.trim(),
      image: $('c-image').value,
      vcpu: Number($('c-vcpu').value),
      memory_mb: Number($('c-mem').value),
      start: $('c-start').checked,
    };
    const nets = [...$('c-nets').querySelectorAll('input:checked')].map((i) => ({ mode: i.value }));
    if (nets.length) body.networks = nets;
    const ports = parsePorts($('c-ports').value);
    if (ports.length) body.ports = ports;
  } catch (e) {
    $('c-error').textContent = e.message;
    return;
  }
  try {
    const vm = await api('POST', '/v1/vms', body);
    $('create').close();
    $('create-form').reset();
    refreshVms();
    if (vm && vm.id) openConsole(vm);
  } catch (e) {
    $('c-error').textContent = e instanceof ApiError ? `${e.status} ${e.code}: ${e.message}` : String(e);
  }
}

// ---- serial console ----

const MAX_TERM = 200000;
let pending = '';

// A minimal terminal: the tiny escape sequences a shell sends (colours,
// cursor moves) are dropped, backspace erases, CR LF is a new line.
function termWrite(text) {
  const t = $('term');
  let s = pending + text;
  pending = '';
  const cut = s.lastIndexOf('\x1b');
  if (cut >= 0 && s.length - cut < 16 && !/^\x1b(\[[0-9;?]*[ -\/]*[@-~]|[^\[])/.test(s.slice(cut))) {
    pending = s.slice(cut);
    s = s.slice(0, cut);
  }
  s = s.replace(/\x1b\[[0-9;?]*[ -\/]*[@-~]/g, '').replace(/\x1b[^\[]/g, '')
    .replace(/\r+\n/g, '\n').replace(/\r/g, '').replace(/[\x00-\x07\x0b\x0c\x0e-\x1a\x1c-\x1f]/g, '');
  let cur = t.textContent;
  for (const part of s.split(/(\x08)/)) {
    if (part === '\x08') cur = cur.slice(0, -1);
    else cur += part;
  }
  if (cur.length > MAX_TERM) cur = cur.slice(cur.length - MAX_TERM);
  t.textContent = cur;
  t.scrollTop = t.scrollHeight;
}

function termStatus(text, cls) {
  $('term-status').textContent = text;
  $('term-status').className = 'badge ' + (cls || '');
}

function detachConsole() {
  if (term && term.ws) {
    term.ws.onclose = null;
    term.ws.close();
  }
  term = null;
}

async function openConsole(vm) {
  detachConsole();
  term = { vm, ws: null, decoder: new TextDecoder('utf-8') };
  pending = '';
  $('term').textContent = '';
  $('term-vm').textContent = vm.name;
  $('term-reconnect').disabled = false;
  renderVms();
  // What it printed so far (the console log), then the live session.
  try {
    const r = await fetch(`/v1/vms/${encodeURIComponent(vm.id)}/logs?tail=200`,
      { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' });
    if (r.ok && term && term.vm.id === vm.id) termWrite(await r.text());
  } catch (e) { /* the live session follows anyway */ }
  connectConsole();
  $('term').focus();
}

function connectConsole() {
  if (!term) return;
  const cur = vms.find((v) => v.id === term.vm.id) || term.vm;
  if (!['running', 'paused'].includes(cur.state)) {
    termStatus(`not running (${cur.state})`, 'warn');
    return;
  }
  if (term.ws) return;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ro = $('term-readonly').checked ? '&readonly=1' : '';
  const ws = new WebSocket(`${proto}//${location.host}${withToken(`/v1/vms/${encodeURIComponent(cur.id)}/console`)}${ro}`);
  ws.binaryType = 'arraybuffer';
  term.ws = ws;
  term.opened = false;
  termStatus('connecting', 'warn');
  ws.onopen = () => {
    term.opened = true;
    termStatus(ro ? 'attached (read-only)' : 'attached', 'ok');
  };
  ws.onmessage = (m) => {
    if (term && term.ws === ws) termWrite(typeof m.data === 'string' ? m.data : term.decoder.decode(m.data, { stream: true }));
  };
  ws.onclose = (c) => {
    if (!term || term.ws !== ws) return;
    term.ws = null;
    // A refused upgrade reaches a page only as code 1006, without the
    // daemon's answer: say the likely causes.
    if (!term.opened)
      termStatus('refused: the VM does not run, or another client is typing (try read-only)', 'bad');
    else {
      termStatus(`closed${c.code !== 1005 ? ' (' + c.code + ')' : ''}`, 'warn');
      termWrite('\n[console closed]\n');
    }
  };
}

// A running VM whose pane is open gets attached; a stopped one detached
// (its hub closes the session; nothing to do here).
function syncConsole() {
  if (!term) return;
  const cur = vms.find((v) => v.id === term.vm.id);
  if (!cur) {
    termStatus('removed', 'warn');
    return;
  }
  if (!term.ws && cur.state === 'running' && term.autoState !== 'running') connectConsole();
  term.autoState = cur.state;
}

const KEYS = {
  Enter: '\r', Backspace: '\x7f', Tab: '\t', Escape: '\x1b', Delete: '\x1b[3~',
  ArrowUp: '\x1b[A', ArrowDown: '\x1b[B', ArrowRight: '\x1b[C', ArrowLeft: '\x1b[D',
  Home: '\x1b[H', End: '\x1b[F',
};

function sendKeys(s) {
  if (!term || !term.ws || term.ws.readyState !== WebSocket.OPEN) return false;
  term.ws.send(new TextEncoder().encode(s));
  return true;
}

function onKey(ev) {
  let s = null;
  if (ev.ctrlKey && !ev.altKey && !ev.metaKey && ev.key.length === 1) {
    const c = ev.key.toUpperCase().charCodeAt(0);
    if (c >= 64 && c <= 95) s = String.fromCharCode(c - 64);
  } else if (!ev.altKey && !ev.metaKey && ev.key.length === 1) {
    s = ev.key;
  } else if (KEYS[ev.key]) {
    s = KEYS[ev.key];
  }
  if (s === null) return;
  ev.preventDefault();
  sendKeys(s);
}

// ---- start ----

async function start() {
  $('login-view').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = !token;
  try {
    await Promise.all([refreshHost(), refreshPlugins()]);
  } catch (e) {
    if (e.status === 401) return showLogin(`${e.status} ${e.code}: ${e.message}`);
    showError(e);
  }
  refreshVms();
  connectEvents();
}

async function boot() {
  takeTokenFromUrl();
  $('login').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  $('error-close').addEventListener('click', () => { $('error').hidden = true; });
  $('create-btn').addEventListener('click', openCreate);
  $('create-form').addEventListener('submit', submitCreate);
  $('c-cancel').addEventListener('click', () => $('create').close());
  $('term').addEventListener('keydown', onKey);
  $('term').addEventListener('paste', (ev) => {
    ev.preventDefault();
    sendKeys((ev.clipboardData.getData('text') || '').replace(/\r?\n/g, '\r'));
  });
  $('term-reconnect').addEventListener('click', () => {
    if (!term) return;
    const vm = vms.find((v) => v.id === term.vm.id) || term.vm;
    openConsole(vm);
  });
  $('term-readonly').addEventListener('change', () => { if (term) openConsole(term.vm); });
  setInterval(() => {
    for (const tr of $('vms').tBodies[0].rows) {
      const vm = vms.find((v) => v.name === tr.dataset.name);
      if (vm) tr.querySelector('.uptime').textContent = uptimeText(vm);
    }
  }, 1000);
  // With auth off the daemon answers without a token: no login form.
  try {
    await api('GET', '/v1/host');
  } catch (e) {
    if (e.status === 401) {
      // A token from the address or an earlier login that no longer
      // works is said so; without one the form simply asks.
      const had = !!token;
      sessionStorage.removeItem(KEY);
      token = null;
      return showLogin(had ? `${e.status} ${e.code}: ${e.message}` : '');
    }
  }
  start();
}

boot();
