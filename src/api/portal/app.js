// The webhook portal: a small single-page app over the ordinary /v1 API. The session
// is an HttpOnly cookie set when the one-time link was opened; every request also
// carries X-Wearbridge-Portal: 1 (the server's CSRF guard). Every value from the API is
// put into the page as text (never parsed as HTML), and nothing is styled inline: the
// page runs under a strict Content-Security-Policy.
'use strict';

const main = document.getElementById('main');
const SVG = 'http://www.w3.org/2000/svg';

// ---- DOM helpers -----------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

function show(...nodes) {
  main.replaceChildren(...nodes.flat().filter(Boolean));
  main.focus({ preventScroll: true });
}

function notice(kind, text) {
  return h('div', { class: 'notice ' + kind, role: kind === 'err' ? 'alert' : 'status' }, text);
}

function time(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return h('time', { datetime: iso, title: iso }, d.toLocaleString());
}

const STATUS_CLASS = { succeeded: 'ok', exhausted: 'bad', retrying: 'warn', pending: 'idle', connected: 'ok', error: 'bad', deregistered: 'idle' };
function badge(status, text) {
  return h('span', { class: 'badge ' + (STATUS_CLASS[status] || 'idle') }, text || status);
}

// ---- The API -----------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { 'X-Wearbridge-Portal': '1' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', 'The gateway could not be reached. Check your connection and try again.');
  }
  if (res.status === 401) {
    ended('Your portal session has ended. Ask the app that sent you here for a new portal link.');
    throw new ApiError(401, 'unauthorized', 'session ended');
  }
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(res.status, err.code || 'error', err.message || `Request failed (${res.status})`);
  }
  return data;
}

let sessionEnded = false;
function ended(message) {
  sessionEnded = true;
  document.querySelector('nav').hidden = true;
  document.getElementById('signout').hidden = true;
  main.replaceChildren(h('div', { class: 'ended', role: 'alert' }, h('h1', {}, 'Signed out'), h('p', {}, message)));
}

// Runs an action from a button: disables it meanwhile, shows the outcome in `slot`.
async function act(button, slot, fn) {
  button.disabled = true;
  slot.replaceChildren();
  try {
    const msg = await fn();
    if (msg) slot.replaceChildren(notice('ok', msg));
  } catch (e) {
    if (e.status !== 401) slot.replaceChildren(notice('err', e.message));
  } finally {
    button.disabled = false;
  }
}

// ---- Routing -----------------------------------------------------------------------

