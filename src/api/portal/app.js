// The webhook portal: a small single-page app over the ordinary /v1 API.
//
// The session is an HttpOnly cookie set when the one-time link was opened (this script
// never sees it); every request also carries `X-Wearbridge-Portal: 1`, the server's CSRF
// guard. Every value from the API reaches the page as text (textContent via `h`, never
// parsed as HTML), and nothing is styled inline: the page runs under a strict
// Content-Security-Policy, so looks come from app.css classes and SVG attributes.
'use strict';

const main = document.getElementById('main');
const SVG_NS = 'http://www.w3.org/2000/svg';

// ---- DOM helpers ---------------------------------------------------------------------

// h('a', {href, class, onclick: fn}, 'text', node, [more]): an element; strings become
// text nodes, null/false children and attributes are skipped.
function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// Text with `code` spans (the API's descriptions use backticks).
function rich(text) {
  return String(text || '').split('`').map((part, i) => (i % 2 ? h('code', {}, part) : part));
}

const plural = (n, one, many = one + 's') => `${n.toLocaleString()} ${n === 1 ? one : many}`;

const DATE_TIME = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const DATE_TIME_S = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const DATE = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const HOUR = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const HOUR_TICK = new Intl.DateTimeFormat(undefined, { hour: 'numeric' });

// A time in the browser's local time, the ISO value in its title.
function time(iso, format = DATE_TIME) {
  if (!iso) return '—';
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : h('time', { datetime: iso, title: iso }, format.format(d));
}

// "every delivery failed since 2026-11-20T09:00:00.000+00:00" reads better in local time.
function reasonText(reason) {
  return String(reason).replace(/\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:\d{2})/, (t) => DATE_TIME.format(new Date(t)));
}

// The value of a datetime-local input for a Date, in local time.
function localInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

const BADGE = {
  succeeded: 'ok', connected: 'ok', enabled: 'ok', healthy: 'ok',
  retrying: 'warn', pending: 'idle', exhausted: 'bad', error: 'bad', failing: 'bad', disabled: 'bad',
  deregistered: 'idle',
};

function badge(kind, text) {
  return h('span', { class: 'badge ' + (BADGE[kind] || 'idle') }, text || kind);
}

// role=alert for errors, role=status for the rest; focusable so a re-rendered page can
// move focus to the outcome of what was just done.
function notice(kind, ...content) {
  return h('div', { class: 'notice ' + kind, role: kind === 'err' ? 'alert' : 'status', tabindex: '-1' }, ...content);
}

// A message for the next render of a page (after an action that navigates or reloads).
let flash = null;
function setFlash(key, kind, ...content) {
  flash = { key, kind, content };
}
function takeFlash(key) {
  if (!flash || flash.key !== key) return null;
  const f = flash;
  flash = null;
  return build(notice(f.kind, ...f.content), { 'data-focus': '' }, []);
}

// ---- The API -------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// A call to the /v1 API with the session cookie and the portal header. Resolves to the
// JSON body (null for 204); rejects with an ApiError carrying the server's message. A
// 401 means the session is over: the page says so.
async function api(method, path, body) {
  const headers = { 'X-Wearbridge-Portal': '1' };
  const init = { method, credentials: 'same-origin', headers, cache: 'no-store' };
  // Only with a body: a JSON Content-Type on an empty body is a malformed request.
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (_) {
    throw new ApiError(0, 'network', 'The gateway could not be reached. Check your connection and try again.');
  }
  if (res.status === 401) {
    endSession('Your session expired or was ended.');
    throw new ApiError(401, 'unauthorized', 'Your portal session has ended.');
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null;
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(res.status, err.code || 'error', err.message || `The gateway answered ${res.status}.`);
  }
  return data;
}

// ---- Session -------------------------------------------------------------------------

let over = false;
let expiryTimer = null;

function endSession(reason) {
  if (over) return;
  over = true;
  clearTimeout(expiryTimer);
  for (const d of document.querySelectorAll('dialog')) d.remove();
  for (const el of document.querySelectorAll('[data-session]')) el.hidden = true;
  document.title = 'Session ended · Webhook portal';
  const title = h('h1', { tabindex: '-1' }, 'Your portal session has ended');
  main.replaceChildren(h('div', { class: 'ended card', role: 'alert' }, title, h('p', {}, reason),
    h('p', {}, 'Portal links work once and sessions expire. To come back, ask for a new link from the app that sent you here.')));
  title.focus();
}

// A modal confirmation (<dialog>): resolves true when confirmed. Escape or Cancel: false.
function confirmDialog({ title, text, confirm, danger }) {
  return new Promise((resolve) => {
    const trigger = document.activeElement;
    const yes = h('button', { type: 'button', class: danger ? 'danger solid' : 'primary' }, confirm);
    const no = h('button', { type: 'button' }, 'Cancel');
    const dlg = h('dialog', { 'aria-labelledby': 'dlg-title', 'aria-describedby': 'dlg-text' },
      h('h2', { id: 'dlg-title' }, title), h('p', { id: 'dlg-text' }, text), h('div', { class: 'actions end' }, no, yes));
    const done = (answer) => {
      dlg.close();
      dlg.remove();
      if (trigger && trigger.isConnected) trigger.focus();
      resolve(answer);
    };
    yes.addEventListener('click', () => done(true));
    no.addEventListener('click', () => done(false));
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      done(false);
    });
    document.body.append(dlg);
    dlg.showModal();
    no.focus();
  });
}

// Runs a button's action: busy meanwhile (aria-disabled keeps keyboard focus on it), its
// outcome in `slot`: the returned text as a status, or the error as an alert.
async function act(button, slot, fn) {
  if (button.getAttribute('aria-disabled') === 'true') return;
  button.setAttribute('aria-disabled', 'true');
  slot.replaceChildren();
  try {
    const out = await fn();
    if (out) slot.replaceChildren(notice('ok', ...[out].flat()));
  } catch (e) {
    if (e.status !== 401) slot.replaceChildren(notice('err', e.message));
  } finally {
    button.removeAttribute('aria-disabled');
  }
}

function button(text, onclick, attrs = {}) {
  return h('button', { type: 'button', ...attrs, onclick }, text);
}

// ---- Routing -------------------------------------------------------------------------

const ROUTES = [
  [/^#\/endpoints\/?$/, 'endpoints', () => endpointsPage()],
  [/^#\/endpoints\/new$/, 'endpoints', () => endpointForm(null)],
  [/^#\/endpoints\/([\w-]+)\/edit$/, 'endpoints', (id) => endpointForm(id)],
  [/^#\/endpoints\/([\w-]+)$/, 'endpoints', (id) => endpointPage(id)],
  [/^#\/events\/([\w-]+)\/([\w-]+)$/, 'endpoints', (ep, ev) => eventPage(ep, ev)],
  [/^#\/activity$/, 'activity', () => activityPage()],
  [/^#\/users$/, 'users', () => usersPage()],
];

let renders = 0;
let shownHash = null;

// Renders the page the hash names. Pages resolve to {title, body}; a render that a later
// navigation overtook is dropped. Re-rendering the same page keeps the scroll position.
async function route() {
  if (over) return;
  const hash = location.hash.length > 1 ? location.hash : '#/endpoints';
  const found = ROUTES.map(([re, nav, page]) => [hash.match(re), nav, page]).find(([m]) => m);
  if (!found) {
    history.replaceState(null, '', '#/endpoints');
    return route();
  }
  const [match, nav, page] = found;
  for (const a of document.querySelectorAll('nav a[data-nav]')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const mine = ++renders;
  const fresh = hash !== shownHash;
  if (fresh) main.replaceChildren(h('p', { class: 'muted loading', role: 'status' }, 'Loading…'));
  let view;
  try {
    view = await page(...match.slice(1));
  } catch (e) {
    if (e.status === 401) return;
    const title = e.status === 404 ? 'Not found' : 'Something went wrong';
    view = { title, body: [h('h1', {}, title), notice('err', e.message), h('p', {}, h('a', { href: '#/endpoints' }, 'Back to endpoints'))] };
  }
  if (mine !== renders || over) return;
  const y = window.scrollY;
  main.replaceChildren(...[view.body].flat(Infinity).filter(Boolean));
  document.title = `${view.title} · Webhook portal`;
  shownHash = hash;
  const focus = main.querySelector('[data-focus]');
  if (fresh) {
    window.scrollTo(0, 0);
    const heading = main.querySelector('h1');
    if (heading) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
  } else {
    window.scrollTo(0, y);
  }
  if (focus) focus.focus({ preventScroll: !fresh });
}

const rerender = () => route();

function crumb(href, text) {
  return h('p', { class: 'crumb' }, h('a', { href }, '← ', text));
}

// ---- Endpoints -----------------------------------------------------------------------

async function endpointsPage() {
  const { data } = await api('GET', '/v1/webhooks/endpoints');
  const head = h('div', { class: 'head' },
    h('div', {}, h('h1', {}, 'Endpoints'),
      h('p', { class: 'lead' }, 'Where your webhooks go. Each endpoint gets the events it subscribes to, signed with its own secret.')),
    h('a', { class: 'button primary', href: '#/endpoints/new' }, 'Add endpoint'));
  const body = data.length
    ? h('div', { class: 'card flush' }, h('div', { class: 'table-wrap' }, h('table', { class: 'stack' },
      h('caption', { class: 'visually-hidden' }, 'Your endpoints'),
      h('thead', {}, h('tr', {}, ['Endpoint', 'Status', 'Events', 'Health'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, data.map(endpointRow)))))
    : h('div', { class: 'card empty' }, h('h2', {}, 'No endpoints yet'),
      h('p', { class: 'muted' }, 'Add an endpoint to receive a signed webhook whenever a user connects a provider or their data changes.'));
  return { title: 'Endpoints', body: [head, takeFlash('endpoints'), body] };
}

function endpointRow(e) {
  return h('tr', {},
    h('td', { class: 'url', 'data-label': 'Endpoint' }, h('a', { href: `#/endpoints/${e.id}` }, e.url),
      e.description ? h('div', { class: 'muted small' }, e.description) : null),
    h('td', { 'data-label': 'Status' }, enabledBadge(e),
      !e.enabled && e.disabled_reason ? h('div', { class: 'muted small' }, reasonText(e.disabled_reason)) : null),
    h('td', { 'data-label': 'Events' }, eventsSummary(e.event_types)),
    h('td', { 'data-label': 'Health' }, health(e.health)));
}

const enabledBadge = (e) => (e.enabled ? badge('enabled', 'Enabled') : badge('disabled', 'Disabled'));
const eventsSummary = (types) => (types.length ? plural(types.length, 'event type') : 'All events');

function health(hl) {
  const parts = [];
  if (hl.consecutive_failures > 0) {
    parts.push(badge('failing', `${plural(hl.consecutive_failures, 'failure')} in a row`),
      hl.first_failure_at ? h('span', { class: 'muted small' }, ' since ', time(hl.first_failure_at)) : null);
  } else if (hl.last_success_at) {
    parts.push(badge('healthy', 'Healthy'));
  }
  if (hl.last_success_at) parts.push(h('div', { class: 'muted small' }, 'Last success ', time(hl.last_success_at)));
  if (!parts.length) parts.push(h('span', { class: 'muted' }, 'No deliveries yet'));
  return parts;
}

// ---- Add / edit an endpoint ----------------------------------------------------------

const GROUPS = {
  'provider.connection': 'Provider connections',
  'historical.data': 'Historical data (backfill)',
  'daily.data': 'Daily data (polling)',
  webhook: 'Webhook',
};

let catalogue = null;
async function eventTypes() {
  if (!catalogue) catalogue = (await api('GET', '/v1/event-types')).data;
  return catalogue;
}

// The event-type picker: a fieldset of checkboxes per prefix (`daily.data.*`, …), each
// box labelled with the type's name and described by its description.
function eventPicker(types, chosen) {
  const groups = new Map();
  for (const t of types) {
    const parts = t.name.split('.');
    const key = parts.length > 2 ? parts.slice(0, 2).join('.') : parts[0];
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(t);
  }
  const all = [];
  const summary = h('p', { class: 'picker-summary', 'aria-live': 'polite' });
  const toggles = [];
  const update = () => {
    const n = all.filter((b) => b.checked).length;
    summary.replaceChildren(...(n
      ? [h('strong', {}, `${plural(n, 'event type')} selected.`), ' Only these are sent to this endpoint.']
      : [h('strong', {}, 'All events.'), ' Nothing ticked: this endpoint gets every event type, including ones added later.']));
    for (const t of toggles) t();
  };
  const sets = [...groups].map(([key, list]) => {
    const boxes = [];
    const items = list.map((t) => {
      const id = 'et-' + t.name.replace(/[^\w]/g, '-');
      const box = h('input', { type: 'checkbox', id, name: 'event_types', value: t.name, checked: chosen.has(t.name), 'aria-describedby': `${id}-d`, onchange: update });
      boxes.push(box);
      return h('div', { class: 'check' }, box,
        h('div', {}, h('label', { for: id }, t.name), h('p', { class: 'desc', id: `${id}-d` }, rich(t.description))));
    });
    all.push(...boxes);
    const toggle = button('Select all', () => {
      const on = !boxes.every((b) => b.checked);
      for (const b of boxes) b.checked = on;
      update();
    }, { class: 'link small', 'aria-label': `Select all ${key}.* events` });
    toggles.push(() => {
      const full = boxes.every((b) => b.checked);
      toggle.textContent = full ? 'Clear' : 'Select all';
      toggle.setAttribute('aria-label', `${full ? 'Clear' : 'Select all'} ${key}.* events`);
    });
    return h('fieldset', { class: 'group' },
      h('legend', {}, GROUPS[key] || key, ' ', h('code', { class: 'prefix' }, `${key}.*`)),
      h('div', { class: 'group-tools' }, toggle),
      h('div', { class: 'types' }, items));
  });
  update();
  return { summary, sets };
}

// "field: message; other: message" (the API's 422s) → {field: message}.
function fieldMessages(message) {
  const out = {};
  for (const part of String(message).split('; ')) {
    const m = part.match(/^`?(\w+)`?: (.+)$/s);
    if (m) out[m[1]] = out[m[1]] ? `${out[m[1]]}; ${m[2]}` : m[2];
  }
  return out;
}

async function endpointForm(id) {
  const [types, ep] = await Promise.all([eventTypes(), id ? api('GET', `/v1/webhooks/endpoints/${id}`) : null]);
  const picker = eventPicker(types, new Set(ep ? ep.event_types : []));
  const errs = {};
  // A labelled field with a place for its own error message.
  const field = (key, control, label, hint) => {
    const err = h('p', { class: 'field-error', id: `${control.id}-err`, hidden: true });
    errs[key] = { control, err };
    const hintEl = hint ? h('p', { class: 'hint', id: `${control.id}-hint` }, rich(hint)) : null;
    control.setAttribute('aria-describedby', [hint ? `${control.id}-hint` : '', `${control.id}-err`].join(' ').trim());
    return h('div', { class: 'field' }, h('label', { for: control.id }, ...[label].flat()), hintEl, control, err);
  };
  const optional = () => h('span', { class: 'hint' }, ' (optional)');
  const url = h('input', { id: 'f-url', name: 'url', type: 'url', required: true, placeholder: 'https://example.com/webhooks', value: ep ? ep.url : '', autocomplete: 'off', spellcheck: 'false' });
  const desc = h('input', { id: 'f-desc', name: 'description', type: 'text', maxlength: 1000, value: ep ? ep.description : '' });
  const method = h('select', { id: 'f-method', name: 'method' },
    h('option', { value: 'POST', selected: !ep || ep.method === 'POST' }, 'POST (the event as a JSON body)'),
    h('option', { value: 'GET', selected: ep && ep.method === 'GET' }, 'GET (the event as query parameters)'));
  const rate = h('input', { id: 'f-rate', name: 'rate', type: 'number', min: 1, max: 100000, step: 1, inputmode: 'numeric', value: ep && ep.rate_limit_per_sec ? ep.rate_limit_per_sec : '' });
  const headers = h('textarea', { id: 'f-headers', name: 'headers', rows: 3, spellcheck: 'false', placeholder: 'X-Env: production' },
    ep ? Object.entries(ep.headers).map(([k, v]) => `${k}: ${v}`).join('\n') : '');
  const typesErr = h('p', { class: 'field-error', id: 'f-types-err', hidden: true });
  const eventsSet = h('fieldset', { class: 'events', 'aria-describedby': 'f-types-err' },
    h('legend', {}, 'Events to send'), picker.summary, typesErr, picker.sets);
  errs.event_types = { control: eventsSet, err: typesErr };
  const slot = h('div', { class: 'form-outcome' });
  const submit = h('button', { type: 'submit', class: 'primary' }, id ? 'Save' : 'Create endpoint');

  const clearErrors = () => {
    for (const { control, err } of Object.values(errs)) {
      err.hidden = true;
      err.replaceChildren();
      control.removeAttribute('aria-invalid');
    }
    slot.replaceChildren();
  };
  // Each message beside its field, and all of them beside the button.
  const showErrors = (message, byField) => {
    let first = null;
    for (const [key, text] of Object.entries(byField)) {
      const f = errs[key];
      if (!f) continue;
      f.err.replaceChildren(...rich(text));
      f.err.hidden = false;
      f.control.setAttribute('aria-invalid', 'true');
      first = first || f.control;
    }
    slot.replaceChildren(notice('err', message));
    if (first) (first.matches('fieldset') ? first.querySelector('input') : first).focus();
  };

  const form = h('form', { class: 'card form', novalidate: true },
    field('url', url, 'Endpoint URL', 'Where webhooks are sent. It must be `https` and publicly reachable unless your gateway allows otherwise.'),
    field('description', desc, ['Description', optional()]),
    eventsSet,
    h('fieldset', { class: 'plain' }, h('legend', {}, 'Delivery'),
      h('div', { class: 'grid two' },
        field('method', method, 'Method'),
        field('rate_limit_per_sec', rate, ['Rate limit per second', optional()], 'Empty: as fast as deliveries come.')),
      field('headers', headers, ['Custom headers', optional()], 'Sent with every delivery, one `Name: value` a line.')),
    id ? null : h('p', { class: 'hint' }, 'Creating the endpoint sends it a ', h('code', {}, 'webhook.test'), ' event straight away, so you can check your receiver.'),
    slot,
    h('div', { class: 'actions' }, submit, h('a', { class: 'button', href: id ? `#/endpoints/${id}` : '#/endpoints' }, 'Cancel')));

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearErrors();
    const problems = {};
    const urlValue = url.value.trim();
    if (!urlValue) problems.url = 'enter the URL your webhooks should go to';
    const rateValue = rate.value.trim();
    if (rate.validity.badInput || (rateValue && !(Number.isInteger(Number(rateValue)) && Number(rateValue) >= 1 && Number(rateValue) <= 100000))) {
      problems.rate_limit_per_sec = 'a whole number from 1 to 100000, or empty for no limit';
    }
    const hdrs = {};
    for (const line of headers.value.split('\n')) {
      if (!line.trim()) continue;
      const at = line.indexOf(':');
      if (at > 0) hdrs[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      else problems.headers = `“${line.trim()}” is not “Name: value”`;
    }
    if (Object.keys(problems).length) {
      return showErrors(Object.entries(problems).map(([k, v]) => `${k}: ${v}`).join('; '), problems);
    }
    const body = {
      url: urlValue,
      description: desc.value,
      event_types: picker.sets.flatMap((s) => [...s.querySelectorAll('input:checked')].map((b) => b.value)),
      method: method.value,
      headers: hdrs,
      rate_limit_per_sec: rateValue ? Number(rateValue) : null,
    };
    act(submit, slot, async () => {
      try {
        const saved = id ? await api('PATCH', `/v1/webhooks/endpoints/${id}`, body) : await api('POST', '/v1/webhooks/endpoints', body);
        if (id) setFlash(`endpoint:${saved.id}`, 'ok', 'Saved.');
        else setFlash(`endpoint:${saved.id}`, 'ok', 'Endpoint created. A ', h('code', {}, 'webhook.test'), ' event is on its way to it: watch for it under Recent events.');
        location.hash = `#/endpoints/${saved.id}`;
      } catch (e) {
        if (e.status === 401) throw e;
        const byField = fieldMessages(e.message);
        if (e.code === 'conflict') byField.url = e.message;
        showErrors(e.message, byField);
      }
    });
  });

  const title = id ? 'Edit endpoint' : 'Add endpoint';
  return {
    title,
    body: [crumb(id ? `#/endpoints/${id}` : '#/endpoints', id ? 'Endpoint' : 'Endpoints'), h('h1', {}, title),
      ep ? h('p', { class: 'lead url' }, ep.url) : h('p', { class: 'lead' }, 'Tell us where to send webhooks, and which events.'), form],
  };
}

// ---- One endpoint --------------------------------------------------------------------

const STATUSES = [
  ['', 'All'],
  ['pending', 'Pending'],
  ['retrying', 'Retrying'],
  ['succeeded', 'Succeeded'],
  ['exhausted', 'Exhausted'],
];

async function endpointPage(id) {
  const ep = await api('GET', `/v1/webhooks/endpoints/${id}`);
  const slot = h('div', {}, takeFlash(`endpoint:${id}`));

  const toggle = button(ep.enabled ? 'Disable' : 'Enable', () => act(toggle, slot, async () => {
    await api('PATCH', `/v1/webhooks/endpoints/${id}`, { enabled: !ep.enabled });
    setFlash(`endpoint:${id}`, 'ok', ep.enabled ? 'Endpoint disabled: nothing is sent to it until you enable it again.' : 'Endpoint enabled.');
    await rerender();
  }));
  const test = button('Send test event', () => act(test, slot, async () => {
    const r = await api('POST', `/v1/webhooks/endpoints/${id}/test`);
    later(loadEvents, 800, 2500);
    return ['Test event sent. ', h('a', { href: `#/events/${id}/${r.event_id}` }, 'Open it'), ' or watch for it under Recent events.'];
  }));
  const del = button('Delete', async () => {
    const yes = await confirmDialog({
      title: 'Delete this endpoint?',
      text: 'It stops receiving events at once, and its delivery log goes with it. This cannot be undone.',
      confirm: 'Delete endpoint',
      danger: true,
    });
    if (!yes) return;
    act(del, slot, async () => {
      await api('DELETE', `/v1/webhooks/endpoints/${id}`);
      setFlash('endpoints', 'ok', `Deleted the endpoint ${ep.url}.`);
      location.hash = '#/endpoints';
    });
  }, { class: 'danger' });

  const events = eventLog(id);
  const loadEvents = events.load;
  const chart = h('div', { class: 'chart-box' }, h('p', { class: 'muted' }, 'Loading…'));
  api('GET', `/v1/webhooks/stats?hours=24&endpoint_id=${encodeURIComponent(id)}`).then(
    (st) => chart.replaceChildren(totals(st.buckets, true), volumeChart(st.buckets, 'ep')),
    (e) => e.status !== 401 && chart.replaceChildren(notice('err', e.message)));
  loadEvents();

  return {
    title: ep.url,
    body: [
      crumb('#/endpoints', 'Endpoints'),
      h('div', { class: 'head' },
        h('div', { class: 'title' }, h('h1', { class: 'url' }, ep.url),
          h('p', { class: 'sub' }, enabledBadge(ep), ep.description ? h('span', {}, ep.description) : null)),
        h('div', { class: 'actions' }, h('a', { class: 'button', href: `#/endpoints/${id}/edit` }, 'Edit'), toggle, test, del)),
      slot,
      !ep.enabled && ep.disabled_reason ? notice('warn', h('strong', {}, 'Disabled: '), reasonText(ep.disabled_reason), '. Enable it once your receiver is fixed, then recover what it missed.') : null,
      h('div', { class: 'grid two' },
        h('section', { class: 'card', 'aria-labelledby': 'h-details' }, h('h2', { id: 'h-details' }, 'Details'),
          h('dl', { class: 'kv' },
            h('dt', {}, 'Events'), h('dd', {}, ep.event_types.length ? h('ul', { class: 'plain-list' }, ep.event_types.map((t) => h('li', {}, h('code', {}, t)))) : 'All events'),
            h('dt', {}, 'Method'), h('dd', {}, ep.method),
            h('dt', {}, 'Rate limit'), h('dd', {}, ep.rate_limit_per_sec ? `${ep.rate_limit_per_sec.toLocaleString()} per second` : 'None'),
            h('dt', {}, 'Custom headers'), h('dd', {}, Object.keys(ep.headers).length ? Object.keys(ep.headers).map((k) => h('code', { class: 'tag' }, k)) : 'None'),
            h('dt', {}, 'Health'), h('dd', {}, health(ep.health)),
            h('dt', {}, 'Created'), h('dd', {}, time(ep.created_at)))),
        secretCard(id)),
      h('section', { class: 'card', 'aria-labelledby': 'h-chart' }, h('h2', { id: 'h-chart' }, 'Deliveries, last 24 hours'), chart),
      events.section,
      recoverCard(id, loadEvents),
    ],
  };
}

function later(fn, ...delays) {
  for (const ms of delays) setTimeout(fn, ms);
}

// The signing secret: hidden until revealed; copy; rotate with a grace period.
function secretCard(id) {
  const box = h('div', { class: 'secret-box' });
  const slot = h('div', {});
  const hidden = () => box.replaceChildren(h('code', { class: 'secret masked', 'aria-hidden': 'true' }, 'whsec_' + '•'.repeat(24)),
    h('span', { class: 'visually-hidden' }, 'The secret is hidden.'));
  const copy = button('Copy', async () => {
    const value = document.getElementById('secret-value');
    try {
      await navigator.clipboard.writeText(value.textContent);
      slot.replaceChildren(notice('ok', 'Copied to the clipboard.'));
    } catch (_) {
      slot.replaceChildren(notice('err', 'The browser did not allow copying: select the secret and copy it by hand.'));
    }
  }, { hidden: true });
  const shown = (key, previousUntil) => {
    // (replaceChildren would print a null: only nodes go in.)
    box.replaceChildren(...[h('code', { class: 'secret', id: 'secret-value' }, key),
      previousUntil && h('p', { class: 'hint' }, 'The previous secret also signs until ', time(previousUntil), '.')].filter(Boolean));
    reveal.textContent = 'Hide';
    copy.hidden = !(navigator.clipboard && window.isSecureContext);
  };
  const reveal = button('Reveal', () => {
    if (reveal.textContent === 'Hide') {
      hidden();
      reveal.textContent = 'Reveal';
      copy.hidden = true;
      slot.replaceChildren();
      return;
    }
    act(reveal, slot, async () => {
      const s = await api('GET', `/v1/webhooks/endpoints/${id}/secret`);
      shown(s.key, s.previous_key_valid_until);
    });
  });
  const rotate = button('Rotate', async () => {
    const yes = await confirmDialog({
      title: 'Rotate the signing secret?',
      text: 'A new secret is made now. The current one keeps signing alongside it for a grace period (24 hours by default), so your receiver can switch over without rejecting a webhook.',
      confirm: 'Rotate secret',
    });
    if (!yes) return;
    act(rotate, slot, async () => {
      const s = await api('POST', `/v1/webhooks/endpoints/${id}/secret/rotate`, {});
      shown(s.key, null);
      return s.previous_key_valid_until
        ? ['Secret rotated. The previous secret keeps signing until ', time(s.previous_key_valid_until), '.']
        : 'Secret rotated.';
    });
  });
  hidden();
  return h('section', { class: 'card', 'aria-labelledby': 'h-secret' }, h('h2', { id: 'h-secret' }, 'Signing secret'),
    h('p', { class: 'hint' }, 'Verify every webhook with this secret and any Standard Webhooks or Svix library.'),
    box, h('div', { class: 'actions' }, reveal, copy, rotate), slot);
}

// The last 50 deliveries to the endpoint, with a status filter and Refresh.
function eventLog(id) {
  const filter = h('select', { id: 'f-status' }, STATUSES.map(([v, t]) => h('option', { value: v }, t)));
  const list = h('div', { class: 'log' }, h('p', { class: 'muted' }, 'Loading…'));
  const refresh = button('Refresh', () => load());
  let loading = 0;
  async function load() {
    const mine = ++loading;
    const q = filter.value ? `&status=${encodeURIComponent(filter.value)}` : '';
    list.setAttribute('aria-busy', 'true');
    try {
      const { data } = await api('GET', `/v1/webhooks/endpoints/${id}/events?limit=50${q}`);
      if (mine !== loading) return;
      list.replaceChildren(data.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'stack' },
        h('caption', { class: 'visually-hidden' }, 'Recent events, newest first'),
        h('thead', {}, h('tr', {}, ['Event type', 'Status', 'Attempts', 'Last response', 'Time'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, data.map((d) => h('tr', {},
          h('td', { 'data-label': 'Event type' }, h('a', { href: `#/events/${id}/${d.event_id}` }, d.event_type)),
          h('td', { 'data-label': 'Status' }, badge(d.status),
            d.next_attempt_at ? h('div', { class: 'muted small' }, 'next try ', time(d.next_attempt_at)) : null),
          h('td', { 'data-label': 'Attempts' }, d.attempts),
          h('td', { 'data-label': 'Last response' }, d.last_status_code ?? '—'),
          h('td', { 'data-label': 'Time' }, time(d.created_at)))))))
        : h('p', { class: 'empty-line' }, filter.value ? `No ${filter.value} events.` : 'No events yet.'));
    } catch (e) {
      if (e.status !== 401 && mine === loading) list.replaceChildren(notice('err', e.message));
    } finally {
      if (mine === loading) list.removeAttribute('aria-busy');
    }
  }
  filter.addEventListener('change', load);
  const section = h('section', { class: 'card', 'aria-labelledby': 'h-log' },
    h('div', { class: 'head' }, h('h2', { id: 'h-log' }, 'Recent events'),
      h('div', { class: 'actions' }, h('label', { for: 'f-status', class: 'inline' }, 'Status'), filter, refresh)),
    list);
  return { section, load };
}

// Re-queue every failed delivery since a time (default: 24 h ago).
function recoverCard(id, reload) {
  const since = h('input', { id: 'f-since', type: 'datetime-local', value: localInput(new Date(Date.now() - 864e5)), 'aria-describedby': 'since-hint' });
  const slot = h('div', {});
  const recover = h('button', { type: 'submit' }, 'Recover');
  const form = h('form', { class: 'inline-form', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'f-since' }, 'Since'),
      h('p', { class: 'hint', id: 'since-hint' }, 'Your local time.'), since),
    recover);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    act(recover, slot, async () => {
      const at = new Date(since.value);
      if (!since.value || isNaN(at)) throw new Error('since: choose the date and time to recover from.');
      const r = await api('POST', `/v1/webhooks/endpoints/${id}/recover`, { since: at.toISOString() });
      later(reload, 800, 2500);
      return r.recovered
        ? `${plural(r.recovered, 'failed message')} re-queued: each gets another attempt now.`
        : 'Nothing to recover: no delivery has failed since then.';
    });
  });
  return h('section', { class: 'card', 'aria-labelledby': 'h-recover' }, h('h2', { id: 'h-recover' }, 'Recover failed messages'),
    h('p', { class: 'hint' }, 'Re-queue every delivery to this endpoint that failed (retrying or exhausted) since a time.'),
    form, slot);
}

// ---- One event -----------------------------------------------------------------------

async function eventPage(endpointId, eventId) {
  const [ev, { data: endpoints }] = await Promise.all([api('GET', `/v1/webhooks/events/${eventId}`), api('GET', '/v1/webhooks/endpoints')]);
  const urlOf = Object.fromEntries(endpoints.map((e) => [e.id, e.url]));
  // The endpoint we came from first.
  const deliveries = [...ev.deliveries].sort((a, b) => (b.endpoint_id === endpointId) - (a.endpoint_id === endpointId));
  const payload = ev.payload || {};
  return {
    title: ev.event_type,
    body: [
      crumb(`#/endpoints/${endpointId}`, 'Endpoint'),
      h('h1', {}, ev.event_type),
      h('section', { class: 'card', 'aria-labelledby': 'h-payload' },
        h('dl', { class: 'kv' },
          h('dt', {}, 'Event id'), h('dd', {}, h('code', {}, ev.id)),
          h('dt', {}, 'Created'), h('dd', {}, time(ev.created_at, DATE_TIME_S)),
          payload.client_user_id ? [h('dt', {}, 'User'), h('dd', {}, payload.client_user_id)] : null),
        h('h2', { id: 'h-payload' }, 'Payload'),
        h('pre', { tabindex: '0', 'aria-labelledby': 'h-payload' }, JSON.stringify(ev.payload, null, 2))),
      deliveries.length ? deliveries.map((d) => deliveryCard(d, eventId, urlOf)) : h('p', { class: 'card empty-line' }, 'This event was not sent to any endpoint.'),
    ],
  };
}

function deliveryCard(d, eventId, urlOf) {
  const slot = h('div', {}, takeFlash(`delivery:${d.endpoint_id}`));
  const rerun = button('Re-run', () => act(rerun, slot, async () => {
    const a = await api('POST', `/v1/webhooks/endpoints/${d.endpoint_id}/events/${eventId}/resend`);
    const ok = a.response_status >= 200 && a.response_status < 300;
    const outcome = a.response_status ? `answered ${a.response_status}` : `failed: ${a.error_kind || 'error'}${a.error_message ? ` (${a.error_message})` : ''}`;
    setFlash(`delivery:${d.endpoint_id}`, ok ? 'ok' : 'err', `Attempt ${a.run_number} ${outcome}.`);
    await rerender();
  }));
  const head = `h-del-${d.endpoint_id}`;
  const attempts = [...d.attempt_log].sort((a, b) => a.run_number - b.run_number);
  return h('section', { class: 'card', 'aria-labelledby': head },
    h('div', { class: 'head' },
      h('div', { class: 'title' }, h('h2', { id: head }, 'Delivery to ', h('span', { class: 'url' }, urlOf[d.endpoint_id] || d.endpoint_id)),
        h('p', { class: 'sub' }, badge(d.status), plural(d.attempts, 'attempt'),
          d.next_attempt_at ? h('span', { class: 'muted' }, '· next try ', time(d.next_attempt_at)) : null)),
      rerun),
    slot,
    attempts.length ? h('ol', { class: 'attempts' }, attempts.map((a, i) => attemptView(a, i === attempts.length - 1))) : h('p', { class: 'empty-line' }, 'No attempt yet.'));
}

function attemptView(a, latest) {
  const ok = a.response_status >= 200 && a.response_status < 300;
  const headers = Object.entries(a.request_headers || {}).map(([k, v]) => `${k}: ${v}`).join('\n');
  const result = a.response_status ? badge(ok ? 'succeeded' : 'exhausted', `HTTP ${a.response_status}`) : badge('exhausted', a.error_kind || 'failed');
  return h('li', { class: 'attempt ' + (ok ? 'ok' : 'bad') },
    h('h3', {}, `Attempt ${a.run_number}`, ' ', result),
    h('p', { class: 'meta' },
      h('span', {}, a.trigger === 'manual' ? 'Manual re-run' : 'Scheduled'), h('span', {}, time(a.attempted_at, DATE_TIME_S)),
      h('span', {}, `${a.duration_ms.toLocaleString()} ms`)),
    h('p', { class: 'small url' }, h('code', {}, a.url)),
    a.error_kind || a.error_message ? h('p', { class: 'attempt-error' }, h('strong', {}, a.error_kind || 'error'), a.error_message ? `: ${a.error_message}` : '') : null,
    h('details', {}, h('summary', {}, 'Request headers'),
      h('pre', { tabindex: '0', 'aria-label': `Attempt ${a.run_number} request headers` }, headers || '(none)')),
    h('details', { open: latest || !ok }, h('summary', {}, 'Response', a.response_status ? ` (${a.response_status})` : ''),
      a.response_body
        ? h('pre', { tabindex: '0', 'aria-label': `Attempt ${a.run_number} response body` }, a.response_body)
        : h('p', { class: 'muted small' }, a.response_status ? 'The response had no body.' : 'No response.')));
}

// ---- Users ---------------------------------------------------------------------------

const PAGE = 20;

async function usersPage() {
  const [first, providers] = await Promise.all([
    api('GET', `/v1/user?offset=0&limit=${PAGE}`),
    api('GET', '/v1/providers').then((r) => r.data, () => []),
  ]);
  const names = Object.fromEntries(providers.map((p) => [p.slug, p.name]));
  const list = h('div', { class: 'users' });
  const count = h('p', { class: 'muted small', 'aria-live': 'polite' });
  const slot = h('div', {});
  const more = button('Load more', () => act(more, slot, () => add(api('GET', `/v1/user?offset=${shown}&limit=${PAGE}`))));
  let shown = 0;
  async function add(pagePromise) {
    const page = await pagePromise;
    const cards = await Promise.all(page.users.map((u) => api('GET', `/v1/user/${u.user_id}/providers`).then(
      ({ data }) => userCard(u, data, names),
      (e) => (e.status === 401 ? null : userCard(u, null, names, e.message)))));
    list.append(...cards.filter(Boolean));
    shown += page.users.length;
    more.hidden = shown >= page.total;
    count.textContent = page.total ? `Showing ${shown.toLocaleString()} of ${plural(page.total, 'user')}.` : '';
  }
  await add(first);
  const body = first.total
    ? [list, count, slot, h('div', { class: 'actions' }, more)]
    : h('div', { class: 'card empty' }, h('h2', {}, 'No users yet'), h('p', { class: 'muted' }, 'Users appear here once your app creates them with the API.'));
  return {
    title: 'Users',
    body: [h('h1', {}, 'Users'), h('p', { class: 'lead' }, 'Your users, their provider connections and how far back each resource has been backfilled.'), body],
  };
}

const CONNECTION = { connected: 'connected', error: 'error', deregistered: 'deregistered' };

function userCard(u, conns, names, error) {
  const head = `h-user-${u.user_id}`;
  return h('section', { class: 'card user', 'aria-labelledby': head },
    h('div', { class: 'head' }, h('h2', { id: head }, u.client_user_id),
      h('p', { class: 'muted small' }, 'Created ', time(u.created_at))),
    error ? notice('err', error)
      : conns.length ? conns.map((c) => connectionView(u, c, names))
        : h('p', { class: 'empty-line' }, 'No provider connected yet.'));
}

function connectionView(u, c, names) {
  const name = names[c.provider] || c.provider;
  return h('div', { class: 'conn' },
    h('h3', {}, name, ' ', badge(c.status, CONNECTION[c.status] || c.status)),
    c.status === 'error' ? h('p', { class: 'conn-error' }, c.error_message || c.error_type || 'The connection stopped working; the user must reconnect.') : null,
    c.backfill.length ? h('ul', { class: 'backfill', 'aria-label': `${name} backfill` }, c.backfill.map((b) => {
      const id = `bf-${u.user_id}-${c.provider}-${b.resource}`;
      const done = b.windows_total > 0 && b.windows_done >= b.windows_total;
      return h('li', {},
        h('label', { for: id }, h('strong', {}, b.resource), `: ${b.windows_done} of ${b.windows_total} windows`),
        h('progress', { id, max: Math.max(1, b.windows_total), value: b.windows_done, class: done ? 'done' : null }),
        h('span', { class: 'muted small' },
          b.oldest_date_reached ? ['reached ', time(b.oldest_date_reached, DATE)] : 'not started',
          done ? ' · complete' : null),
        b.last_error ? h('span', { class: 'bf-error small' }, b.last_error) : null);
    })) : null);
}

// ---- Activity and charts --------------------------------------------------------------

let activityEndpoint = '';

async function activityPage() {
  const { data: endpoints } = await api('GET', '/v1/webhooks/endpoints');
  if (!endpoints.some((e) => e.id === activityEndpoint)) activityEndpoint = '';
  const endpointId = activityEndpoint;
  const st = await api('GET', '/v1/webhooks/stats?hours=24' + (endpointId ? `&endpoint_id=${encodeURIComponent(endpointId)}` : ''));
  const pick = h('select', { id: 'f-endpoint' }, h('option', { value: '' }, 'All endpoints'),
    endpoints.map((e) => h('option', { value: e.id, selected: e.id === endpointId }, e.url)));
  pick.addEventListener('change', () => {
    activityEndpoint = pick.value;
    rerender();
  });
  return {
    title: 'Activity',
    body: [
      h('div', { class: 'head' },
        h('div', {}, h('h1', {}, 'Activity'), h('p', { class: 'lead' }, 'Delivery attempts over the last 24 hours, per hour, in your local time.')),
        endpoints.length ? h('div', { class: 'field compact' }, h('label', { for: 'f-endpoint' }, 'Endpoint'), pick) : null),
      h('section', { class: 'card', 'aria-labelledby': 'h-vol' }, h('h2', { id: 'h-vol' }, 'Deliveries per hour'),
        totals(st.buckets, false), volumeChart(st.buckets, 'all')),
      h('section', { class: 'card', 'aria-labelledby': 'h-lat' }, h('h2', { id: 'h-lat' }, 'Latency per hour'), latencyChart(st.buckets)),
    ],
  };
}

function totals(buckets, compact) {
  const ok = buckets.reduce((n, b) => n + b.succeeded, 0);
  const bad = buckets.reduce((n, b) => n + b.failed, 0);
  const rate = ok + bad ? `${((100 * ok) / (ok + bad)).toFixed(1)} %` : '—';
  const slowest = Math.max(-1, ...buckets.map((b) => (b.latency_ms.max == null ? -1 : b.latency_ms.max)));
  const stat = (value, label, cls) => h('div', { class: 'stat' + (cls ? ' ' + cls : '') }, h('span', { class: 'value' }, value), h('span', { class: 'label' }, label));
  return h('div', { class: 'stats' + (compact ? ' compact' : '') },
    stat((ok + bad).toLocaleString(), 'attempts'),
    stat(ok.toLocaleString(), 'succeeded', 'ok'),
    stat(bad.toLocaleString(), 'failed', bad ? 'bad' : null),
    stat(rate, 'success rate'),
    compact ? null : stat(slowest >= 0 ? `${slowest.toLocaleString()} ms` : '—', 'slowest attempt'));
}

// A "nice" axis: the top value and a round step, at most five gridlines apart.
function axis(max, whole) {
  const m = Math.max(max, whole ? 4 : 10);
  const p = 10 ** Math.floor(Math.log10(m / 5));
  const steps = [1, 2, 2.5, 5, 10, 20, 25, 50, 100].map((k) => k * p).filter((s) => !whole || Number.isInteger(s));
  const step = steps.find((s) => Math.ceil(m / s) <= 5) || steps[steps.length - 1];
  return { top: step * Math.ceil(m / step), step };
}

const hourLabel = (b) => `${DATE.format(new Date(b.start))} ${HOUR.format(new Date(b.start))}`;

// The frame of a chart: an <svg> sized to the page (so its text stays legible on a
// phone), gridlines, the y axis with its title, hour labels along the x axis.
function frame(buckets, top, step, yTitle, title, summary, id) {
  const W = Math.max(300, Math.min(1000, (main.clientWidth || 800) - 48));
  const H = W < 500 ? 220 : 240;
  const L = 56, R = 12, T = 12, B = 44;
  const plotH = H - T - B;
  const el = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-labelledby': `${id}-t ${id}-d` },
    svg('title', { id: `${id}-t` }, title), svg('desc', { id: `${id}-d` }, summary));
  for (let v = 0; v <= top + 1e-9; v += step) {
    const y = T + plotH - (v / top) * plotH;
    el.append(svg('line', { class: v === 0 ? 'axis-line' : 'grid-line', x1: L, x2: W - R, y1: y, y2: y }),
      svg('text', { class: 'tick', x: L - 8, y: y + 4, 'text-anchor': 'end' }, Number(v.toFixed(2)).toLocaleString()));
  }
  el.append(svg('text', { class: 'axis-title', x: 14, y: T + plotH / 2, 'text-anchor': 'middle', transform: `rotate(-90 14 ${T + plotH / 2})` }, yTitle));
  const slot = (W - L - R) / buckets.length;
  const every = W < 500 ? 6 : 3;
  buckets.forEach((b, i) => {
    if ((buckets.length - 1 - i) % every === 0) {
      el.append(svg('text', { class: 'tick', x: L + slot * i + slot / 2, y: T + plotH + 18, 'text-anchor': 'middle' }, HOUR_TICK.format(new Date(b.start))));
    }
  });
  el.append(svg('text', { class: 'axis-title', x: L + (W - L - R) / 2, y: H - 6, 'text-anchor': 'middle' }, 'hour (local time)'));
  return { el, x: (i) => L + slot * i, slot, y: (v) => T + plotH - (v / top) * plotH, base: T + plotH };
}

function legend(items) {
  return h('ul', { class: 'legend', 'aria-hidden': 'true' }, items.map(([cls, text]) => h('li', {}, h('span', { class: 'key ' + cls }), text)));
}

// The chart as a table, for screen readers (a table ignores a 1px box, so it is wrapped).
function dataTable(caption, heads, rows) {
  return h('div', { class: 'visually-hidden' }, h('table', {}, h('caption', {}, caption),
    h('thead', {}, h('tr', {}, heads.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c, i) => h(i ? 'td' : 'th', i ? {} : { scope: 'row' }, c)))))));
}