const routes = [
  [/^#\/endpoints\/new$/, () => endpointForm(null)],
  [/^#\/endpoints\/([\w-]+)\/edit$/, (id) => endpointForm(id)],
  [/^#\/endpoints\/([\w-]+)$/, (id) => endpointPage(id)],
  [/^#\/events\/([\w-]+)\/([\w-]+)$/, (ep, ev) => eventPage(ep, ev)],
  [/^#\/activity$/, () => activityPage()],
  [/^#\/users$/, () => usersPage()],
  [/^#\/endpoints$/, () => endpointsPage()],
];

async function route() {
  if (sessionEnded) return;
  const hash = location.hash || '#/endpoints';
  const section = hash.split('/')[1] === 'events' ? 'endpoints' : hash.split('/')[1];
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.nav === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  for (const [re, render] of routes) {
    const m = hash.match(re);
    if (m) {
      show(h('p', { class: 'muted' }, 'Loading…'));
      try {
        await render(...m.slice(1));
      } catch (e) {
        if (e.status !== 401) show(h('h1', {}, 'Something went wrong'), notice('err', e.message), h('a', { href: '#/endpoints' }, 'Back to endpoints'));
      }
      return;
    }
  }
  location.hash = '#/endpoints';
}

// ---- Endpoints ---------------------------------------------------------------------

async function endpointsPage() {
  const { data } = await api('GET', '/v1/webhooks/endpoints');
  document.title = 'Endpoints · Webhook portal';
  const head = h('div', { class: 'head' }, h('h1', {}, 'Endpoints'), h('a', { class: 'button primary', href: '#/endpoints/new' }, 'Add endpoint'));
  if (!data.length) {
    return show(head, h('div', { class: 'card' }, h('h2', {}, 'No endpoints yet'),
      h('p', { class: 'muted' }, 'Add an endpoint to receive signed webhooks when your users’ data changes.')));
  }
  const rows = data.map((e) => h('tr', {},
    h('td', { class: 'url', 'data-label': 'URL' }, h('a', { href: `#/endpoints/${e.id}` }, e.url),
      e.description ? h('div', { class: 'muted small' }, e.description) : null),
    h('td', { 'data-label': 'Status' }, e.enabled ? badge('succeeded', 'Enabled') : badge('exhausted', 'Disabled'),
      !e.enabled && e.disabled_reason ? h('div', { class: 'muted small' }, e.disabled_reason) : null),
    h('td', { 'data-label': 'Events' }, e.event_types.length ? `${e.event_types.length} event type${e.event_types.length > 1 ? 's' : ''}` : 'All events'),
    h('td', { 'data-label': 'Health' }, health(e.health))));
  show(head, h('div', { class: 'card table-wrap' }, h('table', { class: 'stack' },
    h('thead', {}, h('tr', {}, h('th', {}, 'URL'), h('th', {}, 'Status'), h('th', {}, 'Events'), h('th', {}, 'Health'))),
    h('tbody', {}, rows))));
}

function health(hl) {
  if (hl.consecutive_failures > 0) {
    return h('span', {}, badge('exhausted', `${hl.consecutive_failures} failing`), hl.first_failure_at ? h('span', { class: 'muted small' }, ' since ', time(hl.first_failure_at)) : null);
  }
  return hl.last_success_at ? h('span', {}, badge('succeeded', 'Healthy'), h('span', { class: 'muted small' }, ' last success ', time(hl.last_success_at))) : h('span', { class: 'muted' }, 'No deliveries yet');
}

const GROUPS = {
  daily: ['Daily data', 'A new (created) or changed (updated) record found by regular polling; the payload is the record.'],
  historical: ['Historical data (backfill)', 'One event per stored backfill window, newest window first; is_final marks the oldest.'],
  provider: ['Provider connections', null],
  webhook: ['Webhook', null],
};

async function endpointForm(id) {
  const [{ data: types }, ep] = await Promise.all([
    api('GET', '/v1/event-types'),
    id ? api('GET', `/v1/webhooks/endpoints/${id}`) : Promise.resolve(null),
  ]);
  document.title = (id ? 'Edit endpoint' : 'Add endpoint') + ' · Webhook portal';
  const chosen = new Set(ep ? ep.event_types : []);
  const groups = {};
  for (const t of types) (groups[t.name.split('.')[0]] ||= []).push(t);
  // Data events share one explanation per group; the others keep their own.
  const picker = Object.entries(groups).map(([g, list]) => {
    const [title, hint] = GROUPS[g] || [g, null];
    return h('fieldset', {},
      h('legend', {}, title),
      hint ? h('p', { class: 'hint' }, hint) : null,
      h('div', { class: 'types' }, list.map((t) => h('label', { class: 'check', title: t.description || null },
        h('input', { type: 'checkbox', name: 'event_types', value: t.name, checked: chosen.has(t.name) }),
        h('span', {}, h('code', {}, t.name), !hint && t.description ? h('span', {}, t.description) : null)))));
  });
  const slot = h('div', {});
  const submit = h('button', { type: 'submit', class: 'primary' }, id ? 'Save' : 'Create endpoint');
  const form = h('form', { class: 'card', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'f-url' }, 'Endpoint URL'),
      h('input', { id: 'f-url', name: 'url', type: 'url', required: true, placeholder: 'https://example.com/webhooks', value: ep ? ep.url : '', autocomplete: 'off' })),
    h('div', { class: 'field' }, h('label', { for: 'f-desc' }, 'Description ', h('span', { class: 'hint' }, '(optional)')),
      h('input', { id: 'f-desc', name: 'description', type: 'text', value: ep ? ep.description : '' })),
    h('h2', {}, 'Events to send'),
    h('p', { class: 'hint' }, 'Leave every box empty to receive all events, including types added later.'),
    picker,
    h('div', { class: 'grid' },
      h('div', { class: 'field' }, h('label', { for: 'f-method' }, 'Method'),
        h('select', { id: 'f-method', name: 'method' },
          h('option', { value: 'POST', selected: !ep || ep.method === 'POST' }, 'POST (JSON body)'),
          h('option', { value: 'GET', selected: ep && ep.method === 'GET' }, 'GET (payload as query parameters)'))),
      h('div', { class: 'field' }, h('label', { for: 'f-rate' }, 'Rate limit per second ', h('span', { class: 'hint' }, '(optional)')),
        h('input', { id: 'f-rate', name: 'rate', type: 'number', min: 1, max: 100000, value: ep && ep.rate_limit_per_sec ? ep.rate_limit_per_sec : '' }))),
    h('div', { class: 'field' }, h('label', { for: 'f-headers' }, 'Custom headers ', h('span', { class: 'hint' }, '(optional, one “Name: value” a line)')),
      h('textarea', { id: 'f-headers', name: 'headers', rows: 3, spellcheck: 'false' },
        ep ? Object.entries(ep.headers).map(([k, v]) => `${k}: ${v}`).join('\n') : '')),
    id ? null : h('p', { class: 'hint' }, 'Creating the endpoint sends it a webhook.test event straight away.'),
    slot,
    h('div', { class: 'actions' }, submit, h('a', { class: 'button', href: id ? `#/endpoints/${id}` : '#/endpoints' }, 'Cancel')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const rate = String(f.get('rate') || '').trim();
    const headers = {};
    for (const line of String(f.get('headers') || '').split('\n')) {
      const at = line.indexOf(':');
      if (line.trim() && at > 0) headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      else if (line.trim()) { slot.replaceChildren(notice('err', `headers: “${line.trim()}” is not “Name: value”`)); return; }
    }
    const body = {
      headers,
      url: String(f.get('url')).trim(),
      description: String(f.get('description') || ''),
      event_types: f.getAll('event_types').map(String),
      method: String(f.get('method')),
      rate_limit_per_sec: rate ? Number(rate) : null,
    };
    act(submit, slot, async () => {
      const saved = id ? await api('PATCH', `/v1/webhooks/endpoints/${id}`, body) : await api('POST', '/v1/webhooks/endpoints', body);
      location.hash = `#/endpoints/${saved.id}`;
    });
  });
  show(h('h1', {}, id ? 'Edit endpoint' : 'Add endpoint'), form);
}

async function endpointPage(id) {
  const ep = await api('GET', `/v1/webhooks/endpoints/${id}`);
  document.title = 'Endpoint · Webhook portal';
  const slot = h('div', {});
  const toggle = h('button', {}, ep.enabled ? 'Disable' : 'Enable');
  toggle.addEventListener('click', () => act(toggle, slot, async () => {
    await api('PATCH', `/v1/webhooks/endpoints/${id}`, { enabled: !ep.enabled });
    await endpointPage(id);
  }));
  const test = h('button', {}, 'Send test event');
  test.addEventListener('click', () => act(test, slot, async () => {
    await api('POST', `/v1/webhooks/endpoints/${id}/test`);
    setTimeout(() => loadEvents(), 800);
    return 'Test event sent. It appears in the list below in a moment.';
  }));
  const del = h('button', { class: 'danger' }, 'Delete');
  del.addEventListener('click', () => {
    if (!confirm('Delete this endpoint? It stops receiving events at once.')) return;
    act(del, slot, async () => { await api('DELETE', `/v1/webhooks/endpoints/${id}`); location.hash = '#/endpoints'; });
  });

  // Signing secret: hidden until asked for.
  const secretBox = h('div', {}, h('p', { class: 'muted' }, 'Hidden. Reveal it to configure your receiver.'));
  const secretSlot = h('div', {});
  const reveal = h('button', {}, 'Reveal');
  reveal.addEventListener('click', () => act(reveal, secretSlot, async () => {
    if (reveal.textContent === 'Hide') {
      secretBox.replaceChildren(h('p', { class: 'muted' }, 'Hidden. Reveal it to configure your receiver.'));
      reveal.textContent = 'Reveal';
      return;
    }
    const { key } = await api('GET', `/v1/webhooks/endpoints/${id}/secret`);
    const copy = h('button', { type: 'button', class: 'link' }, 'Copy');
    copy.addEventListener('click', async () => {
      try { await navigator.clipboard.writeText(key); copy.textContent = 'Copied'; } catch (_) { copy.textContent = 'Select and copy it'; }
    });
    secretBox.replaceChildren(h('div', { class: 'actions' }, h('code', { class: 'secret', id: 'secret-value' }, key), navigator.clipboard ? copy : null));
    reveal.textContent = 'Hide';
  }));
  const rotate = h('button', {}, 'Rotate');
  rotate.addEventListener('click', () => {
    if (!confirm('Rotate the signing secret? The old secret keeps signing alongside the new one for 24 hours.')) return;
    act(rotate, secretSlot, async () => {
      const r = await api('POST', `/v1/webhooks/endpoints/${id}/secret/rotate`, {});
      secretBox.replaceChildren(h('code', { class: 'secret', id: 'secret-value' }, r.key));
      reveal.textContent = 'Hide';
      return `Rotated. The previous secret stays valid until ${new Date(r.previous_key_valid_until).toLocaleString()}.`;
    });
  });

  // Recover: re-queue every failed delivery since a time (default: 24 h ago).
  const since = h('input', { id: 'f-since', type: 'datetime-local', value: localInput(new Date(Date.now() - 864e5)) });
  const recoverSlot = h('div', {});
  const recover = h('button', {}, 'Recover');
  recover.addEventListener('click', () => act(recover, recoverSlot, async () => {
    const at = new Date(since.value);
    if (isNaN(at)) throw new Error('Choose a date and time to recover from.');
    const r = await api('POST', `/v1/webhooks/endpoints/${id}/recover`, { since: at.toISOString() });
    setTimeout(() => loadEvents(), 800);
    return r.recovered === 1 ? '1 failed message re-queued.' : `${r.recovered} failed messages re-queued.`;
  }));

  // The delivery log.
  const filter = h('select', { id: 'f-status' }, h('option', { value: '' }, 'All'),
    ['succeeded', 'retrying', 'pending', 'exhausted'].map((st) => h('option', { value: st }, st[0].toUpperCase() + st.slice(1))));
  const list = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const refresh = h('button', {}, 'Refresh');
  async function loadEvents() {
    const q = filter.value ? `&status=${filter.value}` : '';
    try {
      const { data } = await api('GET', `/v1/webhooks/endpoints/${id}/events?limit=50${q}`);
      list.replaceChildren(data.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'stack' },
        h('thead', {}, h('tr', {}, ['Event', 'Status', 'Attempts', 'Last response', 'Created'].map((t) => h('th', {}, t)))),
        h('tbody', {}, data.map((d) => h('tr', {},
          h('td', { 'data-label': 'Event' }, h('a', { href: `#/events/${id}/${d.event_id}` }, d.event_type)),
          h('td', { 'data-label': 'Status' }, badge(d.status)),
          h('td', { 'data-label': 'Attempts' }, d.attempts),
          h('td', { 'data-label': 'Last response' }, d.last_status_code ?? '—'),
          h('td', { 'data-label': 'Created' }, time(d.created_at))))))) : h('p', { class: 'muted' }, 'No events yet.'));
    } catch (e) {
      if (e.status !== 401) list.replaceChildren(notice('err', e.message));
    }
  }
  filter.addEventListener('change', loadEvents);
  refresh.addEventListener('click', loadEvents);

  const chart = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  show(
    h('p', {}, h('a', { href: '#/endpoints' }, '← Endpoints')),
    h('div', { class: 'head' }, h('h1', {}, ep.url),
      h('div', { class: 'actions' }, h('a', { class: 'button', href: `#/endpoints/${id}/edit` }, 'Edit'), toggle, test, del)),
    slot,
    h('div', { class: 'grid' },
      h('section', { class: 'card', 'aria-labelledby': 'h-details' }, h('h2', { id: 'h-details' }, 'Details'),
        h('dl', { class: 'kv' },
          h('dt', {}, 'Status'), h('dd', {}, ep.enabled ? badge('succeeded', 'Enabled') : badge('exhausted', 'Disabled'), ep.disabled_reason ? ` ${ep.disabled_reason}` : ''),
          h('dt', {}, 'Description'), h('dd', {}, ep.description || '—'),
          h('dt', {}, 'Events'), h('dd', {}, ep.event_types.length ? ep.event_types.join(', ') : 'All events'),
          h('dt', {}, 'Method'), h('dd', {}, ep.method),
          h('dt', {}, 'Rate limit'), h('dd', {}, ep.rate_limit_per_sec ? `${ep.rate_limit_per_sec}/s` : 'None'),
          h('dt', {}, 'Headers'), h('dd', {}, Object.keys(ep.headers).length ? Object.keys(ep.headers).join(', ') : 'None'),
          h('dt', {}, 'Health'), h('dd', {}, health(ep.health)),
          h('dt', {}, 'Created'), h('dd', {}, time(ep.created_at)))),
      h('section', { class: 'card', 'aria-labelledby': 'h-secret' }, h('h2', { id: 'h-secret' }, 'Signing secret'),
        h('p', { class: 'hint' }, 'Verify every webhook with this secret and any Standard Webhooks or Svix library.'),
        secretBox, h('div', { class: 'actions' }, reveal, rotate), secretSlot)),
    h('section', { class: 'card', 'aria-labelledby': 'h-chart' }, h('h2', { id: 'h-chart' }, 'Last 24 hours'), chart),
    h('section', { class: 'card', 'aria-labelledby': 'h-log' },
      h('div', { class: 'head' }, h('h2', { id: 'h-log' }, 'Recent events'),
        h('div', { class: 'actions' }, h('label', { for: 'f-status', class: 'visually-hidden' }, 'Filter by status'), filter, refresh)),
      list),
    h('section', { class: 'card', 'aria-labelledby': 'h-recover' }, h('h2', { id: 'h-recover' }, 'Recover failed messages'),
      h('p', { class: 'hint' }, 'Re-queue every delivery to this endpoint that failed since a time; each gets one more attempt.'),
      h('div', { class: 'field' }, h('label', { for: 'f-since' }, 'Since'), since),
      recover, recoverSlot));
  loadEvents();
  api('GET', `/v1/webhooks/stats?hours=24&endpoint_id=${id}`).then((st) => chart.replaceChildren(volumeChart(st.buckets)), (e) => {
    if (e.status !== 401) chart.replaceChildren(notice('err', e.message));
  });
}

function localInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// ---- One event ---------------------------------------------------------------------

async function eventPage(endpointId, eventId) {
  const [ev, { data: endpoints }] = await Promise.all([api('GET', `/v1/webhooks/events/${eventId}`), api('GET', '/v1/webhooks/endpoints')]);
  document.title = `${ev.event_type} · Webhook portal`;
  const urlOf = Object.fromEntries(endpoints.map((e) => [e.id, e.url]));
  // This endpoint's delivery first.
  const deliveries = [...ev.deliveries].sort((a, b) => (b.endpoint_id === endpointId) - (a.endpoint_id === endpointId));
  const sections = deliveries.map((d) => {
    const slot = h('div', {});
    const rerun = h('button', {}, 'Re-run');
    rerun.addEventListener('click', () => act(rerun, slot, async () => {
      const a = await api('POST', `/v1/webhooks/endpoints/${d.endpoint_id}/events/${eventId}/resend`);
      await eventPage(endpointId, eventId);
      const outcome = a.response_status ? `answered ${a.response_status}` : `failed (${a.error_kind})`;
      main.prepend(notice(a.response_status >= 200 && a.response_status < 300 ? 'ok' : 'err', `Attempt ${a.run_number} ${outcome}.`));
    }));
    return h('section', { class: 'card' },
      h('div', { class: 'head' }, h('h2', {}, 'To ', urlOf[d.endpoint_id] || d.endpoint_id), rerun),
      h('p', {}, badge(d.status), ` ${d.attempts} attempt${d.attempts === 1 ? '' : 's'}`,
        d.next_attempt_at ? h('span', { class: 'muted' }, ' · next attempt ', time(d.next_attempt_at)) : null),
      slot,
      d.attempt_log.length ? d.attempt_log.map(attemptView) : h('p', { class: 'muted' }, 'No attempt yet.'));
  });
  show(
    h('p', {}, h('a', { href: `#/endpoints/${endpointId}` }, '← Endpoint')),
    h('h1', {}, ev.event_type),
    h('section', { class: 'card' }, h('dl', { class: 'kv' },
      h('dt', {}, 'Event id'), h('dd', {}, h('code', {}, ev.id)),
      h('dt', {}, 'Created'), h('dd', {}, time(ev.created_at))),
    h('h3', {}, 'Payload'), h('pre', { tabindex: 0, 'aria-label': 'Payload' }, JSON.stringify(ev.payload, null, 2))),
    sections);
}

function attemptView(a) {
  const ok = a.response_status >= 200 && a.response_status < 300;
  const headers = Object.entries(a.request_headers).map(([k, v]) => `${k}: ${v}`).join('\n');
  return h('article', { class: 'attempt ' + (ok ? 'ok' : 'bad'), 'aria-label': `Attempt ${a.run_number}` },
    h('h3', {}, `Attempt ${a.run_number} `, ok ? badge('succeeded', String(a.response_status)) : badge('exhausted', a.response_status ? String(a.response_status) : (a.error_kind || 'failed')),
      h('span', { class: 'muted small' }, ` ${a.trigger} · `, time(a.attempted_at), ` · ${a.duration_ms} ms`)),
    a.error_message ? h('p', { class: 'muted' }, `${a.error_kind}: ${a.error_message}`) : null,
    h('details', {}, h('summary', {}, 'Request'), h('p', { class: 'small' }, h('code', {}, a.url)), h('pre', {}, headers)),
    h('details', { open: !ok }, h('summary', {}, 'Response'), h('pre', {}, a.response_body || '(empty)')));
}

// ---- Users -------------------------------------------------------------------------

async function usersPage() {
  document.title = 'Users · Webhook portal';
  const list = h('div', {});
  const more = h('button', {}, 'Load more');
  const slot = h('div', {});
  let offset = 0;
  const { data: providers } = await api('GET', '/v1/providers');
  const names = Object.fromEntries(providers.map((p) => [p.slug, p.name]));
  async function load() {
    const page = await api('GET', `/v1/user?offset=${offset}&limit=20`);
    offset += page.users.length;
    const cards = await Promise.all(page.users.map(async (u) => {
      const { data } = await api('GET', `/v1/user/${u.user_id}/providers`);
      return userCard(u, data, names);
    }));
    list.append(...cards);
    more.hidden = offset >= page.total;
    if (!page.total) list.replaceChildren(h('div', { class: 'card' }, h('h2', {}, 'No users yet'), h('p', { class: 'muted' }, 'Users appear here once your app creates them.')));
  }
  more.addEventListener('click', () => act(more, slot, load));
  await load();
  show(h('h1', {}, 'Users'), list, slot, more);
}

function userCard(u, conns, names) {
  return h('section', { class: 'card', 'aria-label': `User ${u.client_user_id}` },
    h('div', { class: 'head' }, h('h2', {}, u.client_user_id), h('span', { class: 'muted small' }, 'created ', time(u.created_at))),
    conns.length ? conns.map((c) => h('div', { class: 'conn' },
      h('h3', {}, names[c.provider] || c.provider, ' ', badge(c.status)),
      c.error_message ? h('p', { class: 'muted' }, c.error_message) : null,
      c.backfill.map((b) => h('div', { class: 'progress' },
        h('span', {}, b.resource),
        h('progress', { max: b.windows_total || 1, value: b.windows_done, 'aria-label': `${names[c.provider] || c.provider} ${b.resource} backfill` }),
        h('span', { class: 'small muted' }, `${b.windows_done} of ${b.windows_total} windows`,
          b.oldest_date_reached ? ` · back to ${new Date(b.oldest_date_reached).toLocaleDateString()}` : '',
          b.last_error ? ` · ${b.last_error}` : ''))))) : h('p', { class: 'muted' }, 'No provider connected.'));
}

// ---- Activity and charts ------------------------------------------------------------

async function activityPage() {
  document.title = 'Activity · Webhook portal';
  const st = await api('GET', '/v1/webhooks/stats?hours=24');
  const ok = st.buckets.reduce((n, b) => n + b.succeeded, 0);
  const bad = st.buckets.reduce((n, b) => n + b.failed, 0);
  const rate = ok + bad ? `${((100 * ok) / (ok + bad)).toFixed(1)} %` : '—';
  show(h('h1', {}, 'Activity'),
    h('section', { class: 'card', 'aria-labelledby': 'h-vol' }, h('h2', { id: 'h-vol' }, 'Deliveries per hour, last 24 hours'),
      h('div', { class: 'stats' },
        h('div', { class: 'stat' }, h('b', {}, ok + bad), 'attempts'),
        h('div', { class: 'stat' }, h('b', {}, ok), 'succeeded'),
        h('div', { class: 'stat' }, h('b', {}, bad), 'failed'),
        h('div', { class: 'stat' }, h('b', {}, rate), 'success rate')),
      volumeChart(st.buckets)),
    h('section', { class: 'card', 'aria-labelledby': 'h-lat' }, h('h2', { id: 'h-lat' }, 'Latency per hour'), latencyChart(st.buckets)));
}

const W = 720, H = 200, L = 44, R = 10, T = 10, B = 28;

function niceMax(v) {
  if (v <= 4) return 4;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((m) => m >= v);
}

function axes(svg, max, buckets, unit) {
  for (let i = 0; i <= 4; i++) {
    const y = T + ((H - T - B) * i) / 4;
    svg.append(s('line', { class: 'grid-line', x1: L, x2: W - R, y1: y, y2: y }),
      s('text', { x: L - 6, y: y + 4, 'text-anchor': 'end' }, `${+(max - (max * i) / 4).toFixed(1)}${unit}`));
  }
  const step = (W - L - R) / buckets.length;
  buckets.forEach((b, i) => {
    if (i % 3 === 0) svg.append(s('text', { x: L + step * i + step / 2, y: H - 8, 'text-anchor': 'middle' }, `${String(new Date(b.start).getHours()).padStart(2, '0')}:00`));
  });
  return step;
}

function hourLabel(b) {
  return new Date(b.start).toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

function dataTable(caption, heads, rows) {
  return h('table', { class: 'visually-hidden' }, h('caption', {}, caption),
    h('thead', {}, h('tr', {}, heads.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))));
}

function volumeChart(buckets) {
  const max = niceMax(Math.max(0, ...buckets.map((b) => b.succeeded + b.failed)));
  const total = buckets.reduce((n, b) => n + b.succeeded + b.failed, 0);
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `Delivery attempts per hour: ${total} in the last ${buckets.length} hours` });
  const step = axes(svg, max, buckets, '');
  const scale = (H - T - B) / max;
  buckets.forEach((b, i) => {
    const x = L + step * i + step * 0.15, w = step * 0.7;
    const okH = b.succeeded * scale, badH = b.failed * scale;
    const label = `${hourLabel(b)}: ${b.succeeded} succeeded, ${b.failed} failed`;
    if (okH) svg.append(s('rect', { x, y: H - B - okH, width: w, height: okH, fill: '#059669' }, s('title', {}, label)));
    if (badH) svg.append(s('rect', { x, y: H - B - okH - badH, width: w, height: badH, fill: '#dc2626' }, s('title', {}, label)));
  });
  return h('div', {}, svg,
    h('div', { class: 'legend', 'aria-hidden': 'true' }, h('span', {}, h('span', { class: 'key ok' }), 'Succeeded'), h('span', {}, h('span', { class: 'key bad' }), 'Failed')),
    dataTable('Delivery attempts per hour', ['Hour', 'Succeeded', 'Failed'], buckets.map((b) => [hourLabel(b), b.succeeded, b.failed])));
}

function latencyChart(buckets) {
  const max = niceMax(Math.max(0, ...buckets.map((b) => b.latency_ms.p95 || 0)));
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Delivery latency per hour, p50 and p95, in milliseconds' });
  const step = axes(svg, max, buckets, ' ms');
  const scale = (H - T - B) / max;
  for (const [key, colour] of [['p50', '#1d4ed8'], ['p95', '#f59e0b']]) {
    const pts = buckets.map((b, i) => [L + step * i + step / 2, b.latency_ms[key], b]).filter((p) => p[1] !== null);
    if (pts.length > 1) svg.append(s('polyline', { points: pts.map(([x, v]) => `${x},${H - B - v * scale}`).join(' '), fill: 'none', stroke: colour, 'stroke-width': 2 }));
    for (const [x, v, b] of pts) svg.append(s('circle', { cx: x, cy: H - B - v * scale, r: 3.5, fill: colour }, s('title', {}, `${hourLabel(b)}: ${key} ${v} ms`)));
  }
  const any = buckets.some((b) => b.latency_ms.p50 !== null);
  return h('div', {}, any ? null : h('p', { class: 'muted' }, 'No deliveries in the last 24 hours.'), svg,
    h('div', { class: 'legend', 'aria-hidden': 'true' }, h('span', {}, h('span', { class: 'key p50' }), 'p50'), h('span', {}, h('span', { class: 'key p95' }), 'p95')),
    dataTable('Delivery latency per hour (ms)', ['Hour', 'p50', 'p95', 'max'], buckets.map((b) => [hourLabel(b), b.latency_ms.p50 ?? '—', b.latency_ms.p95 ?? '—', b.latency_ms.max ?? '—'])));
}

// ---- Start -------------------------------------------------------------------------

document.getElementById('signout').addEventListener('click', async () => {
  try { await api('DELETE', '/v1/portal/session'); } catch (_) { /* ended either way */ }
  ended('You have signed out of the webhook portal.');
});
window.addEventListener('hashchange', route);
api('GET', '/v1/portal/session').then((me) => {
  document.getElementById('team').textContent = me.team.name;
  route();
}, () => {});