// Attempts per hour, stacked: succeeded below, failed above.
function volumeChart(buckets, id) {
  const ok = buckets.reduce((n, b) => n + b.succeeded, 0);
  const bad = buckets.reduce((n, b) => n + b.failed, 0);
  const { top, step } = axis(Math.max(0, ...buckets.map((b) => b.succeeded + b.failed)), true);
  const summary = ok + bad
    ? `${plural(ok + bad, 'delivery attempt')} in the last ${buckets.length} hours: ${ok.toLocaleString()} succeeded, ${bad.toLocaleString()} failed.`
    : `No delivery attempts in the last ${buckets.length} hours.`;
  const f = frame(buckets, top, step, 'attempts', 'Delivery attempts per hour, by outcome', summary, `vol-${id}`);
  buckets.forEach((b, i) => {
    const x = f.x(i) + f.slot * 0.18, w = Math.max(2, f.slot * 0.64);
    const tip = `${hourLabel(b)}: ${b.succeeded} succeeded, ${b.failed} failed`;
    const okTop = f.y(b.succeeded), badTop = f.y(b.succeeded + b.failed);
    if (b.succeeded) f.el.append(svg('rect', { class: 'bar-ok', x, y: okTop, width: w, height: f.base - okTop }, svg('title', {}, tip)));
    if (b.failed) f.el.append(svg('rect', { class: 'bar-bad', x, y: badTop, width: w, height: okTop - badTop }, svg('title', {}, tip)));
  });
  return h('figure', { class: 'chart-fig' }, f.el,
    h('figcaption', {}, legend([['ok', 'Succeeded'], ['bad', 'Failed']]), ok + bad ? null : h('p', { class: 'muted small' }, summary)),
    dataTable('Delivery attempts per hour', ['Hour', 'Succeeded', 'Failed'], buckets.map((b) => [hourLabel(b), b.succeeded, b.failed])));
}

// Latency per hour: p50 and p95 lines (gaps where an hour had no attempt).
function latencyChart(buckets) {
  const seen = buckets.filter((b) => b.latency_ms.p50 != null);
  const { top, step } = axis(Math.max(0, ...buckets.map((b) => b.latency_ms.p95 || 0)), false);
  const worst = Math.max(0, ...seen.map((b) => b.latency_ms.p95 || 0));
  const summary = seen.length
    ? `Latency per hour over the last ${buckets.length} hours; the slowest hour's p95 was ${worst.toLocaleString()} ms.`
    : `No delivery attempts in the last ${buckets.length} hours, so no latency to show.`;
  const f = frame(buckets, top, step, 'milliseconds', 'Delivery latency per hour, p50 and p95', summary, 'lat');
  for (const key of ['p95', 'p50']) {
    let run = [];
    const flush = () => {
      if (run.length > 1) f.el.append(svg('polyline', { class: `line-${key}`, points: run.join(' ') }));
      run = [];
    };
    buckets.forEach((b, i) => {
      const v = b.latency_ms[key];
      if (v == null) return flush();
      const cx = f.x(i) + f.slot / 2, cy = f.y(v);
      run.push(`${cx},${cy}`);
      f.el.append(svg('circle', { class: `dot-${key}`, cx, cy, r: 3.5 }, svg('title', {}, `${hourLabel(b)}: ${key} ${v} ms`)));
    });
    flush();
  }
  return h('figure', { class: 'chart-fig' }, f.el,
    h('figcaption', {}, legend([['p50', 'p50 (median)'], ['p95', 'p95']]), seen.length ? null : h('p', { class: 'muted small' }, summary)),
    dataTable('Delivery latency per hour, in milliseconds', ['Hour', 'p50', 'p95', 'max'],
      buckets.map((b) => [hourLabel(b), b.latency_ms.p50 ?? '—', b.latency_ms.p95 ?? '—', b.latency_ms.max ?? '—'])));
}

// ---- Start ---------------------------------------------------------------------------

document.getElementById('signout').addEventListener('click', async () => {
  try {
    await api('DELETE', '/v1/portal/session');
  } catch (_) {
    // Ended either way.
  }
  endSession('You signed out.');
});
window.addEventListener('hashchange', route);
// The skip link must not become a route.
document.querySelector('.skip').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});

api('GET', '/v1/portal/session').then((me) => {
  document.getElementById('team').textContent = me.team.name;
  const ends = new Date(me.expires_at);
  const until = document.getElementById('session-until');
  if (!isNaN(ends)) {
    until.replaceChildren('Session until ', time(me.expires_at, HOUR));
    // Check again just after the session's end: the 401 puts up the ended page.
    const wait = Math.min(ends - Date.now() + 1000, 2 ** 31 - 1);
    expiryTimer = setTimeout(() => api('GET', '/v1/portal/session').catch(() => {}), Math.max(wait, 1000));
  }
  route();
}, (e) => {
  if (e.status !== 401) main.replaceChildren(h('h1', {}, 'The portal could not start'), notice('err', e.message));
});
